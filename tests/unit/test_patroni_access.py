"""Who gets into PostgreSQL: the rendered pg_hba (pgha.patroni.values.pg_hba), the admin
role's pgpass file and the statement that keeps the role."""

from __future__ import annotations

import re

import pytest

from pgha.patroni import values as patroni
from pgha.patroni.values import pg_hba
from pgha.postgres.facts import make_psql_command

from .conftest import ETCD_NODES, FAKE_SECRETS, PATRONI_NODES, cluster_with, load_member, render

PATRONI_BY_NAME = {pg: address for (address, pg, _aliases) in PATRONI_NODES.values()}


def method(rule: str) -> str:
    return rule.split()[-1]


# --- pg_hba ------------------------------------------------------------------------------------


def test_pg_hba_is_the_same_in_bootstrap_and_postgresql(cluster):
    doc = load_member(cluster)
    assert doc["bootstrap"]["pg_hba"] == doc["postgresql"]["pg_hba"] == pg_hba(cluster)


def test_pg_hba_uses_scram_except_local_postgres_peer(cluster):
    rules = load_member(cluster)["postgresql"]["pg_hba"]
    not_scram = [rule for rule in rules if method(rule) != "scram-sha-256"]
    assert not_scram == [
        "local all postgres peer",
        # the PostgreSQL exporter (pg_monitor), from its OS user only
        "local postgres pgha_monitor peer map=pgha_monitoring",
        "hostnossl all all 0.0.0.0/0 reject",
        "hostnossl replication all 0.0.0.0/0 reject",
    ]


def test_pg_hba_over_the_network_is_tls_only(cluster):
    rules = pg_hba(cluster)
    remote = [r for r in rules if r.split()[0] != "local" and "127.0.0.1/32" not in r]
    assert all(r.split()[0] in ("hostssl", "hostnossl") for r in remote), remote
    # the plaintext rejects come before any rule that lets a connection in
    first_allow = min(rules.index(r) for r in remote if r.startswith("hostssl"))
    assert all(rules.index(r) < first_allow for r in remote if r.startswith("hostnossl"))


def test_pg_hba_local_postgres_peer_comes_before_local_all(cluster):
    rules = pg_hba(cluster)
    assert rules.index("local all postgres peer") < rules.index("local all all scram-sha-256")


def test_pg_hba_has_no_weak_or_open_rule(cluster):
    text = "\n".join(load_member(cluster)["postgresql"]["pg_hba"])
    assert "md5" not in text
    assert "trust" not in text
    assert "password" not in text.split()
    assert [r for r in text.splitlines() if "0.0.0.0/0" in r] == [
        "hostnossl all all 0.0.0.0/0 reject", "hostnossl replication all 0.0.0.0/0 reject"
    ]
    assert "::/0" not in text


def test_pg_hba_replication_from_each_patroni_node_and_the_member_itself(cluster):
    rules = pg_hba(cluster)
    replication = sorted(rule for rule in rules if rule.split()[1] == "replication" and "reject" not in rule)
    # 127.0.0.1: Patroni reads a member's own timeline over a local replication connection
    assert replication == sorted(
        [f"hostssl replication repl {address}/32 scram-sha-256" for address in PATRONI_BY_NAME.values()]
        + ["host replication repl 127.0.0.1/32 scram-sha-256"]
    )


def test_pg_hba_client_networks(cluster):
    assert "hostssl all all 10.0.3.1/32 scram-sha-256" in pg_hba(cluster)


def test_pg_hba_etcd_nodes_are_not_let_in(cluster):
    text = "\n".join(pg_hba(cluster))
    for address in ETCD_NODES.values():
        assert address not in text


def test_pg_hba_follows_client_networks(groups, group_data):
    networks = ["10.0.3.1/32", "192.168.10.0/24", "10.0.3.141/32"]  # the last is a Patroni node
    rules = pg_hba(cluster_with(groups, group_data, client_networks=networks))
    assert "hostssl all all 192.168.10.0/24 scram-sha-256" in rules
    assert rules.count("hostssl all all 10.0.3.141/32 scram-sha-256") == 1
    assert len(rules) == len(set(rules))



# --- the admin role: its pgpass file and the statement that keeps it -------------------------


def pgpass_entries(text: str) -> list[list[str]]:
    """What libpq reads from a pgpass file: the non-comment lines' five fields."""
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def test_admin_pgpass_holds_the_admin_password(cluster):
    text = render("patroni/role-pgpass.j2", patroni.role_pgpass(cluster, "patroni_admin_user"))
    assert pgpass_entries(text) == [["127.0.0.1", "5434", "*", "dba", FAKE_SECRETS["admin_password"]]]
    assert text.count(FAKE_SECRETS["admin_password"]) == 1
    for key in ("superuser_password", "replication_password", "restapi_password", "haproxy_stats_password"):
        assert FAKE_SECRETS[key] not in text


def test_admin_pgpass_follows_the_settings(groups, group_data):
    cluster = cluster_with(groups, group_data, postgresql_port=5444, patroni_admin_user="appadmin")
    text = render("patroni/role-pgpass.j2", patroni.role_pgpass(cluster, "patroni_admin_user"))
    assert pgpass_entries(text) == [["127.0.0.1", "5444", "*", "appadmin", FAKE_SECRETS["admin_password"]]]


def password_read_by(sql: str, pgpass_text: str) -> str | None:
    """What the statement's SELECT finds in the pgpass file: the rest of the line that starts
    with its prefix (substr from its offset)."""
    match = re.search(r"SELECT substr\(line, (\d+)\) INTO secret .* WHERE starts_with\(line, '([^']*)'\)", sql)
    assert match, sql
    offset, prefix = int(match[1]), match[2]
    assert offset == len(prefix) + 1
    found = [line[offset - 1:] for line in pgpass_text.split("\n") if line.startswith(prefix)]
    return found[0] if len(found) == 1 else None


@pytest.mark.parametrize(
    "changes", [{}, {"postgresql_port": 5444}, {"patroni_admin_user": "appadmin"}, {"debian_release": "trixie"}]
)
def test_admin_role_statement_reads_the_password_the_pgpass_file_holds(groups, group_data, changes):
    cluster = cluster_with(groups, group_data, **changes)
    sql = patroni.role_password_sql(cluster, "patroni_admin_user")
    pgpass = render("patroni/role-pgpass.j2", patroni.role_pgpass(cluster, "patroni_admin_user"))
    assert password_read_by(sql, pgpass) == FAKE_SECRETS["admin_password"]
    assert f"pg_read_file('{patroni.ADMIN_PGPASS}')" in sql


def test_admin_role_statement_creates_then_alters_the_role(cluster):
    sql = patroni.role_password_sql(cluster, "patroni_admin_user")
    assert sql.startswith("DO $pgha$ ") and sql.endswith(" END $pgha$")
    assert "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dba') THEN EXECUTE format('CREATE ROLE %I', 'dba')" in sql
    assert "EXECUTE format('ALTER ROLE %I WITH LOGIN CREATEROLE CREATEDB PASSWORD %L', 'dba', secret)" in sql
    # an error is raised again with its message only: the failing statement holds the password
    assert "EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION 'role %: %', 'dba', SQLERRM;" in sql


def test_admin_role_statement_and_its_command_hold_no_secret(cluster):
    sql = patroni.role_password_sql(cluster, "patroni_admin_user")
    command = make_psql_command(sql, cluster.settings["postgresql_port"], user=cluster.settings["patroni_superuser"])
    for secret in FAKE_SECRETS.values():
        assert secret not in sql and secret not in command
    assert command.startswith("runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5434 ")
