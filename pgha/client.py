"""Talking to the deployed cluster from the control machine: PostgreSQL through HAProxy,
and a switchover through Patroni's REST API (pgha.patroni.rest). Used by the CLI, the HA
drills and the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2

from pgha import monitoring
from pgha.cluster import Cluster
from pgha.errors import SwitchoverError
from pgha.patroni import rest
from pgha.pki.authority import client_ca
from pgha.pooler import api as pooler_api
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
    The pooled ones go to PgBouncer (any node's reaches the leader, or the replicas with
    <db>_ro: no target_session_attrs). The password is the admin_password secret
    (PGPASSWORD or a pgpass line): never printed."""
    from pgha.pooler import values as pooler

    s = cluster.settings
    names = ",".join(n.connect_name for n in cluster.patroni)
    tls = {"sslmode": "verify-full", "sslrootcert": shown_path(client_ca(cluster))}
    strings = {
        kind: format_dsn({"host": names, "port": s[setting], "dbname": "postgres", "user": s["patroni_admin_user"],
                          "target_session_attrs": SESSION_ATTRS[setting], **tls})
        for kind, setting in ENDPOINTS.items()
    }
    database = s["pgbouncer_databases"][0]
    for kind, dbname in (("pooled read-write", database), ("pooled read-only", database + pooler.READ_ONLY_SUFFIX)):
        strings[kind] = format_dsn({"host": names, "port": s["pgbouncer_port"], "dbname": dbname,
                                    "user": s["patroni_admin_user"], **tls})
    return strings


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


def write_probe(cluster: Cluster, **extra) -> str | None:
    """The address of the server that accepted a write through HAProxy's 5432 (``extra``:
    e.g. ``host=`` one node's), or None."""
    try:
        with psycopg2.connect(dsn(cluster, **extra)) as conn, conn.cursor() as cur:
            cur.execute("select inet_server_addr()::text, txid_current()")  # a write: assigns an xid
            address = cur.fetchone()[0]
        conn.close()
        return address.split("/")[0]
    except psycopg2.Error:
        return None


def leader_through_every_haproxy(cluster: Cluster, old_host: str | None = None) -> str | None:
    """The address of the server that takes writes through every node's HAProxy, when it is
    the same everywhere (and not ``old_host``), else None."""
    port = cluster.settings["haproxy_rw_port"]
    seen = {write_probe(cluster, host=n.address, port=port) for n in cluster.patroni}
    return seen.pop() if len(seen) == 1 and None not in seen and old_host not in seen else None


def wait_for_writes_everywhere(cluster: Cluster, timeout: float = 120) -> str:
    """Wait until one server takes writes through every node's HAProxy; its address."""
    address = wait_for(lambda: leader_through_every_haproxy(cluster), timeout, interval=0.1)
    if not address:
        raise SwitchoverError(f"no leader took writes through every HAProxy within {timeout:.0f}s")
    return address


def _ready_to_switch(cluster: Cluster, candidate: str | None) -> dict:
    """The leader, once ``/cluster`` shows it and a healthy replica (``candidate``, if
    given). Waits up to one Patroni loop and a little: a member's state in the DCS is written
    once per loop, so right after a switchover the old leader, already streaming, may still
    be listed as starting."""
    seen: dict = {}

    def ready() -> bool:
        current = seen["members"] = rest.members(cluster)
        seen["old"] = next((m for m in current if m["role"] == "leader"), None)
        seen["replicas"] = [m for m in current if m["role"] == "replica" and m["state"] in ("running", "streaming")]
        names = {m["name"] for m in seen["replicas"]}
        return seen["old"] is not None and (candidate in names if candidate is not None else bool(names))

    if wait_for(ready, cluster.settings["patroni_loop_wait"] + 5, interval=0.5):
        return seen["old"]
    if seen["old"] is None:
        raise SwitchoverError("no leader: a switchover needs a running leader (`pgha failover --to MEMBER` when it is gone)")
    if candidate is not None:
        raise SwitchoverError(
            f"candidate {candidate!r} is not a healthy replica: expected one of "
            f"{', '.join(sorted(m['name'] for m in seen['replicas'])) or 'none'}"
        )
    states = ", ".join(f"{m['name']} {m['raw_role']} {m['state']}" for m in seen["members"] if m["role"] != "leader")
    raise SwitchoverError(f"no healthy replica to switch over to (the others: {states or 'none'})")


def switchover(cluster: Cluster, candidate: str | None = None, timeout: float = 60, pause: bool = True,
               progress: Callable[[str], None] | None = None) -> dict:
    """Move the leadership through Patroni (``POST /switchover``) to ``candidate`` (a
    Patroni name) or to any healthy replica, and wait until the new leader accepts writes
    through every node's HAProxy. With ``pause``, every PgBouncer is paused first and
    resumed after that (pgha.pooler.api): a pooled client's query waits instead of failing.
    Returns ``{"from", "to", "seconds", "paused", "failsafe_waited"}`` (seconds from the
    request, or the pause, to the new leader seen through every HAProxy; paused: the seconds
    PAUSE took, or None; failsafe_waited: see _failsafe_ended, said to ``progress``)."""
    old = _ready_to_switch(cluster, candidate)
    waited = _failsafe_ended(cluster, progress)
    started = time.monotonic()
    if not pause:
        return {**_switch(cluster, old, candidate, timeout, started), "paused": None, "failsafe_waited": waited}
    try:
        with pooler_api.paused(cluster) as pause_seconds:
            result = _switch(cluster, old, candidate, timeout, started)
    except pooler_api.PoolerError as error:
        raise SwitchoverError(f"{error} (`pgha switchover --no-pause` switches over without pausing)") from None
    return {**result, "paused": round(pause_seconds, 3), "failsafe_waited": waited}


def _failsafe_ended(cluster: Cluster, progress: Callable[[str], None] | None = None) -> dict | None:
    """Wait (up to the ttl, the leader taking writes meanwhile) until no member is in
    failsafe mode: right after the leader lost the DCS, a replica it kept in line would
    follow it for the rest of the ttl once its key is released, and the cluster would stay
    without a leader that long (the soak's finding). {"seconds", "members"} when it waited."""
    members = rest.failsafe_active(cluster)
    if not members:
        return None
    started = time.monotonic()
    ttl = cluster.settings["patroni_ttl"]
    if progress:
        progress(f"failsafe mode active on {', '.join(members)} (the leader lost etcd a moment ago): waiting up to "
                 f"{ttl}s for it to end, the leader taking writes meanwhile, or they would follow it without its key")
    if not wait_for(lambda: not rest.failsafe_active(cluster), ttl + 5, interval=0.5):
        raise SwitchoverError(f"failsafe mode still active on {', '.join(rest.failsafe_active(cluster))} after "
                              f"{ttl + 5}s: the leader does not reach etcd, and a switchover needs it")
    return {"seconds": round(time.monotonic() - started, 1), "members": members}


def _switch(cluster: Cluster, old: dict, candidate: str | None, timeout: float, started: float) -> dict:
    """POST /switchover, and meanwhile every node's HAProxy probed until each sends writes
    to the same new leader: Patroni answers the request only at its next one-second poll
    after the change, when the new leader may long since accept writes."""
    s = cluster.settings
    body = {"leader": old["name"], **({"candidate": candidate} if candidate else {})}
    answered: dict = {}

    def request() -> None:
        try:
            answered["response"] = rest.request(
                cluster, "POST", old["host"], "switchover", json=body,
                auth=(s["patroni_restapi_username"], cluster.secrets["restapi_password"]), timeout=timeout,
            )
        except Exception as error:  # noqa: BLE001 - said as the switchover's error below
            answered["error"] = error

    def refused() -> str | None:
        if "error" in answered:
            return f"Patroni's REST API did not answer the switchover: {answered['error']}"
        response = answered.get("response")
        if response is not None and response.status_code != 200:
            return f"Patroni refused the switchover: {response.status_code} {response.text.strip()}"
        return None

    asking = threading.Thread(target=request, daemon=True)
    asking.start()
    seen: dict[str, str | None] = {}

    def new_leader_everywhere():
        if refused():
            return True
        for node in cluster.patroni:
            if not seen.get(node.name):
                seen[node.name] = None
        probes = [threading.Thread(target=lambda n=node: seen.__setitem__(
            n.name, write_probe(cluster, host=n.address, port=s["haproxy_rw_port"])), daemon=True)
            for node in cluster.patroni if seen[node.name] in (None, old["host"])]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join()
        addresses = set(seen.values())
        return len(addresses) == 1 and None not in addresses and old["host"] not in addresses

    finished = wait_for(new_leader_everywhere, max(0.0, timeout - (time.monotonic() - started)), interval=0.05)
    seconds = round(time.monotonic() - started, 3)
    problem = refused()
    if problem:
        raise SwitchoverError(problem)
    if not finished:
        waiting = sorted(name for name, address in seen.items() if address in (None, old["host"]))
        raise SwitchoverError(f"no write accepted by a new leader through every HAProxy within {timeout:.0f}s"
                              + (f" (still waiting: {', '.join(waiting)})" if waiting else ""))
    address = next(iter(seen.values()))
    new = next((n.patroni_name for n in cluster.patroni if n.address == address), address)
    if candidate is not None and new != candidate:
        raise SwitchoverError(f"Patroni made {new} the leader, not {candidate}")
    return {"from": old["name"], "to": new, "seconds": seconds}
