"""Pausing every PgBouncer from the control machine (its admin console, as the auth user,
over TLS): `pgha switchover` and the deploy's leader restarts hold the pooled clients'
queries instead of failing them.

``paused(cluster)`` is a context manager: on entry every PgBouncer is paused (PAUSE returns
once its server connections are released: in transaction mode, once every running
transaction ends), within pgbouncer_pause_timeout; on timeout, or when one does not answer,
every one is resumed and PoolerError says which. On exit, every one is resumed, whatever
happened inside.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psycopg2

from pgha.cluster import Cluster, Node
from pgha.pki.authority import client_ca
from pgha.pooler import values

ADMIN_DATABASE = "pgbouncer"


class PoolerError(Exception):
    """A PgBouncer could not be paused in time, or does not answer."""


def admin_options(cluster: Cluster, node: Node) -> dict:
    s = cluster.settings
    return {"host": node.address, "port": s["pgbouncer_port"], "dbname": ADMIN_DATABASE,
            "user": s["pgbouncer_auth_user"], "password": cluster.secrets[values.SECRET_KEY],
            "sslmode": "verify-full", "sslrootcert": str(client_ca(cluster)), "connect_timeout": 3}


def _connect(cluster: Cluster, node: Node):
    conn = psycopg2.connect(**admin_options(cluster, node))
    conn.autocommit = True  # the admin console knows no BEGIN
    return conn


def admin_command(cluster: Cluster, node: Node, command: str) -> list[tuple]:
    """One admin console command on ``node``'s PgBouncer (SHOW ... returns rows)."""
    conn = _connect(cluster, node)
    try:
        with conn.cursor() as cur:
            cur.execute(command)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def resume(cluster: Cluster, nodes: list[Node]) -> list[str]:
    """RESUME on each node; returns the problems (a PgBouncer not paused is no problem)."""
    problems = []
    for node in nodes:
        try:
            admin_command(cluster, node, "RESUME")
        except psycopg2.Error as error:
            if "not paused" not in str(error):
                problems.append(f"{node.name}: {str(error).strip()}")
    return problems


def pause(cluster: Cluster, timeout: float | None = None) -> float:
    """PAUSE every PgBouncer at once; returns the seconds it took. Raises PoolerError
    (every one resumed first) when one does not answer or is not paused in time."""
    timeout = float(timeout or cluster.settings["pgbouncer_pause_timeout"])
    nodes = list(cluster.patroni)
    connections: dict[str, psycopg2.extensions.connection] = {}
    errors: dict[str, str | None] = {}  # a node's PAUSE: None once paused, else its error
    try:
        for node in nodes:
            connections[node.name] = _connect(cluster, node)
    except psycopg2.Error as error:
        for conn in connections.values():
            conn.close()
        raise PoolerError(f"PgBouncer on {node.name} does not answer its admin console: {str(error).strip()}") from None

    def run(node: Node) -> None:
        try:
            with connections[node.name].cursor() as cur:
                cur.execute("PAUSE")
            errors[node.name] = None
        except psycopg2.Error as error:
            errors[node.name] = str(error).strip()

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, timeout - (time.monotonic() - started)))
    seconds = time.monotonic() - started
    late = f"not paused within {timeout:.0f}s (pgbouncer_pause_timeout): a transaction still runs"
    failed = {n.name: errors.get(n.name) or late for n in nodes if n.name not in errors or errors[n.name] is not None}
    if failed:
        resume(cluster, nodes)
    for conn in connections.values():
        conn.close()
    if failed:
        raise PoolerError("PgBouncer not paused, every one resumed: "
                          + "; ".join(f"{name}: {why}" for name, why in failed.items()))
    return seconds


@contextmanager
def paused(cluster: Cluster, timeout: float | None = None):
    """Every PgBouncer paused inside the block (yields the seconds the pause took)."""
    seconds = pause(cluster, timeout)
    try:
        yield seconds
    except BaseException:
        resume(cluster, list(cluster.patroni))
        raise
    problems = resume(cluster, list(cluster.patroni))
    if problems:
        raise PoolerError("PgBouncer not resumed (run RESUME on its admin console): " + "; ".join(problems))
