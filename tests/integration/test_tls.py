"""TLS with the cluster CA (issue 13): PostgreSQL through 5432, 5433 and 5434 with
verify-full by every name and address of a node, plaintext refused, replication over TLS
with verify-full, Patroni's REST API over HTTPS (HAProxy's checks and patronictl verify it),
the stats page over TLS, TLS 1.2 as the floor.

This machine does not resolve the nodes' names: libpq is given the name to verify (`host`)
and the address to connect to (`hostaddr`), as a client whose DNS knows the names would.
"""

from __future__ import annotations

import csv
import io
import subprocess

import psycopg2
import pytest
import requests
from conftest import CLUSTER, PATRONI_NAMES
from pg_helpers import CA, PG_PORT, REST_PORT, RO_PORT, RW_PORT, STATS_PORT, STATS_USER, connect, query, roles

from pgha import monitoring
from pgha.monitor import values as monitor_values
from pgha.pki import values as pki
from pgha.pooler import values as pooler_values

NODES = list(CLUSTER.patroni)


def _names(node) -> list[str]:
    return node.all_names + [node.address]


@pytest.mark.parametrize("port", [RW_PORT, RO_PORT, PG_PORT])
@pytest.mark.parametrize("node", NODES, ids=[n.name for n in NODES])
def test_verify_full_by_every_name_and_address(passwords, node, port):
    """Whichever server HAProxy hands the client to, its certificate names the node the
    client asked for."""
    for name in _names(node):
        conn = connect(name, port, passwords["admin_password"], hostaddr=node.address)
        try:
            ((used_ssl, version),) = query(conn, "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
        finally:
            conn.close()
        assert used_ssl is True and version in ("TLSv1.2", "TLSv1.3"), (name, port, version)


def test_a_name_the_certificate_does_not_hold_fails_verification(passwords):
    node = NODES[0]
    with pytest.raises(psycopg2.OperationalError) as error:
        connect("not-a-cluster-name.invalid", RW_PORT, passwords["admin_password"], hostaddr=node.address).close()
    assert "does not match host name" in str(error.value), error.value


def test_another_ca_fails_verification(passwords, tmp_path):
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_text(_self_signed(tmp_path))
    with pytest.raises(psycopg2.OperationalError) as error:
        connect(NODES[0].address, RW_PORT, passwords["admin_password"], sslrootcert=str(other_ca)).close()
    assert "certificate verify failed" in str(error.value), error.value


def _self_signed(tmp_path) -> str:
    from pgha.pki import authority

    authority.ensure_ca(tmp_path / "other", "another CA")
    return (tmp_path / "other" / "ca.crt").read_text()


@pytest.mark.parametrize("port", [RW_PORT, RO_PORT, PG_PORT])
def test_plaintext_is_refused(passwords, port):
    with pytest.raises(psycopg2.OperationalError) as error:
        connect(NODES[0].address, port, passwords["admin_password"], sslmode="disable").close()
    assert "pg_hba.conf rejects connection" in str(error.value) and "no encryption" in str(error.value), error.value


def test_tls_below_1_2_is_refused(passwords):
    with pytest.raises(psycopg2.OperationalError):
        connect(
            NODES[0].address, PG_PORT, passwords["admin_password"],
            ssl_min_protocol_version="TLSv1", ssl_max_protocol_version="TLSv1.1",
        ).close()


def test_replication_uses_tls_with_verify_full(passwords):
    leader, replicas = roles()
    conn = connect(leader.address, PG_PORT, passwords["superuser_password"], user=CLUSTER.settings["patroni_superuser"])
    try:
        rows = query(
            conn,
            "select r.application_name, s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid)",
        )
    finally:
        conn.close()
    assert sorted(rows) == sorted((r.patroni_name, True) for r in replicas), rows
    for replica in replicas:
        conn = connect(replica.address, PG_PORT, passwords["superuser_password"], user=CLUSTER.settings["patroni_superuser"])
        try:
            ((conninfo,),) = query(conn, "select conninfo from pg_stat_wal_receiver")
        finally:
            conn.close()
        assert "sslmode=verify-full" in conninfo and f"sslrootcert={pki.CA_FILE}" in conninfo, conninfo


# --- Patroni's REST API and the stats page ----------------------------------------------------


@pytest.mark.parametrize("node", NODES, ids=[n.name for n in NODES])
def test_rest_api_speaks_https_only(node):
    answer = requests.get(f"https://{node.address}:{REST_PORT}/health", verify=CA, timeout=5)
    assert answer.status_code == 200
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{node.address}:{REST_PORT}/health", timeout=5)


def test_rest_api_unsafe_methods_still_need_the_password():
    node = NODES[0]
    answer = requests.post(f"https://{node.address}:{REST_PORT}/restart", json={}, verify=CA, timeout=5)
    assert answer.status_code == 401, answer.status_code


def _stats_csv(node, password: str) -> list[dict]:
    answer = requests.get(
        f"https://{node.address}:{STATS_PORT}/;csv", auth=(STATS_USER, password), verify=CA, timeout=5
    )
    answer.raise_for_status()
    return list(csv.DictReader(io.StringIO(answer.text.lstrip("# "))))


@pytest.mark.parametrize("node", NODES, ids=[n.name for n in NODES])
def test_haproxy_checks_the_rest_api_over_verified_https(passwords, node):
    """The leader passes the primary backend's check at layer 7 (HTTP 200 over TLS checked
    against the CA); the replicas fail it with an HTTP status, not a TLS error."""
    leader, replicas = roles()
    rows = {r["svname"]: r for r in _stats_csv(node, passwords["haproxy_stats_password"]) if r["pxname"] == "primary"}
    for row in rows.values():
        row["check_status"] = row["check_status"].lstrip("* ")  # "* L7STS": a check is under way
    assert rows[leader.patroni_name]["status"] == "UP", rows[leader.patroni_name]
    assert rows[leader.patroni_name]["check_status"] == "L7OK", rows[leader.patroni_name]
    for replica in replicas:
        assert rows[replica.patroni_name]["check_status"] == "L7STS", rows[replica.patroni_name]


@pytest.mark.parametrize("node", NODES, ids=[n.name for n in NODES])
def test_stats_page_speaks_tls_only(node):
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{node.address}:{STATS_PORT}/", timeout=5)


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_patronictl_checks_the_rest_api_against_the_ca(patroni_hosts, name):
    result = patroni_hosts[name].run("patronictl list -f json")
    assert result.rc == 0, result.stderr
    assert "InsecureRequestWarning" not in result.stderr


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_tls_files_on_the_node(patroni_hosts, name):
    host = patroni_hosts[name]
    for service in ("postgres", pooler_values.TLS_SERVICE):
        key = host.file(pki.key_file(service))
        assert key.user == "postgres" and key.mode == 0o600
    pem = host.file(pki.pem_file("haproxy"))
    assert pem.user == "root" and pem.mode == 0o600
    assert host.file(pki.CA_FILE).mode == 0o644


def test_the_ca_key_stays_on_the_control_machine(patroni_hosts):
    from pgha.pki import authority

    ca_key = authority.directory() / "ca.key"
    assert oct(ca_key.stat().st_mode & 0o777) == "0o600"
    for host in patroni_hosts.values():
        found = host.run("grep -rl 'PRIVATE KEY' /etc/pgha/tls")
        expected = [pki.key_file("postgres"), pki.pem_file("haproxy"), pki.key_file(pooler_values.TLS_SERVICE)]
        if CLUSTER.backup:
            expected.append(pki.key_file("pgbackrest"))
        if monitoring.enabled(CLUSTER):
            expected.append(pki.key_file(monitor_values.TLS_SERVICE))  # the exporters' copy
        assert sorted(found.stdout.split()) == sorted(expected)


def test_openssl_sees_the_node_certificate_with_its_names():
    node = NODES[0]
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{node.address}:{REST_PORT}", "-CAfile", CA,
         "-verify_return_error", "-verify_ip", node.address],
        input="", capture_output=True, text=True, timeout=20,
    )
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout[-600:]
