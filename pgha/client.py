"""Talking to the deployed cluster from the control machine: PostgreSQL through HAProxy,
and a switchover through Patroni's REST API (pgha.patroni.rest). Used by the CLI, the HA
drills and the tests."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2

from pgha import monitoring
from pgha.cluster import Cluster
from pgha.errors import SwitchoverError
from pgha.patroni import rest
from pgha.pki.authority import client_ca
from pgha.waiting import wait_for


def tls_options(cluster: Cluster) -> dict[str, str]:
    """libpq's TLS options for every client connection from the control machine: the
    server's certificate and the name asked for are checked against the cluster CA."""
    return {"sslmode": "verify-full", "sslrootcert": str(client_ca(cluster))}


def options(cluster: Cluster, port_setting: str = "haproxy_rw_port", **extra) -> dict:
    """The libpq options of a client connection, as a mapping: every Patroni node's
    ``port_setting`` (multi-host), the admin user and its password, TLS verify-full;
    ``extra`` overrides any of them (``host=..., port=...`` for one node). The one place
    client connections are described: a tool that cannot take the password inline
    (pgbench's command line) pops it and hands it over another way, keeping the rest."""
    s = cluster.settings
    hosts = ",".join(n.address for n in cluster.patroni)
    ports = ",".join(str(s[port_setting]) for _ in cluster.patroni)
    return {
        "host": hosts,
        "port": ports,
        "user": s["patroni_admin_user"],
        "password": cluster.secrets["admin_password"],
        "dbname": "postgres",
        "connect_timeout": 1,
        **tls_options(cluster),
        **({"target_session_attrs": "read-write"} if port_setting == "haproxy_rw_port" else {}),
        **extra,
    }


# target_session_attrs of the printed connection strings: the read-only port may land on the
# leader once no replica is left (prefer-standby accepts it; read-only would refuse it)
SESSION_ATTRS = {"haproxy_rw_port": "read-write", "haproxy_ro_port": "prefer-standby"}
ENDPOINTS = {"read-write": "haproxy_rw_port", "read-only": "haproxy_ro_port"}


def shown_path(path: Path) -> str:
    """A path as the user sees it: relative to the current directory when under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(Path(path).resolve())


def connection_strings(cluster: Cluster) -> dict[str, str]:
    """The connection strings a user copies, complete: every node, its port, the database,
    the admin user, the session kind, verify-full against the CA's path as seen from here.
    The password is the admin_password secret (PGPASSWORD or a pgpass line): never printed."""
    s = cluster.settings
    names = ",".join(n.connect_name for n in cluster.patroni)
    return {
        kind: format_dsn({
            "host": names, "port": s[setting], "dbname": "postgres", "user": s["patroni_admin_user"],
            "target_session_attrs": SESSION_ATTRS[setting], "sslmode": "verify-full",
            "sslrootcert": shown_path(client_ca(cluster)),
        })
        for kind, setting in ENDPOINTS.items()
    }


def connect_text(cluster: Cluster) -> str:
    """What the deploy says last and `pgha status --dsn` prints: the connection strings and
    where the password is."""
    from pgha import secrets

    strings = connection_strings(cluster)
    width = max(len(k) for k in strings) + 1
    lines = [f"{kind + ':':<{width}} {dsn}" for kind, dsn in strings.items()]
    lines.append(f"{'password:':<{width}} admin_password in {shown_path(secrets.path())} "
                 "(PGPASSWORD, or a line of ~/.pgpass)")
    if monitoring.enabled(cluster):
        from pgha.monitor import api

        lines.append(f"{'monitoring:':<{width}} {api.overview_url(cluster)} (user {cluster.settings['monitoring_user']}, "
                     f"password {monitoring.SECRET_KEY} in {shown_path(secrets.path())})")
    return "\n".join(lines)


def format_dsn(opts: dict) -> str:
    """A libpq connection string of ``opts`` (values are plain tokens: no quoting)."""
    return " ".join(f"{k}={v}" for k, v in opts.items())


def dsn(cluster: Cluster, port_setting: str = "haproxy_rw_port", **extra) -> str:
    """A multi-host libpq connection string over every Patroni node's HAProxy."""
    return format_dsn(options(cluster, port_setting, **extra))


def write_probe(cluster: Cluster) -> str | None:
    """The address of the server that accepted a write through HAProxy's 5432, or None."""
    try:
        with psycopg2.connect(dsn(cluster)) as conn, conn.cursor() as cur:
            cur.execute("select inet_server_addr()::text, txid_current()")  # a write: assigns an xid
            address = cur.fetchone()[0]
        conn.close()
        return address.split("/")[0]
    except psycopg2.Error:
        return None


def switchover(cluster: Cluster, candidate: str | None = None, timeout: float = 60) -> dict:
    """Move the leadership through Patroni (``POST /switchover``) to ``candidate`` (a
    Patroni name) or to any healthy replica, and wait until the new leader accepts writes
    through HAProxy. Returns ``{"from", "to", "seconds"}`` (seconds from the request to the
    first accepted write)."""
    s = cluster.settings
    current = rest.members(cluster)
    old = next((m for m in current if m["role"] == "leader"), None)
    if old is None:
        raise SwitchoverError("no leader: a switchover needs a running leader (use failover)")
    replicas = [m for m in current if m["role"] == "replica" and m["state"] in ("running", "streaming")]
    if candidate is not None and candidate not in {m["name"] for m in replicas}:
        raise SwitchoverError(
            f"candidate {candidate!r} is not a healthy replica: expected one of "
            f"{', '.join(sorted(m['name'] for m in replicas)) or 'none'}"
        )
    if not replicas:
        raise SwitchoverError("no healthy replica to switch over to")
    body = {"leader": old["name"], **({"candidate": candidate} if candidate else {})}
    started = time.monotonic()
    answer = rest.request(
        cluster,
        "POST",
        old["host"],
        "switchover",
        json=body,
        auth=(s["patroni_restapi_username"], cluster.secrets["restapi_password"]),
        timeout=timeout,
    )
    if answer.status_code != 200:
        raise SwitchoverError(f"Patroni refused the switchover: {answer.status_code} {answer.text.strip()}")
    def new_leader_writes():
        address = write_probe(cluster)
        if address and address != old["host"]:
            new = next((n.patroni_name for n in cluster.patroni if n.address == address), address)
            if candidate is None or new == candidate:
                return {"from": old["name"], "to": new, "seconds": round(time.monotonic() - started, 3)}
        return None

    result = wait_for(new_leader_writes, max(0.0, timeout - (time.monotonic() - started)), interval=0.05)
    if not result:
        raise SwitchoverError(f"no write accepted by a new leader within {timeout:.0f}s")
    return result
