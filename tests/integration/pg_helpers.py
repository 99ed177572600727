"""Helpers shared by the Patroni and HAProxy integration tests: PostgreSQL connections from
this machine, the Patroni REST API, the cluster's roles.

The tests connect from the machine running the lab (10.0.3.1, the bridge): pg_hba lets it in
through `client_networks`. Only lab addresses are contacted. Passwords come from the secrets
file (carried by the checked Cluster) and never appear in a message or a command line.
"""

from __future__ import annotations

import uuid

import psycopg2
from helpers import CLUSTER

from pgha import client
from pgha.patroni import rest
from pgha.pki.authority import client_ca
from pgha.waiting import wait_for

S = CLUSTER.settings
PG_PORT = S["postgresql_port"]
REST_PORT = S["patroni_restapi_port"]
RW_PORT = S["haproxy_rw_port"]
RO_PORT = S["haproxy_ro_port"]
STATS_PORT = S["haproxy_stats_port"]
ETCD_PROXY_PORT = S["haproxy_etcd_port"]
SUPERUSER = S["patroni_superuser"]
ADMIN = S["patroni_admin_user"]
REST_USER = S["patroni_restapi_username"]
STATS_USER = S["haproxy_stats_user"]

PATRONI = list(CLUSTER.patroni)
BY_PG_NAME = {n.patroni_name: n for n in PATRONI}
BY_ADDRESS = {n.address: n for n in PATRONI}
ADDRESSES = [n.address for n in PATRONI]

CA = str(client_ca(CLUSTER))  # the cluster CA's certificate on this machine

TEST_SCHEMA = "pgha_test"
PROBE_TABLE = f"{TEST_SCHEMA}.probe"


# --- PostgreSQL -----------------------------------------------------------------------------


def connect(host: str, port: int, password: str, user: str = ADMIN, dbname: str = "postgres",
            timeout: int = 5, **extra):
    """TLS with verify-full against the cluster CA unless ``extra`` says otherwise."""
    conn = psycopg2.connect(
        host=host, port=port, user=user, password=password, dbname=dbname,
        connect_timeout=timeout, application_name="pgha-tests", **{**client.tls_options(CLUSTER), **extra},
    )
    conn.autocommit = True
    return conn


def query(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def server_identity(host: str, port: int, password: str, **extra) -> tuple[str, bool]:
    """(address the server answered on, pg_is_in_recovery()) over a new connection."""
    conn = connect(host, port, password, **extra)
    try:
        ((address, in_recovery),) = query(conn, "select host(inet_server_addr()), pg_is_in_recovery()")
        return address, in_recovery
    finally:
        conn.close()


def try_server_identity(host: str, port: int, password: str, timeout: int = 3):
    """server_identity, or None when the connection or the query fails."""
    try:
        return server_identity(host, port, password, timeout=timeout)
    except psycopg2.Error:
        return None


def replication_states(leader_address: str, superuser_password: str) -> dict[str, str]:
    """pg_stat_replication on the leader (as the superuser): {application_name: state}."""
    conn = connect(leader_address, PG_PORT, superuser_password, user=SUPERUSER)
    try:
        return dict(query(conn, "select application_name, state from pg_stat_replication"))
    finally:
        conn.close()


def ensure_probe_table(leader_address: str, passwords: dict) -> None:
    """A schema owned by the admin user (PostgreSQL 15 gives PUBLIC no CREATE on `public`),
    and the probe table, created by the admin user itself."""
    conn = connect(leader_address, PG_PORT, passwords["superuser_password"], user=SUPERUSER)
    try:
        query(conn, f"create schema if not exists {TEST_SCHEMA} authorization {ADMIN}")
    finally:
        conn.close()
    conn = connect(leader_address, PG_PORT, passwords["admin_password"])
    try:
        query(
            conn,
            f"create table if not exists {PROBE_TABLE} "
            "(id bigserial primary key, value text not null unique, "
            "written_at timestamptz not null default now())",
        )
    finally:
        conn.close()


def unique_value(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def count_value(host: str, port: int, password: str, value: str) -> int | None:
    """Rows holding ``value`` in the probe table, or None if it cannot be read (yet)."""
    try:
        conn = connect(host, port, password, timeout=3)
    except psycopg2.Error:
        return None
    try:
        ((count,),) = query(conn, f"select count(*) from {PROBE_TABLE} where value = %s", (value,))
        return count
    except psycopg2.Error:
        return None
    finally:
        conn.close()


WAL_FILL_TABLE = "public.pgha_test_wal_fill"  # not in TEST_SCHEMA: the superuser writes it (that schema is the admin's)


def write_wal(host, megabytes: int = 4) -> None:
    """About ``megabytes`` of WAL on the primary ``host`` (a testinfra host): a table filled
    and dropped, as the superuser over the local socket."""
    from pgha.postgres.facts import make_psql_command

    rows = megabytes * 30000
    statement = (f"drop table if exists {WAL_FILL_TABLE}; create table {WAL_FILL_TABLE} as "
                 f"select g, md5(g::text) as filler from generate_series(1, {rows}) g; drop table {WAL_FILL_TABLE}")
    host.check_output("cd /tmp && " + make_psql_command(statement, PG_PORT))


# --- Patroni REST API -----------------------------------------------------------------------


def rest_url(address: str, path: str) -> str:
    return rest.url(CLUSTER, address, path)


def rest_cluster(address: str) -> list[dict]:
    """The members of GET /cluster on one node, roles normalised, sorted by name."""
    response = rest.request(CLUSTER, "GET", address, "cluster", timeout=5)
    response.raise_for_status()
    return rest.parse_cluster(response.json())


def options_status(address: str, endpoint: str) -> int:
    return rest.request(CLUSTER, "OPTIONS", address, endpoint, timeout=5).status_code


def roles(address: str | None = None) -> tuple:
    """(leader node, [replica nodes]) as GET /cluster on ``address`` (default: first member)
    reports them; fails unless there is exactly one leader."""
    members = rest_cluster(address or ADDRESSES[0])
    leaders = [m for m in members if m["role"] == "leader"]
    assert len(leaders) == 1, f"expected exactly one leader in /cluster, got {members}"
    replicas = [BY_PG_NAME[m["name"]] for m in members if m["role"] == "replica"]
    return BY_PG_NAME[leaders[0]["name"]], replicas


def wait_for_healthy_cluster(timeout: float = 90) -> str:
    """Poll until the deploy's own verdict (pgha.patroni.rest.health: one leader, every
    other member streaming) holds; return '' or the last problem seen."""
    seen = {"problems": ["not checked"]}

    def healthy() -> bool:
        seen.update(rest.health(CLUSTER))
        return not seen["problems"]

    return "" if wait_for(healthy, timeout, interval=2) else "; ".join(seen["problems"])
