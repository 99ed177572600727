"""Facts read from a member's Patroni REST API (on the member itself, with curl).

``PatroniRole`` asks the health-check endpoints HAProxy uses: ``/master`` (3.0.2; 4.x
still answers it) or ``/primary`` answer 200 only on the leader, ``/replica`` only on a
running replica. ``PatroniCluster`` parses ``/cluster``. Both accept Patroni 3.0.2's
``master`` and 4.x's ``primary``/``leader`` role names.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from pgha.patroni import normalize_role

ENDPOINTS = ("master", "primary", "replica", "health")


def _curl(port: int, path: str, method: str = "GET") -> str:
    return f"curl -s -m 3 -X {method} http://127.0.0.1:{int(port)}/{path}"


class PatroniRole(FactBase):
    """``{"role": "leader"|"replica"|None, "codes": {"master": 200, ...}, "state": ...,
    "timeline": ..., "pending_restart": bool}``; role None when the API does not answer."""

    def command(self, port: int = 8008) -> str:
        lines = [
            f"echo \"{e} $({_curl(port, e, 'OPTIONS')} -o /dev/null -w '%{{http_code}}')\""
            for e in ENDPOINTS
        ]
        lines.append(f"echo \"patroni $({_curl(port, 'patroni')} | tr -d '\\n')\"")
        return "; ".join(lines)

    def process(self, output):
        codes: dict[str, int] = {}
        status: dict = {}
        for line in output:
            key, _, value = line.partition(" ")
            if key in ENDPOINTS:
                codes[key] = int(value) if value.strip().isdigit() else 0
            elif key == "patroni" and value.strip():
                try:
                    status = json.loads(value)
                except ValueError:
                    status = {}
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


def parse_cluster(data: dict) -> list[dict]:
    """Members of a ``/cluster`` answer, roles normalised, sorted by name."""
    members = []
    for member in data.get("members", []):
        lag = member.get("lag")
        members.append(
            {
                "name": member.get("name"),
                "host": member.get("host"),
                "role": normalize_role(member.get("role")),
                "state": member.get("state"),
                "timeline": member.get("timeline"),
                "lag": lag if isinstance(lag, int) else (0 if lag is None else lag),
                "pending_restart": bool(member.get("pending_restart")),
            }
        )
    return sorted(members, key=lambda m: m["name"] or "")


class PatroniCluster(FactBase):
    """The members of the cluster as ``/cluster`` reports them, or None."""

    def command(self, port: int = 8008) -> str:
        return _curl(port, "cluster") + " || true"

    def process(self, output):
        text = "\n".join(output).strip()
        try:
            return parse_cluster(json.loads(text))
        except ValueError:
            return None


class PatroniDynamicConfig(FactBase):
    """The cluster-wide configuration in the DCS (``GET /config``), or None."""

    def command(self, port: int = 8008) -> str:
        return _curl(port, "config") + " || true"

    def process(self, output):
        try:
            return json.loads("\n".join(output))
        except ValueError:
            return None


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


class PatroniStatus(FactBase):
    """A member's ``/patroni`` answer (role, state, timeline, and on the leader its
    ``replication`` list), fetched from ``url``; empty when it does not answer."""

    default = dict

    def command(self, url: str) -> str:
        return f"curl -s -m 3 {shlex.quote(url)} || true"

    def process(self, output):
        try:
            return json.loads("\n".join(output))
        except ValueError:
            return {}


class PostmasterParameters(FactBase):
    """Which of ``names`` PostgreSQL reads at start only (pg_settings.context = postmaster),
    asked of the local server through its socket as the postgres user."""

    default = list

    def command(self, names: list[str], socket_dir: str = "/var/run/postgresql", port: int = 5434) -> str:
        quoted = ",".join("'" + n.replace("'", "") + "'" for n in names)
        sql = f"select name from pg_settings where context = 'postmaster' and name in ({quoted})"
        return (
            f"runuser -u postgres -- psql -h {shlex.quote(socket_dir)} -p {int(port)} -d postgres "
            f"-Atc {shlex.quote(sql)} 2>/dev/null || true"
        )

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())
