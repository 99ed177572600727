"""Patroni: each member's configuration and the cluster-wide dynamic configuration,
computed from the topology. Free of pyinfra so it is unit-tested directly; templates/ beside
this file only print these values (each template is given one mapping, ``config``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pgha import SCRIPTS_DIR, monitoring, releases
from pgha.cluster import Cluster, Node
from pgha.etcd import values as etcd_values
from pgha.patroni.rest import LEADER_CHECK, RESTAPI_SCHEME
from pgha.pki import values as pki
from pgha.postgres import SOCKET_DIR, bin_dir, data_dir
from pgha.postgres.roles import password_from_file_sql
from pgha.rendering import yaml_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
UNIT = "patroni.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
PACKAGES_EXTRA = ["python3-etcd", "curl"]  # curl: the facts and the stop-time switchover ask the REST API
CREATECLUSTER_DIR = "/etc/postgresql-common/createcluster.d"
CREATECLUSTER_FILE = f"{CREATECLUSTER_DIR}/pgha.conf"
PATRONICTL_DIR = "/root/.config/patroni"
HANDOVER_SCRIPT = f"{SCRIPTS_DIR}/patroni-handover"
RESTAPI_CURLRC = "/etc/patroni/.restapi-curlrc"
# The watchdog: Patroni's device, reset ttl - safety_margin seconds after its last keepalive
# (5 s before the leader lock expires); on a machine the deploy loads softdog at boot and
# gives the device to postgres
WATCHDOG_DEVICE = "/dev/watchdog"
WATCHDOG_SAFETY_MARGIN = 5
SOFTDOG_MODULES_FILE = "/etc/modules-load.d/pgha-watchdog.conf"
WATCHDOG_UDEV_RULE = "/etc/udev/rules.d/61-pgha-watchdog.rules"
WATCHDOG_UDEV_TEXT = 'KERNEL=="watchdog", OWNER="postgres", GROUP="postgres", MODE="0600"\n'
PGPASS = "/var/lib/postgresql/.pgpass_patroni"  # Patroni's own, which it rewrites
# the admin role's password, as a pgpass file (0600, owned by postgres) on every member
ADMIN_PGPASS = "/etc/patroni/.admin-pgpass"
ADMIN_ATTRIBUTES = ("createrole", "createdb")  # besides LOGIN
# A DCS change is rolled out over steps a failed run can cut short: these files say what is
# still owed (the deploy paused the cluster; the daemon still runs its old DCS section).
MARKERS_DIR = "/var/lib/pgha"
DCS_CHANGE_MARKERS = {"paused": f"{MARKERS_DIR}/dcs-change-paused", "restart": f"{MARKERS_DIR}/dcs-change-restart"}


# PostgreSQL and Patroni (both run as postgres) share the node's certificate: TLS_SERVICE's copy
TLS_SERVICE = "postgres"
# Every libpq connection between members (replication, pg_rewind, Patroni's own) checks the
# server's certificate and name against the cluster CA.
VERIFY_SERVER = {"sslmode": "verify-full", "sslrootcert": pki.CA_FILE}
# Set in each member's patroni.yml (not the DCS): the file paths are pgha's own.
TLS_PARAMETERS = {
    "ssl": "on",
    "ssl_cert_file": pki.cert_file(TLS_SERVICE),
    "ssl_key_file": pki.key_file(TLS_SERVICE),
    "ssl_ca_file": pki.CA_FILE,
    "ssl_min_protocol_version": "TLSv1.2",
}


def config_file(node: Node) -> str:
    return f"/etc/patroni/{node.patroni_name}.yml"


def dcs_hosts(cluster: Cluster) -> list[str]:
    """Where Patroni reaches etcd: the local HAProxy, or the etcd members themselves."""
    s = cluster.settings
    if s["patroni_dcs_via_local_proxy"]:
        return [f"127.0.0.1:{s['haproxy_etcd_port']}"]
    return [f"{n.address}:{s['etcd_client_port']}" for n in cluster.etcd]


def dcs_login(cluster: Cluster) -> dict:
    """How Patroni talks to etcd: TLS checked against the cluster CA, as its own etcd user."""
    return {
        "protocol": "https",
        "cacert": etcd_values.pki.CA_FILE,
        "username": cluster.settings["etcd_patroni_user"],
        "password": cluster.secrets["etcd_patroni_password"],
    }


def dcs_digest(cluster: Cluster) -> str:
    """Patroni reads its DCS section only at start: a change of it needs a restart."""
    text = json.dumps([dcs_hosts(cluster), cluster.settings["patroni_dcs_via_local_proxy"], dcs_login(cluster)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def failsafe_mode(settings) -> bool:
    """patroni_failsafe_mode, None meaning: on where the release's Patroni makes it reliable."""
    chosen = settings["patroni_failsafe_mode"]
    return releases.release(settings["debian_release"]).failsafe_mode_reliable if chosen is None else chosen


def dynamic_config(settings) -> dict:
    """The cluster-wide settings Patroni keeps in the DCS (`patronictl show-config`)."""
    return {
        "ttl": settings["patroni_ttl"],
        "loop_wait": settings["patroni_loop_wait"],
        "retry_timeout": settings["patroni_retry_timeout"],
        "maximum_lag_on_failover": settings["patroni_maximum_lag_on_failover"],
        "synchronous_mode": settings["patroni_synchronous_mode"],
        "synchronous_mode_strict": settings["patroni_synchronous_mode_strict"],
        "synchronous_node_count": settings["patroni_synchronous_node_count"],
        "failsafe_mode": failsafe_mode(settings),
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": dict(settings["postgresql_parameters"]),
        },
    }


_BOOL_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def _same(wanted, current) -> bool:
    """Patroni may hand values back as strings ('on', '30s', '10') and patronictl stores
    'on' as a YAML boolean: compare loosely."""
    if isinstance(wanted, bool) or isinstance(current, bool):
        as_bool = [v if isinstance(v, bool) else _BOOL_WORDS.get(str(v).lower()) for v in (wanted, current)]
        return as_bool[0] is not None and as_bool[0] is as_bool[1]
    return str(wanted) == str(current)


# What Patroni assumes for a key absent from the DCS: absent and equal is no change.
PATRONI_DEFAULTS = {
    "synchronous_mode": False,
    "synchronous_mode_strict": False,
    "synchronous_node_count": 1,
    "failsafe_mode": False,
}


def dynamic_config_changes(wanted: dict, current: dict) -> dict[str, object]:
    """Flattened ``{"ttl": 30, "postgresql.parameters.max_connections": 200}`` of what differs."""
    changes: dict[str, object] = {}
    current = {**PATRONI_DEFAULTS, **(current or {})}

    def walk(prefix: str, want: dict, have: dict) -> None:
        for key, value in want.items():
            path = f"{prefix}{key}"
            current_value = have.get(key) if isinstance(have, dict) else None
            if isinstance(value, dict):
                walk(path + ".", value, current_value if isinstance(current_value, dict) else {})
            elif current_value is None or not _same(value, current_value):
                changes[path] = value

    walk("", wanted, current or {})
    return changes


def pg_hba(cluster: Cluster) -> list[str]:
    """scram-sha-256 only; over the network TLS only (hostssl; a plaintext connection from
    anywhere is rejected), replication and clients limited to the nodes and client_networks.
    Loopback and the local socket stay plaintext: they never leave the node."""
    s = cluster.settings
    node_networks = [f"{n.address}/32" for n in cluster.patroni]
    rules = [
        f"local all {s['patroni_superuser']} peer",
        # the PostgreSQL exporter's OS user as its pg_monitor role (with a monitoring host)
        *monitoring.postgres_access(cluster)["pg_hba"],
        "local all all scram-sha-256",
        "host all all 127.0.0.1/32 scram-sha-256",
        # Patroni checks a member's own timeline over a local replication connection
        f"host replication {s['patroni_replication_user']} 127.0.0.1/32 scram-sha-256",
        "hostnossl all all 0.0.0.0/0 reject",
        "hostnossl replication all 0.0.0.0/0 reject",
    ]
    rules += [f"hostssl replication {s['patroni_replication_user']} {net} scram-sha-256" for net in node_networks]
    rules += [f"hostssl all all {net} scram-sha-256" for net in node_networks]
    rules += [
        f"hostssl all all {net} scram-sha-256"
        for net in s["client_networks"]
        if net not in node_networks
    ]
    return rules


def local_parameters(archiving: dict | None) -> dict:
    """The PostgreSQL parameters of each member's own file: TLS, and archiving when there is
    a repository."""
    return {**TLS_PARAMETERS, **((archiving or {}).get("parameters") or {})}


def member_watchdog_mode(settings, container: str | None) -> str:
    """The watchdog mode a member's file says: patroni_watchdog, but "off" on a container,
    which has no watchdog of its own (``container``: its kind, None on a machine)."""
    return "off" if container and settings["patroni_watchdog"] != "required" else settings["patroni_watchdog"]


def config(cluster: Cluster, node: Node, archiving: dict | None = None, watchdog_mode: str | None = None) -> dict:
    """The values of /etc/patroni/<name>.yml for one member. ``archiving``: what the backup
    component adds when there is a repository (pgha.backup.values.patroni_config);
    ``watchdog_mode``: the member's own (pgha.patroni.deploy.watchdog_mode), else
    patroni_watchdog."""
    s = cluster.settings
    secrets = cluster.secrets
    archiving = archiving or {}
    return {
        "scope": s["patroni_scope"],
        "name": node.patroni_name,
        "restapi_listen": f"0.0.0.0:{s['patroni_restapi_port']}",
        "restapi_connect": f"{node.address}:{s['patroni_restapi_port']}",
        "restapi_scheme": RESTAPI_SCHEME,
        "restapi_certfile": pki.cert_file(TLS_SERVICE),
        "restapi_keyfile": pki.key_file(TLS_SERVICE),
        "ca_file": pki.CA_FILE,
        "verify_server": VERIFY_SERVER,
        # set in this file, not the DCS: TLS files and archiving are pgha's own
        "local_parameters": local_parameters(archiving),
        "archiving": archiving,
        "restapi_username": s["patroni_restapi_username"],
        "restapi_password": secrets["restapi_password"],
        "dcs_hosts": dcs_hosts(cluster),
        "dcs_use_proxies": s["patroni_dcs_via_local_proxy"],
        "dcs_login": dcs_login(cluster),
        "dcs_digest": dcs_digest(cluster),
        "dynamic": dynamic_config(s),
        "listen": f"{node.address},127.0.0.1:{s['postgresql_port']}",
        "connect_address": f"{node.address}:{s['postgresql_port']}",
        "data_dir": data_dir(s),
        "bin_dir": bin_dir(s),
        "socket_dir": SOCKET_DIR,
        "superuser": s["patroni_superuser"],
        "superuser_password": secrets["superuser_password"],
        "replication_user": s["patroni_replication_user"],
        "replication_password": secrets["replication_password"],
        "pg_hba": pg_hba(cluster),
        "pg_ident": monitoring.postgres_access(cluster)["pg_ident"],
        "etcd_endpoints": etcd_values.client_endpoints(cluster),
        "watchdog": {"mode": watchdog_mode or s["patroni_watchdog"], "device": WATCHDOG_DEVICE,
                     "safety_margin": WATCHDOG_SAFETY_MARGIN},
    }


def document(config: dict) -> dict:
    """/etc/patroni/<name>.yml as Patroni reads it, from config()'s values."""
    c = config
    login = {"username": c["superuser"], "password": c["superuser_password"], **c["verify_server"]}
    postgresql = {
        "listen": c["listen"],
        "connect_address": c["connect_address"],
        "data_dir": c["data_dir"],
        "bin_dir": c["bin_dir"],
        "pgpass": PGPASS,
        "authentication": {
            "superuser": login,
            "replication": {"username": c["replication_user"], "password": c["replication_password"],
                            **c["verify_server"]},
            "rewind": dict(login),
        },
        "parameters": {"unix_socket_directories": c["socket_dir"], **c["local_parameters"]},
        "pg_hba": c["pg_hba"],
    }
    if c["pg_ident"]:
        postgresql["pg_ident"] = c["pg_ident"]
    archiving = c["archiving"]
    if archiving:
        postgresql.update({
            # a replica behind the leader's WAL catches up from the pgBackRest repository
            "recovery_conf": {"restore_command": archiving["restore_command"]},
            # a new replica is restored from the repository; with no backup there, a base backup
            "create_replica_methods": archiving["replica_methods"],
            "pgbackrest": {"command": archiving["replica_command"], "keep_data": True, "no_params": True},
            # the fallback starts at once, as pgBackRest's backups do (start-fast)
            "basebackup": [{"checkpoint": "fast"}],
        })
    dynamic = c["dynamic"]
    return {
        "scope": c["scope"],
        "name": c["name"],
        "restapi": {
            "listen": c["restapi_listen"],
            "connect_address": c["restapi_connect"],
            "certfile": c["restapi_certfile"],
            "keyfile": c["restapi_keyfile"],
            "cafile": c["ca_file"],  # Patroni checks the other members' REST API against it too
            "authentication": {"username": c["restapi_username"], "password": c["restapi_password"]},
        },
        "ctl": {"cacert": c["ca_file"]},  # patronictl checks the REST API's certificate
        "etcd3": {"hosts": c["dcs_hosts"], "use_proxies": c["dcs_use_proxies"], **c["dcs_login"]},
        "bootstrap": {
            # written to the DCS once, at bootstrap; the deploy keeps the DCS in line after
            "dcs": {**{k: v for k, v in dynamic.items() if k != "postgresql"},
                    "postgresql": {**dynamic["postgresql"],
                                   "parameters": {k: str(v) for k, v in dynamic["postgresql"]["parameters"].items()}}},
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            "pg_hba": c["pg_hba"],
        },
        "postgresql": postgresql,
        "watchdog": c["watchdog"],
    }


def config_text(cluster: Cluster, node: Node, archiving: dict | None = None, watchdog_mode: str | None = None) -> str:
    """The file itself: its header (what the deploy reads back: TextFileHeader), then YAML."""
    values = config(cluster, node, archiving, watchdog_mode)
    header = ["Managed by pgha (deploys/patroni.py) -- changes here are overwritten.",
              f"dcs-digest: {values['dcs_digest']}", f"restapi-scheme: {values['restapi_scheme']}"]
    return yaml_file(header, document(values))


# The roles whose password the deploy keeps equal to the secrets file, so that a rotated
# secret (pgha.secrets.rotate) is rolled out: role name setting -> (secrets key, pgpass file
# on every member, attributes besides LOGIN, created by the deploy). Patroni creates the
# superuser and the replication role at bootstrap; Patroni 4 no longer creates others.
ROLE_PASSWORDS = {
    "patroni_superuser": ("superuser_password", "/etc/patroni/.superuser-pgpass", (), False),
    "patroni_replication_user": ("replication_password", "/etc/patroni/.replication-pgpass", (), False),
    "patroni_admin_user": ("admin_password", ADMIN_PGPASS, ADMIN_ATTRIBUTES, True),
}


def role_pgpass(cluster: Cluster, setting: str = "patroni_admin_user") -> dict:
    """A role's pgpass line: 127.0.0.1, PostgreSQL's port, any database. The secrets and
    role names are URL-safe (pgha.secrets, the settings check): nothing to escape."""
    s = cluster.settings
    key = ROLE_PASSWORDS[setting][0]
    return {
        "address": "127.0.0.1",
        "port": s["postgresql_port"],
        "user": s[setting],
        "password": cluster.secrets[key],
    }


def role_password_sql(cluster: Cluster, setting: str = "patroni_admin_user") -> str:
    """One statement, run as the superuser on the leader: the role given the password of
    its pgpass file (and, for the admin role, created if missing and given LOGIN and its
    attributes): pgha.postgres.roles."""
    _, passfile, attributes, created = ROLE_PASSWORDS[setting]
    pgpass = role_pgpass(cluster, setting)
    prefix = f"{pgpass['address']}:{pgpass['port']}:*:{pgpass['user']}:"
    return password_from_file_sql(pgpass["user"], passfile, prefix, list(attributes) if created else None)


def restapi_credentials(cluster: Cluster) -> dict:
    """curl -K file for the stop-time switchover (the REST API's unsafe methods)."""
    return {
        "username": cluster.settings["patroni_restapi_username"],
        "password": cluster.secrets["restapi_password"],
    }


def handover_script(cluster: Cluster, node: Node) -> dict:
    return {
        "api": f"{RESTAPI_SCHEME}://127.0.0.1:{cluster.settings['patroni_restapi_port']}",
        "ca_file": pki.CA_FILE,
        "curlrc": RESTAPI_CURLRC,
        "leader_check": LEADER_CHECK,
        "member": node.patroni_name,
        "failsafe_wait": failsafe_wait(cluster.settings),
    }


def systemd_unit(cluster: Cluster, node: Node) -> dict:
    return {
        "scope": cluster.settings["patroni_scope"],
        "member": node.patroni_name,
        "config_file": config_file(node),
        "handover": HANDOVER_SCRIPT if cluster.settings["patroni_switchover_on_stop"] else "",
        "stop_timeout": stop_timeout(cluster.settings),
    }


def failsafe_wait(settings) -> int:
    """How long the stop-time switchover waits, at most, for failsafe mode to end on every
    member: the ttl, for which a replica keeps the leader's last POST /failsafe."""
    return settings["patroni_ttl"]


def stop_timeout(settings) -> int:
    """systemd's TimeoutStopSec: 30 s, and with the stop-time switchover the time its script
    may wait for failsafe mode to end (before its own 20 s at most)."""
    return 30 + (failsafe_wait(settings) if settings["patroni_switchover_on_stop"] else 0)


def packages(settings) -> list[str]:
    return [f"postgresql-{settings['postgresql_version']}", "patroni", *PACKAGES_EXTRA]
