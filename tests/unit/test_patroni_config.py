"""pgha.patroni and templates/patroni/: each member's rendered configuration, its pg_hba, the
systemd unit, and the comparison of the wanted dynamic configuration with Patroni's /config."""

from __future__ import annotations

import configparser
import dataclasses
import json
import re

import pytest
import yaml

from pgha.backup import values as backup_values
from pgha.patroni import values as patroni
from pgha.patroni.facts import PatroniDynamicConfig, TextFileHeader
from pgha.patroni.rest import LEADER_CHECK
from pgha.patroni.values import dcs_digest, dcs_hosts, dynamic_config, dynamic_config_changes, pg_hba
from pgha.postgres.facts import make_psql_command
from pgha.releases import RELEASES
from pgha.settings.loader import load_group_data

from .conftest import ETCD_NODES, FAKE_SECRETS, GROUP_DATA_DIR, PATRONI_NODES, cluster_with, recorded, render

PATRONI_BY_NAME = {pg: address for (address, pg, _aliases) in PATRONI_NODES.values()}

# /config (patroni-3.0.2-config.json) was recorded on a lab deployed with group_data's own
# values: these tests compare what group_data wants with what Patroni answered. (The two wal
# timeouts came later, added as Patroni stores a parameter: as the deploy gave it, trixie's
# /config answered the same.)
RECORDED_SETTINGS = {
    key: value
    for key, value in load_group_data(GROUP_DATA_DIR)["all"].items()
    if key.startswith(("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout",
                       "patroni_maximum_lag", "patroni_synchronous", "postgresql_parameters"))
} | {"patroni_failsafe_mode": False}  # recorded on bookworm (Patroni 3.0.2), failsafe off
SEED_TYPOS = ("wal_keep_segment", "wal_keep_segments", "max_relocation_slots", "max_relication_slots")


def render_member(cluster, name: str = "pg-1", secrets: dict = FAKE_SECRETS) -> str:
    return patroni.config_text(dataclasses.replace(cluster, secrets=secrets), cluster.node(name),
                               backup_values.patroni_config(cluster))


def load_member(cluster, name: str = "pg-1") -> dict:
    return yaml.safe_load(render_member(cluster, name))


def recorded_config() -> dict:
    return json.loads(recorded("patroni-3.0.2-config.json"))


def recorded_data(group_data: dict, **changes) -> dict:
    """group_data with the values the recorded /config was made from (and ``changes``)."""
    return {**group_data, **RECORDED_SETTINGS, **changes}


def method(rule: str) -> str:
    return rule.split()[-1]


# --- the member's identity and REST API ------------------------------------------------------


def test_rendered_config_parses(cluster):
    doc = load_member(cluster)
    assert isinstance(doc, dict)
    assert set(doc) == {"scope", "name", "restapi", "ctl", "etcd3", "bootstrap", "postgresql", "watchdog"}


def test_watchdog_is_automatic_by_default_with_patronis_device(cluster):
    assert load_member(cluster)["watchdog"] == {"mode": "automatic", "device": "/dev/watchdog", "safety_margin": 5}


def test_scope_and_name(cluster):
    doc = load_member(cluster)
    assert doc["scope"] == "my-ha-cluster"
    assert doc["name"] == "pg-1"


@pytest.mark.parametrize("name", sorted(PATRONI_BY_NAME))
def test_restapi_listens_everywhere_and_advertises_the_node_address(cluster, name):
    restapi = load_member(cluster, name)["restapi"]
    assert restapi["listen"] == "0.0.0.0:8008"
    assert restapi["connect_address"] == f"{PATRONI_BY_NAME[name]}:8008"
    assert not restapi["connect_address"].startswith("127.")


def test_restapi_authentication(cluster):
    assert load_member(cluster)["restapi"]["authentication"] == {
        "username": "patroni",
        "password": FAKE_SECRETS["restapi_password"],
    }


def test_restapi_port_follows_the_setting(groups, group_data):
    cluster = cluster_with(groups, group_data, patroni_restapi_port=8018)
    restapi = load_member(cluster, "pg-2")["restapi"]
    assert restapi["listen"] == "0.0.0.0:8018"
    assert restapi["connect_address"] == "10.0.3.201:8018"


# --- the DCS section ---------------------------------------------------------------------------


def test_dcs_through_the_local_proxy(groups, group_data):
    cluster = cluster_with(groups, group_data, patroni_dcs_via_local_proxy=True)
    doc = load_member(cluster)
    assert doc["etcd3"] == {"hosts": ["127.0.0.1:2379"], "use_proxies": True, **ETCD_LOGIN}
    assert "etcd" not in doc  # the v2 API section: Patroni must use etcd3


def test_dcs_straight_to_the_etcd_members(groups, group_data):
    cluster = cluster_with(groups, group_data, patroni_dcs_via_local_proxy=False)
    assert load_member(cluster)["etcd3"] == {
        "hosts": [f"{address}:2379" for address in ETCD_NODES.values()],
        "use_proxies": False,
        **ETCD_LOGIN,
    }


# TLS checked against the cluster CA (the etcd certificates hold 127.0.0.1 for the proxy),
# as etcd's Patroni user
ETCD_LOGIN = {
    "protocol": "https",
    "cacert": "/etc/pgha/tls/ca.crt",
    "username": "patroni",
    "password": FAKE_SECRETS["etcd_patroni_password"],
}


def test_dcs_digest_follows_the_etcd_user_and_password(groups, group_data):
    # Patroni reads its etcd3 section at start only: a new password must restart it
    base = cluster_with(groups, group_data)
    other_user = cluster_with(groups, group_data, etcd_patroni_user="patroni2")
    rotated = cluster_with(groups, group_data)
    rotated.secrets = {**rotated.secrets, "etcd_patroni_password": "another-password-0123456789"}
    assert len({dcs_digest(base), dcs_digest(other_user), dcs_digest(rotated)}) == 3


def test_dcs_proxy_port_follows_haproxy_etcd_port(groups, group_data):
    cluster = cluster_with(groups, group_data, haproxy_etcd_port=12379)
    assert dcs_hosts(cluster) == ["127.0.0.1:12379"]


def test_dcs_digest_differs_between_proxy_and_direct(groups, group_data):
    via_proxy = dcs_digest(cluster_with(groups, group_data, patroni_dcs_via_local_proxy=True))
    direct = dcs_digest(cluster_with(groups, group_data, patroni_dcs_via_local_proxy=False))
    assert via_proxy != direct
    assert len(via_proxy) == 12 and int(via_proxy, 16) >= 0


def test_dcs_digest_is_stable(groups, group_data):
    assert dcs_digest(cluster_with(groups, group_data)) == dcs_digest(cluster_with(groups, group_data))


def test_dcs_digest_follows_etcd_members_only_without_the_proxy(groups, group_data):
    def digest(proxy: bool, members: list[str]) -> str:
        g = dict(groups)
        g["etcd"] = [entry for entry in groups["etcd"] if entry[0] in members]
        return dcs_digest(cluster_with(g, group_data, patroni_dcs_via_local_proxy=proxy, etcd_allow_even_members=True))

    three, two = ["etcd1", "etcd2", "etcd3"], ["etcd1", "etcd2"]
    assert digest(True, three) == digest(True, two)  # Patroni's file does not change
    assert digest(False, three) != digest(False, two)


def test_dcs_digest_is_in_the_file_header_the_fact_reads(cluster):
    text = render_member(cluster)
    # the fact's command: head -n 5 FILE | grep -E '^# [a-z-]+: '
    header = [line for line in text.splitlines()[:5] if re.match(r"^# [a-z-]+: ", line)]
    assert TextFileHeader().process(header) == {"dcs-digest": dcs_digest(cluster), "restapi-scheme": "https"}


# --- bootstrap: the dynamic configuration, initdb, users ----------------------------------------


def test_bootstrap_dcs_timings_from_group_data(cluster, group_data):
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert dcs["ttl"] == group_data["patroni_ttl"]
    assert dcs["loop_wait"] == group_data["patroni_loop_wait"]
    assert dcs["retry_timeout"] == group_data["patroni_retry_timeout"]
    assert dcs["maximum_lag_on_failover"] == group_data["patroni_maximum_lag_on_failover"]
    assert all(isinstance(dcs[key], int) for key in ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover"))


def test_bootstrap_dcs_follows_group_data(groups, group_data):
    cluster = cluster_with(
        groups, group_data, patroni_ttl=45, patroni_loop_wait=5, patroni_retry_timeout=15,
        patroni_maximum_lag_on_failover=0,
    )
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["maximum_lag_on_failover"]) == (45, 5, 15, 0)


def test_bootstrap_postgresql_rewind_slots_and_parameters(cluster, group_data):
    postgresql = load_member(cluster)["bootstrap"]["dcs"]["postgresql"]
    assert postgresql["use_pg_rewind"] is True
    assert postgresql["use_slots"] is True
    parameters = postgresql["parameters"]
    assert parameters == {name: str(value) for name, value in group_data["postgresql_parameters"].items()}
    assert parameters["wal_level"] == "replica"
    assert parameters["hot_standby"] == "on"
    assert parameters["password_encryption"] == "scram-sha-256"
    for name in ("wal_keep_size", "max_wal_senders", "max_replication_slots", "checkpoint_timeout"):
        assert name in parameters
    # the soak's finding: a replica cut off silently held synchronous commits for PostgreSQL's
    # 60 s wal_sender_timeout (57 s measured); 10 s here (19 s measured)
    assert (parameters["wal_sender_timeout"], parameters["wal_receiver_timeout"]) == ("10s", "10s")


def test_parameters_have_none_of_the_seed_typos(cluster):
    text = render_member(cluster)
    parameters = yaml.safe_load(text)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    for typo in SEED_TYPOS:
        assert typo not in parameters
        assert typo not in text


def test_parameter_values_stay_strings(groups, group_data):
    # 'on' and 'off' would be booleans in YAML 1.1; Patroni gets PostgreSQL's own spelling
    parameters = dict(group_data["postgresql_parameters"], wal_log_hints="off", max_connections=200)
    cluster = cluster_with(groups, group_data, postgresql_parameters=parameters)
    rendered = load_member(cluster)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert rendered["hot_standby"] == "on"
    assert rendered["wal_log_hints"] == "off"
    assert rendered["max_connections"] == "200"


def test_initdb(cluster):
    assert load_member(cluster)["bootstrap"]["initdb"] == [{"encoding": "UTF8"}, "data-checksums"]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_no_bootstrap_users_for_any_release(groups, group_data, release):
    # Patroni 4 refuses bootstrap.users ("User creation is not be supported starting from
    # v4.0.0"): the deploy keeps the admin role itself, on both versions
    doc = load_member(cluster_with(groups, group_data, debian_release=release))
    assert "users" not in doc["bootstrap"]
    assert FAKE_SECRETS["admin_password"] not in render_member(cluster_with(groups, group_data, debian_release=release))


# --- the postgresql section ------------------------------------------------------------------


def test_authentication(cluster):
    authentication = load_member(cluster)["postgresql"]["authentication"]
    verify = {"sslmode": "verify-full", "sslrootcert": "/etc/pgha/tls/ca.crt"}
    assert authentication["replication"] == {
        "username": "repl", "password": FAKE_SECRETS["replication_password"], **verify
    }
    assert authentication["superuser"] == {
        "username": "postgres", "password": FAKE_SECRETS["superuser_password"], **verify
    }
    assert authentication["rewind"] == authentication["superuser"]


@pytest.mark.parametrize("name", sorted(PATRONI_BY_NAME))
def test_postgresql_listen_and_connect_address(cluster, name):
    postgresql = load_member(cluster, name)["postgresql"]
    hosts, _, port = postgresql["listen"].rpartition(":")
    assert port == "5434"
    assert PATRONI_BY_NAME[name] in hosts.split(",")
    assert postgresql["connect_address"] == f"{PATRONI_BY_NAME[name]}:5434"


def test_postgresql_paths(cluster):
    postgresql = load_member(cluster)["postgresql"]
    assert postgresql["data_dir"] == "/var/lib/postgresql/17/my-ha-cluster"  # trixie's
    assert postgresql["bin_dir"] == "/usr/lib/postgresql/17/bin"
    assert postgresql["parameters"] == {
        "unix_socket_directories": "/var/run/postgresql",
        "ssl": "on",
        "ssl_cert_file": "/etc/pgha/tls/postgres.crt",
        "ssl_key_file": "/etc/pgha/tls/postgres.key",
        "ssl_ca_file": "/etc/pgha/tls/ca.crt",
        "ssl_min_protocol_version": "TLSv1.2",
        # the lab has a `backup` host: archiving to pgBackRest
        "archive_mode": "on",
        "archive_command": "/usr/local/lib/pgha/pgbackrest-archive-push --stanza=my-ha-cluster archive-push %p",
        "archive_timeout": "60s",
    }


def test_restapi_over_https_checked_against_the_cluster_ca(cluster):
    doc = load_member(cluster)
    assert doc["restapi"]["certfile"] == "/etc/pgha/tls/postgres.crt"
    assert doc["restapi"]["keyfile"] == "/etc/pgha/tls/postgres.key"
    assert doc["restapi"]["cafile"] == doc["ctl"]["cacert"] == "/etc/pgha/tls/ca.crt"


def test_postgresql_paths_follow_the_version(groups, group_data):
    postgresql = load_member(cluster_with(groups, group_data, debian_release="trixie", postgresql_version=17))["postgresql"]
    assert postgresql["data_dir"] == "/var/lib/postgresql/17/my-ha-cluster"
    assert postgresql["bin_dir"] == "/usr/lib/postgresql/17/bin"


def test_postgresql_port_follows_the_setting(groups, group_data):
    postgresql = load_member(cluster_with(groups, group_data, postgresql_port=5444))["postgresql"]
    assert postgresql["listen"].endswith(":5444")
    assert postgresql["connect_address"] == "10.0.3.141:5444"


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


# --- secrets appear only where they belong ------------------------------------------------------


def test_each_secret_appears_only_at_its_keys(cluster):
    text = render_member(cluster)
    assert text.count(FAKE_SECRETS["restapi_password"]) == 1
    assert text.count(FAKE_SECRETS["admin_password"]) == 0  # in its own pgpass file
    assert text.count(FAKE_SECRETS["replication_password"]) == 1
    assert text.count(FAKE_SECRETS["superuser_password"]) == 2  # superuser and rewind
    assert text.count(FAKE_SECRETS["haproxy_stats_password"]) == 0
    assert text.count(FAKE_SECRETS["etcd_patroni_password"]) == 1
    assert text.count(FAKE_SECRETS["etcd_root_password"]) == 0

    found = {}

    def walk(path: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{path}.{key}" if path else str(key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{path}[{index}]", item)
        elif value in FAKE_SECRETS.values():
            found[path] = value

    walk("", yaml.safe_load(text))
    assert found == {
        "restapi.authentication.password": FAKE_SECRETS["restapi_password"],
        "postgresql.authentication.superuser.password": FAKE_SECRETS["superuser_password"],
        "postgresql.authentication.replication.password": FAKE_SECRETS["replication_password"],
        "postgresql.authentication.rewind.password": FAKE_SECRETS["superuser_password"],
        "etcd3.password": FAKE_SECRETS["etcd_patroni_password"],
    }


def test_the_secrets_are_the_ones_given(cluster):
    other = {key: value[::-1] for key, value in FAKE_SECRETS.items()}
    text = render_member(cluster, secrets=other)
    for key in ("restapi_password", "replication_password", "superuser_password"):
        assert FAKE_SECRETS[key] not in text
        assert other[key] in text


# --- the systemd unit --------------------------------------------------------------------------


def load_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("handover", ["/usr/local/lib/pgha/patroni-handover", ""])
def test_systemd_unit(cluster, handover):
    node = cluster.node("pg-1")
    text = render(
        "patroni/patroni.service.j2",
        {
            "scope": "my-ha-cluster",
            "member": "pg-1",
            "config_file": patroni.config_file(node),
            "handover": handover,
            "stop_timeout": 60,
        },
    )
    unit = load_unit(text)
    service = unit["Service"]
    # patroni_switchover_on_stop: the leader hands over before it stops
    assert service.get("ExecStop") == (handover or None)
    assert service["KillMode"] == "process"
    assert service["TimeoutStartSec"] == "30"
    assert service["TimeoutStopSec"] == "60"
    assert service["ExecStart"] == "/usr/bin/patroni /etc/patroni/pg-1.yml"
    assert service["User"] == "postgres"
    assert service["Group"] == "postgres"
    assert service["Type"] == "simple"
    assert "my-ha-cluster" in unit["Unit"]["Description"]
    assert "pg-1" in unit["Unit"]["Description"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_handover_script_switches_over_only_from_an_unpaused_leader():
    text = render(
        "patroni/handover.sh.j2",
        {"api": "https://127.0.0.1:8008", "ca_file": "/etc/pgha/tls/ca.crt", "curlrc": "/etc/patroni/.restapi-curlrc",
         "member": "pg-1", "leader_check": "/primary", "failsafe_wait": 30},
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "*'\"pause\": true'*) exit 0" in text
    assert "-X OPTIONS \"$API/primary\")\" = 200 ] || exit 0" in text
    assert "-K /etc/patroni/.restapi-curlrc -X POST" in text
    assert '-d \'{"leader": "pg-1"}\' "$API/switchover"' in text
    assert lines[-1] == "exit 0"  # never blocks the stop
    assert "password" not in text.lower().replace("-k /etc/patroni", "")


def test_handover_script_asks_the_leader_check_of_the_rest_module(cluster):
    config = patroni.handover_script(cluster, cluster.node("pg-1"))
    assert config["leader_check"] == LEADER_CHECK == "/primary"


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


def test_restapi_curlrc_holds_the_credentials():
    text = render("patroni/restapi-curlrc.j2", {"username": "patroni", "password": "s3cr3t-value-0123"})
    assert 'user = "patroni:s3cr3t-value-0123"' in text.splitlines()


def test_config_file_is_named_after_the_patroni_name(cluster):
    assert [patroni.config_file(n) for n in cluster.patroni] == [
        "/etc/patroni/pg-1.yml",
        "/etc/patroni/pg-2.yml",
        "/etc/patroni/pg-3.yml",
    ]


# --- dynamic_config_changes -------------------------------------------------------------------


def test_recorded_config_matches_the_settings_it_was_made_from(group_data):
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), recorded_config()) == {}


def test_recorded_config_through_the_fact(group_data):
    current = PatroniDynamicConfig().process(recorded("patroni-3.0.2-config.json").splitlines())
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_changed_ttl(group_data):
    wanted = dynamic_config(recorded_data(group_data, patroni_ttl=31))
    assert dynamic_config_changes(wanted, recorded_config()) == {"ttl": 31}


def test_new_parameter(group_data):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "max_connections": 200}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    assert dynamic_config_changes(wanted, recorded_config()) == {"postgresql.parameters.max_connections": 200}


def test_changed_parameter(group_data):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "max_connections": 200}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    current = recorded_config()
    current["postgresql"]["parameters"]["max_connections"] = "100"
    assert dynamic_config_changes(wanted, current) == {"postgresql.parameters.max_connections": 200}
    current["postgresql"]["parameters"]["max_connections"] = "200"
    assert dynamic_config_changes(wanted, current) == {}


def test_numbers_given_back_as_strings_are_the_same(group_data):
    current = recorded_config()
    current.update(ttl="30", loop_wait="10", retry_timeout="10", maximum_lag_on_failover="1048576")
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("value", [True, "true", "on", "True", "yes"])
def test_use_slots_true_in_any_spelling(group_data, value):
    current = recorded_config()
    current["postgresql"]["use_slots"] = value
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("value", [False, "false", "off"])
def test_use_slots_false_is_a_change(group_data, value):
    current = recorded_config()
    current["postgresql"]["use_slots"] = value
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {"postgresql.use_slots": True}


def test_missing_keys_are_changes(group_data):
    current = recorded_config()
    del current["retry_timeout"]
    del current["postgresql"]["parameters"]["wal_level"]
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {
        "retry_timeout": 10,
        "postgresql.parameters.wal_level": "replica",
    }


def test_no_current_config_means_everything_changes(group_data):
    changes = dynamic_config_changes(dynamic_config(recorded_data(group_data)), None)
    assert changes["ttl"] == 30
    assert changes["postgresql.use_pg_rewind"] is True
    assert changes["postgresql.parameters.max_wal_senders"] == 10
    assert len(changes) == 4 + 2 + len(RECORDED_SETTINGS["postgresql_parameters"])


def test_keys_only_in_the_dcs_are_left_alone(group_data):
    current = recorded_config()
    current["master_start_timeout"] = 300
    current["postgresql"]["parameters"]["work_mem"] = "8MB"
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_parameter_stored_as_the_opposite_boolean_is_a_change(group_data):
    current = recorded_config()
    current["postgresql"]["parameters"]["hot_standby"] = False  # as `-p hot_standby=off` stores it
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {"postgresql.parameters.hot_standby": "on"}


def test_parameter_stored_as_boolean_by_patronictl_is_the_same(group_data):
    # regression: _same compared str("on") with str(True) and proposed the change on every run.
    # dynamic_config_applied runs `patronictl edit-config -p hot_standby=on`; patronictl
    # stores yaml.safe_load("on"), i.e. True. The next run must then see no change.
    current = recorded_config()
    current["postgresql"]["parameters"]["hot_standby"] = yaml.safe_load("on")
    assert current["postgresql"]["parameters"]["hot_standby"] is True
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("word, stored", [("on", True), ("off", False), ("yes", True)])
def test_any_on_off_parameter_stored_as_boolean_is_the_same(group_data, word, stored):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "wal_log_hints": word}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    current = recorded_config()
    current["postgresql"]["parameters"]["wal_log_hints"] = yaml.safe_load(word)
    assert current["postgresql"]["parameters"]["wal_log_hints"] is stored
    assert dynamic_config_changes(wanted, current) == {}


# --- synchronous replication settings (in the DCS) -------------------------------------------


def test_bootstrap_synchronous_settings_from_group_data(cluster, group_data):
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is group_data["patroni_synchronous_mode"]
    assert dcs["synchronous_mode_strict"] is group_data["patroni_synchronous_mode_strict"]
    assert dcs["synchronous_node_count"] == group_data["patroni_synchronous_node_count"]


def test_bootstrap_synchronous_settings_follow_group_data(groups, group_data):
    cluster = cluster_with(
        groups, group_data, patroni_synchronous_mode=True, patroni_synchronous_mode_strict=True,
        patroni_synchronous_node_count=2,
    )
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_mode_strict"], dcs["synchronous_node_count"]) == (True, True, 2)


def test_synchronous_settings_absent_from_the_dcs_are_patroni_defaults(group_data):
    # the recorded /config (Patroni 3.0.2) has no synchronous_* key: Patroni's defaults apply
    current = recorded_config()
    assert not any(key.startswith("synchronous") for key in current)
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_turning_synchronous_mode_on_is_a_change(group_data):
    wanted = dynamic_config(recorded_data(group_data, patroni_synchronous_mode=True))
    assert dynamic_config_changes(wanted, recorded_config()) == {"synchronous_mode": True}
    current = {**recorded_config(), "synchronous_mode": True}
    assert dynamic_config_changes(wanted, current) == {}


@pytest.mark.parametrize(("setting", "role"), [("patroni_superuser", "postgres"), ("patroni_replication_user", "repl")])
def test_bootstrap_roles_get_their_password_only(cluster, setting, role):
    sql = patroni.role_password_sql(cluster, setting)
    passfile = patroni.ROLE_PASSWORDS[setting][1]
    assert f"pg_read_file('{passfile}'), E'\\n')" in sql
    assert f"WHERE starts_with(line, '127.0.0.1:5434:*:{role}:')" in sql
    assert f"EXECUTE format('ALTER ROLE %I WITH PASSWORD %L', '{role}', secret)" in sql
    assert "CREATE ROLE" not in sql
    assert all(secret not in sql for secret in FAKE_SECRETS.values())


# --- DCS failsafe mode -------------------------------------------------------------------------


@pytest.mark.parametrize(("release", "chosen", "expected"), [
    ("trixie", None, True), ("bookworm", None, False), ("bookworm", True, True), ("trixie", False, False),
])
def test_failsafe_mode_follows_the_release_unless_chosen(group_data, release, chosen, expected):
    settings = {**group_data, "debian_release": release, "patroni_failsafe_mode": chosen}
    assert dynamic_config(settings)["failsafe_mode"] is expected


def test_failsafe_mode_absent_from_the_dcs_is_off(group_data):
    current = recorded_config()
    assert "failsafe_mode" not in current
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}
    turned_on = dynamic_config(recorded_data(group_data, patroni_failsafe_mode=True))
    assert dynamic_config_changes(turned_on, current) == {"failsafe_mode": True}
