"""HAProxy on every Patroni node (issue 5, verification run): the ports, 5432 to the leader,
5433 round-robin over the replicas (read-only), the stats page's authentication, the local
etcd proxy, the multi-host connection string, `haproxy -c`, idempotence.

This machine does not resolve the Patroni names (pg-1, ...): the multi-host connection
string uses the nodes' addresses, as the README says for clients on the lab's host.
"""

from __future__ import annotations

import json

import helpers
import psycopg2
import pytest
import requests
from conftest import CLUSTER, ETCD_NAMES, PATRONI_NAMES
from pg_helpers import (
    ADDRESSES,
    ADMIN,
    CA,
    ETCD_PROXY_PORT,
    PG_PORT,
    PROBE_TABLE,
    REST_PORT,
    RO_PORT,
    RW_PORT,
    STATS_PORT,
    STATS_USER,
    connect,
    ensure_probe_table,
    query,
    roles,
    server_identity,
    unique_value,
)

from pgha.pki.values import CA_FILE

CONFIG_FILE = "/etc/haproxy/haproxy.cfg"
DEPLOY = "deploys/haproxy.py"


def address(name: str) -> str:
    return CLUSTER.node(name).address


def _listeners(host) -> dict[str, str]:
    """`ss -ltnp` on a node: {"address:port": process name}."""
    result = host.run("ss -Hltnp")
    assert result.rc == 0, result.stderr
    found = {}
    for line in result.stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and 'users:(("' in cells[-1]:
            found[cells[3]] = cells[-1].split('"')[1]
    return found


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_ports_listen(patroni_hosts, name):
    host = patroni_hosts[name]
    expected = {
        f"0.0.0.0:{RW_PORT}": "haproxy",
        f"0.0.0.0:{RO_PORT}": "haproxy",
        f"0.0.0.0:{STATS_PORT}": "haproxy",
        f"127.0.0.1:{ETCD_PROXY_PORT}": "haproxy",
        f"0.0.0.0:{REST_PORT}": "patroni",
        f"{address(name)}:{PG_PORT}": "postgres",
        f"127.0.0.1:{PG_PORT}": "postgres",
    }
    for where in expected:
        assert host.socket(f"tcp://{where}").is_listening, f"nothing listens on {where}"
    listeners = _listeners(host)
    assert {k: listeners.get(k) for k in expected} == expected


@pytest.fixture(scope="module")
def leader_and_replicas():
    leader, replicas = roles()
    assert len(replicas) == 2, replicas
    return leader, replicas


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_rw_port_lands_on_the_leader_and_accepts_a_write(passwords, leader_and_replicas, name):
    leader, _ = leader_and_replicas
    ensure_probe_table(leader.address, passwords)
    conn = connect(address(name), RW_PORT, passwords["admin_password"])
    try:
        assert query(conn, "select host(inet_server_addr()), pg_is_in_recovery()") == [
            (leader.address, False)
        ]
        value = unique_value(f"haproxy-rw-{name}")
        query(conn, f"insert into {PROBE_TABLE} (value) values (%s)", (value,))
        assert query(conn, f"select count(*) from {PROBE_TABLE} where value = %s", (value,)) == [(1,)]
        query(conn, f"delete from {PROBE_TABLE} where value = %s", (value,))
    finally:
        conn.close()


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_ro_port_alternates_over_the_two_replicas(passwords, leader_and_replicas, name):
    _, replicas = leader_and_replicas
    seen = [server_identity(address(name), RO_PORT, passwords["admin_password"]) for _ in range(6)]
    assert sorted({a for a, _ in seen}) == sorted(r.address for r in replicas), seen
    assert all(in_recovery for _, in_recovery in seen), seen
    # round-robin: never twice in a row on the same replica
    assert all(seen[i][0] != seen[i + 1][0] for i in range(len(seen) - 1)), seen


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_no_replica_accepts_a_write_through_the_ro_port(passwords, leader_and_replicas, name):
    _, replicas = leader_and_replicas
    refused = {}
    for _ in range(2 * len(replicas)):
        conn = connect(address(name), RO_PORT, passwords["admin_password"])
        try:
            ((server,),) = query(conn, "select host(inet_server_addr())")
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction) as error:
                query(conn, f"insert into {PROBE_TABLE} (value) values (%s)", (unique_value("ro"),))
            assert "read-only transaction" in str(error.value)
            refused[server] = True
        finally:
            conn.close()
    assert sorted(refused) == sorted(r.address for r in replicas), refused


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_stats_page_needs_credentials(passwords, name):
    url = f"https://{address(name)}:{STATS_PORT}/"
    ok = requests.get(url, auth=(STATS_USER, passwords["haproxy_stats_password"]), timeout=5, verify=CA)
    assert ok.status_code == 200, ok.status_code
    assert "Statistics Report" in ok.text
    assert requests.get(url, timeout=5, verify=CA).status_code == 401
    assert requests.get(url, auth=(STATS_USER, "wrong-password"), timeout=5, verify=CA).status_code == 401


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_etcd_member_list_through_the_local_proxy(patroni_hosts, name):
    host = patroni_hosts[name]
    command = (
        f"curl -s -m 3 --cacert {CA_FILE} -X POST https://127.0.0.1:{ETCD_PROXY_PORT}/v3/cluster/member/list -d '{{}}'"
    )

    def members():
        # a member stopped by a concurrent test may take a check or two to leave the rotation
        result = host.run(command)
        try:
            return sorted(m.get("name", "") for m in json.loads(result.stdout)["members"])
        except (ValueError, KeyError, TypeError):
            return None

    assert helpers.wait_until(members, timeout=15, interval=1) == sorted(ETCD_NAMES)


def test_multi_host_dsn_reaches_the_leader(passwords, leader_and_replicas):
    leader, _ = leader_and_replicas
    dsn = f"host={','.join(ADDRESSES)} port={RW_PORT} dbname=postgres target_session_attrs=read-write"
    conn = psycopg2.connect(
        dsn, user=ADMIN, password=passwords["admin_password"], connect_timeout=5
    )
    try:
        with conn.cursor() as cur:
            cur.execute("select host(inet_server_addr()), pg_is_in_recovery()")
            assert cur.fetchall() == [(leader.address, False)]
    finally:
        conn.close()


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_haproxy_config_is_valid(patroni_hosts, name):
    # -V: HAProxy 3.0 (trixie) says "Configuration file is valid" only when verbose, 2.6 always
    result = patroni_hosts[name].run(f"haproxy -c -V -f {CONFIG_FILE}")
    assert result.rc == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
    # the check reads the saved servers' states too, and says so for each server it finds down
    warnings = [line for line in (result.stdout + result.stderr).splitlines()
                if "[WARNING]" in line and "changed from server-state after a reload" not in line]
    assert warnings == []


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_haproxy_service_enabled_and_running(patroni_hosts, name):
    service = patroni_hosts[name].service("haproxy")
    assert service.is_enabled
    assert service.is_running


@pytest.mark.destructive
def test_second_haproxy_deploy_changes_nothing():
    rc, output = helpers.run_pyinfra(helpers.INVENTORY, DEPLOY, timeout=600)
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
    total = helpers.grand_total(output)
    # every operation ran on the Patroni nodes and found nothing to do
    assert total["error"] == 0 and total["no_change"] == total["hosts"] > 0, total


# --- the client boundary: HAProxy's, PostgreSQL's and the REST API's ports answer the Patroni
# nodes and client_networks only ---------------------------------------------------------------

BOUNDARY_PORTS = [RW_PORT, RO_PORT, STATS_PORT, PG_PORT, REST_PORT]

@pytest.mark.parametrize("port", BOUNDARY_PORTS)
@pytest.mark.parametrize("outsider", ETCD_NAMES)
def test_haproxy_ports_refuse_a_host_outside_the_client_networks(lab_hosts, outsider, port):
    """The etcd members are not clients of PostgreSQL (as pg_hba says for 5434)."""
    for target in ADDRESSES:
        result = lab_hosts[outsider].run(helpers.tcp_connect_command(target, port))
        assert result.rc != 0 and "Connection refused" in result.stdout, (outsider, target, port, result.stdout)


@pytest.mark.parametrize("port", BOUNDARY_PORTS)
def test_haproxy_ports_answer_the_patroni_nodes(patroni_hosts, port):
    host = patroni_hosts[PATRONI_NAMES[0]]
    for target in ADDRESSES:
        result = host.run(helpers.tcp_connect_command(target, port))
        assert result.rc == 0, (target, port, result.stdout)
