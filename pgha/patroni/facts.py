"""Facts read from a member's Patroni REST API, with curl on the member itself.

``PatroniRole`` asks the health-check endpoints: ``/master`` (3.0.2; 4.x still answers it)
or ``/primary`` (both; what HAProxy asks) answer 200 only on the leader, ``/replica`` only on
a running replica. ``PatroniCluster`` parses ``/cluster`` (pgha.patroni.rest owns the parsing).
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from pgha import SCRIPTS_DIR
from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan, fact
from pgha.patroni import values
from pgha.patroni.rest import RESTAPI_SCHEME, ROLE_ENDPOINTS, normalize_role, parse_cluster
from pgha.pki.values import CA_FILE
from pgha.postgres import data_dir
from pgha.postgres.facts import PostgresSettings, PostmasterParameters, RoleLogin


def patronictl(config_file: str) -> str:
    """The one patronictl command prefix (facts and operations)."""
    return f"patronictl -c {shlex.quote(config_file)}"


def _url(port: int, path: str, address: str = "127.0.0.1") -> str:
    return f"{RESTAPI_SCHEME}://{address}:{int(port)}/{path.lstrip('/')}"


def make_rest_command(port: int, path: str, method: str = "GET", address: str = "127.0.0.1",
                      timeout: int = 3) -> str:
    """The one curl command line for Patroni's REST API (facts and operations): HTTPS,
    the certificate checked against the cluster CA (it names 127.0.0.1 too)."""
    return f"curl -s --cacert {CA_FILE} -m {int(timeout)} -X {method} {shlex.quote(_url(port, path, address))}"


def _json(output) -> object | None:
    try:
        return json.loads("\n".join(output))
    except ValueError:
        return None


class PatroniRole(FactBase):
    """``{"role": "leader"|"replica"|None, "codes": {"master": 200, ...}, "state": ...,
    "timeline": ..., "pending_restart": bool}``; role None when the API does not answer."""

    def command(self, port: int) -> str:
        # one curl for the health-check endpoints (one process, one TLS session): a line
        # "<endpoint> <status>" each; then the member's own status
        base = make_rest_command(port, ROLE_ENDPOINTS[0], "OPTIONS")
        others = " ".join(f"-o /dev/null {shlex.quote(_url(port, e))}" for e in ROLE_ENDPOINTS[1:])
        prefix = _url(port, "")
        lines = [
            f"{base} -o /dev/null -w '%{{url_effective}} %{{http_code}}\\n' {others} | sed 's#^{prefix}##'",
            f"echo \"patroni $({make_rest_command(port, 'patroni')} | tr -d '\\n')\"",
        ]
        return "; ".join(lines)

    def process(self, output):
        codes: dict[str, int] = {}
        status: dict = {}
        for line in output:
            key, _, value = line.partition(" ")
            if key in ROLE_ENDPOINTS:
                codes[key] = int(value) if value.strip().isdigit() else 0
            elif key == "patroni" and value.strip():
                try:
                    status = json.loads(value)
                except ValueError:
                    status = {}
        role: str | None
        if codes.get("master") == 200 or codes.get("primary") == 200:
            role = "leader"
        elif codes.get("replica") == 200:
            role = "replica"
        else:
            role = normalize_role(status.get("role")) if status else None
        return {
            "role": role,
            "codes": codes,
            "state": status.get("state"),
            "timeline": status.get("timeline"),
            "pending_restart": bool(status.get("pending_restart")),
            "replication": status.get("replication", []),
        }


class PatroniCluster(FactBase):
    """The members of the cluster as ``/cluster`` reports them, or None."""

    def command(self, port: int) -> str:
        return make_rest_command(port, "cluster") + " || true"

    def process(self, output):
        data = _json(output)
        return parse_cluster(data) if isinstance(data, dict) else None


class PatroniDynamicConfig(FactBase):
    """The cluster-wide configuration in the DCS (``GET /config``), or None."""

    def command(self, port: int) -> str:
        return make_rest_command(port, "config") + " || true"

    def process(self, output):
        return _json(output)


class PatroniStatus(FactBase):
    """A member's ``/patroni`` answer (role, state, timeline, and on the leader its
    ``replication`` list), asked at ``address``; empty when it does not answer."""

    default = dict

    def command(self, port: int, address: str) -> str:
        return make_rest_command(port, "patroni", address=address) + " || true"

    def process(self, output):
        data = _json(output)
        return data if isinstance(data, dict) else {}


class TextFileHeader(FactBase):
    """``key: value`` pairs from the ``# key: value`` comment lines at the top of a file."""

    default = dict

    def command(self, path: str) -> str:
        return f"head -n 5 {shlex.quote(path)} 2>/dev/null | grep -E '^# [a-z-]+: ' || true"

    def process(self, output):
        values = {}
        for line in output:
            key, _, value = line[2:].partition(": ")
            values[key.strip()] = value.strip()
        return values


class PatroniPaused(FactBase):
    """Whether the cluster is in maintenance mode, as the DCS holds it (``patronictl
    show-config`` with ``config_file``): True, False, or None when the DCS does not answer."""

    def command(self, config_file: str) -> str:
        return (
            f"out=$({patronictl(config_file)} show-config 2>/dev/null) && "
            "{ printf '%s\\n' \"$out\" | grep -q '^pause: true' && echo paused || echo managed; } || true"
        )

    def process(self, output):
        text = "\n".join(output).strip()
        return {"paused": True, "managed": False}.get(text)


class WatchdogHost(FactBase):
    """{"container": its kind (systemd-detect-virt) or None on a machine, "device": the
    owner of /dev/watchdog or None when there is none}."""

    def command(self) -> str:
        return ('kind=$(systemd-detect-virt --container 2>/dev/null); echo "${kind:-none}"; '
                f"stat -c %U {values.WATCHDOG_DEVICE} 2>/dev/null || echo -")

    def process(self, output):
        kind, owner = ([line.strip() for line in output] + ["none", "-"])[:2]
        return {"container": None if kind in ("none", "") else kind, "device": None if owner == "-" else owner}


def observed(cluster: Cluster, node: Node, local_parameters: dict) -> Plan:
    """What a converge asks of a Patroni member, read in its snapshot (pgha.common.snapshot).
    ``local_parameters``: the PostgreSQL parameters of the member's own file."""
    s = cluster.settings
    port, pg_port = s["patroni_restapi_port"], s["postgresql_port"]
    version = s["postgresql_version"]
    logins = [
        fact(RoleLogin, role=s[setting], port=pg_port, passfile=passfile, attributes=list(attributes))
        for setting, (_, passfile, attributes, _) in values.ROLE_PASSWORDS.items()
    ]
    names = sorted(local_parameters)
    # the DCS configuration and the restarts owed are kept from the first member
    first = [fact(PatroniDynamicConfig, port=port), fact(PatroniCluster, port=port),
             fact(PostmasterParameters, names=names, port=pg_port), fact(PostgresSettings, names=names, port=pg_port)]
    return Plan(
        paths=("/etc/patroni", values.CREATECLUSTER_DIR, f"/etc/postgresql/{version}/main", f"/var/lib/postgresql/{version}",
               data_dir(s), values.PATRONICTL_DIR, SCRIPTS_DIR, values.UNIT_FILE, values.MARKERS_DIR,
               *((values.SOFTDOG_MODULES_FILE, values.WATCHDOG_UDEV_RULE) if s["patroni_watchdog"] != "off" else ())),
        units=(values.UNIT,),
        packages=tuple(values.packages(s)),
        facts=(
            fact(TextFileHeader, path=values.config_file(node)),
            fact(PatroniRole, port=port),
            *(first if node is cluster.patroni[0] else []),
            *logins,
            *([fact(WatchdogHost)] if s["patroni_watchdog"] != "off" else []),
        ),
    )
