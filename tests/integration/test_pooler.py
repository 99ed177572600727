"""PgBouncer on every Patroni node (issue 22): each node's pooler reaches the leader with
<db> and a replica with <db>_ro, TLS on both sides, scram through the lookup function (no
superuser, no plaintext, a changed password works at once); a pooled client holding one
connection writes through `pgha switchover` without an error."""

from __future__ import annotations

import time

import helpers
import psycopg2
import pytest
from conftest import CLUSTER
from pg_helpers import connect, query, roles, wait_for_healthy_cluster

from pgha import client
from pgha.pooler import values as pooler

S = CLUSTER.settings
PORT = S["pgbouncer_port"]
DATABASE = S["pgbouncer_databases"][0]
ADMIN_PASSWORD = CLUSTER.secrets["admin_password"]
TEST_ROLE = "pgha_test_pooled"


def pooled(node, dbname: str = DATABASE, **extra):
    return connect(node.address, PORT, extra.pop("password", ADMIN_PASSWORD), dbname=dbname, **extra)


def refusal(node, **extra) -> str:
    """The error a pooled connection gets (the test fails when it connects)."""
    try:
        pooled(node, **extra).close()
    except psycopg2.Error as error:
        return str(error)
    pytest.fail(f"PgBouncer on {node.name} let in {extra}")


def superuser_sql(sql: str):
    conn = connect(roles()[0].address, S["postgresql_port"], CLUSTER.secrets["superuser_password"],
                   user=S["patroni_superuser"])
    try:
        return query(conn, sql)
    finally:
        conn.close()


@pytest.mark.parametrize("node", CLUSTER.patroni, ids=lambda n: n.name)
def test_each_pooler_reaches_the_leader_and_a_replica_over_tls_both_ways(node):
    leader, replicas = roles()
    for dbname, addresses, in_recovery in ((DATABASE, {leader.address}, False),
                                           (DATABASE + pooler.READ_ONLY_SUFFIX, {r.address for r in replicas}, True)):
        conn = pooled(node, dbname)
        try:
            assert conn.info.ssl_in_use  # the client's side
            ((address, recovery, server_tls),) = query(
                conn, "select host(inet_server_addr()), pg_is_in_recovery(), "
                      "(select ssl from pg_stat_ssl where pid = pg_backend_pid())")
        finally:
            conn.close()
        assert address in addresses and recovery is in_recovery and server_tls, (dbname, address, recovery)


@pytest.mark.parametrize("node", CLUSTER.patroni[:1], ids=lambda n: n.name)
def test_no_superuser_no_plaintext_no_wrong_password(node):
    assert "no such user" in refusal(node, user=S["patroni_superuser"], password=CLUSTER.secrets["superuser_password"])
    assert "SSL required" in refusal(node, sslmode="disable")
    assert "authentication failed" in refusal(node, password=ADMIN_PASSWORD + "x")


def test_only_the_auth_user_may_run_the_lookup_function():
    ((public, admin, auth_user, definer, path),) = superuser_sql(
        f"select has_function_privilege('public', '{pooler.LOOKUP_FUNCTION}', 'execute'), "
        f"has_function_privilege('{S['patroni_admin_user']}', '{pooler.LOOKUP_FUNCTION}', 'execute'), "
        f"has_function_privilege('{S['pgbouncer_auth_user']}', '{pooler.LOOKUP_FUNCTION}', 'execute'), "
        f"prosecdef, proconfig from pg_proc where oid = '{pooler.LOOKUP_FUNCTION}'::regprocedure")
    assert (public, admin, auth_user, definer) == (False, False, True, True)
    assert path == [f"search_path={pooler.LOOKUP_SEARCH_PATH}"]


@pytest.mark.destructive
def test_a_changed_password_works_through_the_pooler_at_once():
    node = CLUSTER.patroni[0]
    superuser_sql(f"drop role if exists {TEST_ROLE}; create role {TEST_ROLE} login password 'first-Aa1Bb2cc'")
    try:
        pooled(node, user=TEST_ROLE, password="first-Aa1Bb2cc").close()
        superuser_sql(f"alter role {TEST_ROLE} password 'second-Aa1Bb2cc'")
        pooled(node, user=TEST_ROLE, password="second-Aa1Bb2cc").close()
        assert "authentication failed" in refusal(node, user=TEST_ROLE, password="first-Aa1Bb2cc")
        superuser_sql(f"alter role {TEST_ROLE} valid until '2000-01-01'")
        # the lookup hands out nothing: PgBouncer 1.18 says no such user, 1.24 fails the login
        expired = refusal(node, user=TEST_ROLE, password="second-Aa1Bb2cc")
        assert "authentication failed" in expired or "no such user" in expired, expired
    finally:
        superuser_sql(f"drop role if exists {TEST_ROLE}")


SWITCHOVERS = 3  # bench/switchover_pooled.py runs ten and gives the distribution


@pytest.mark.destructive
def test_a_pooled_client_writes_through_switchovers_without_an_error():
    """One connection through PgBouncer, a write every 20 ms, SWITCHOVERS `pgha switchover`s:
    not one error, the connection never lost (the gaps are the bench's figures)."""
    from pghalab.drills.writer import Writer, setup_table

    setup_table(CLUSTER)
    gaps = []
    for _ in range(SWITCHOVERS):
        assert not wait_for_healthy_cluster(120)
        writer = Writer(CLUSTER, label="pooled", interval=0.02, port_setting="pgbouncer_port")
        writer.start()
        try:
            assert helpers.wait_until(lambda w=writer: len(w.acks) > 10, 30), writer.errors
            started = time.monotonic()
            result = client.switchover(CLUSTER)
            time.sleep(1)
        finally:
            writer.stop()
        assert result["paused"] is not None
        assert writer.errors == [], writer.errors
        gaps.append(round(writer.longest_gap(started)["seconds"], 2))
    print(f"longest gaps between acknowledged pooled writes: {gaps}")
    assert not wait_for_healthy_cluster(120)
