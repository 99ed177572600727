"""pgha.patroni and templates/patroni/: each member's rendered configuration (identity, REST
API, DCS, bootstrap, postgresql section) and where each secret appears in it."""

from __future__ import annotations

import re

import pytest
import yaml

from pgha.patroni import values as patroni
from pgha.patroni.facts import TextFileHeader
from pgha.patroni.values import dcs_digest, dcs_hosts
from pgha.releases import RELEASES

from .conftest import ETCD_NODES, FAKE_SECRETS, PATRONI_NODES, cluster_with, load_member, render, render_member

PATRONI_BY_NAME = {pg: address for (address, pg, _aliases) in PATRONI_NODES.values()}
SEED_TYPOS = ("wal_keep_segment", "wal_keep_segments", "max_relocation_slots", "max_relication_slots")


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
    # the async soak's finding: a client cut off in a transaction held its row locks, and so
    # every other writer, until the partition healed; now it is dropped 25 s after going silent,
    # idle (the keepalives) or with a reply unacknowledged (tcp_user_timeout)
    assert [parameters[f"tcp_keepalives_{k}"] for k in ("idle", "interval", "count")] == ["10", "5", "3"]
    assert parameters["tcp_user_timeout"] == "25000"


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


def test_restapi_curlrc_holds_the_credentials():
    text = render("patroni/restapi-curlrc.j2", {"username": "patroni", "password": "s3cr3t-value-0123"})
    assert 'user = "patroni:s3cr3t-value-0123"' in text.splitlines()


def test_config_file_is_named_after_the_patroni_name(cluster):
    assert [patroni.config_file(n) for n in cluster.patroni] == [
        "/etc/patroni/pg-1.yml",
        "/etc/patroni/pg-2.yml",
        "/etc/patroni/pg-3.yml",
    ]
