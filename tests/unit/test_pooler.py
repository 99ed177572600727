"""The pooler's values on given settings: its files, the release's limits, the lookup
function as the lab reports it, the refused inputs."""

from __future__ import annotations

import configparser
import json

import pytest

from pgha.errors import ConfigError
from pgha.pooler import values
from pgha.pooler.facts import PoolerLookup

from .conftest import cluster_with, recorded, render


def ini(cluster) -> configparser.ConfigParser:
    text = render("pooler/pgbouncer.ini.j2", values.config(cluster))
    parser = configparser.ConfigParser(comment_prefixes=(";",), allow_no_value=True, delimiters=("=",))
    parser.read_string("\n".join(line for line in text.splitlines() if not line.startswith("%include")))
    return parser


def test_each_database_has_a_read_write_and_a_read_only_pool_through_the_local_haproxy(groups, group_data):
    parsed = ini(cluster_with(groups, group_data, pgbouncer_databases=["postgres", "app"]))
    assert dict(parsed["databases"]) == {
        "postgres": "host=127.0.0.1 port=5432 dbname=postgres",
        "postgres_ro": "host=127.0.0.1 port=5433 dbname=postgres",
        "app": "host=127.0.0.1 port=5432 dbname=app",
        "app_ro": "host=127.0.0.1 port=5433 dbname=app",
    }


def test_tls_on_both_sides_and_scram_through_the_lookup_function(cluster):
    bouncer = ini(cluster)["pgbouncer"]
    assert bouncer["auth_type"] == "scram-sha-256"
    assert bouncer["client_tls_sslmode"] == "require"
    assert bouncer["server_tls_sslmode"] == "verify-full"
    assert bouncer["server_tls_ca_file"] == "/etc/pgha/tls/ca.crt"
    assert bouncer["auth_query"] == "SELECT * FROM pgha_pooler.lookup($1)"
    assert bouncer["auth_user"] == bouncer["admin_users"] == "pgha_pooler"
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["server_login_retry"] == "1"


def test_trixie_looks_roles_up_in_one_database_and_keeps_prepared_statements(cluster):
    bouncer = ini(cluster)["pgbouncer"]
    assert bouncer["auth_dbname"] == "postgres"
    assert bouncer["max_prepared_statements"] == "200"


def test_bookworm_does_without_what_pgbouncer_1_18_lacks(groups, group_data):
    bouncer = ini(cluster_with(groups, group_data, debian_release="bookworm"))["pgbouncer"]
    assert "auth_dbname" not in bouncer and "max_prepared_statements" not in bouncer


@pytest.mark.parametrize("changes, expected", [
    ({"debian_release": "bookworm", "pgbouncer_max_prepared_statements": 100},
     "pgbouncer_max_prepared_statements = 100: PgBouncer 1.18 (bookworm) has no protocol-level prepared statements"),
    ({"debian_release": "bookworm", "pgbouncer_databases": ["postgres", "app"]},
     "pgbouncer_databases = ['postgres', 'app']: PgBouncer 1.18 (bookworm) has no auth_dbname"),
    ({"pgbouncer_databases": ["app", "app_ro"]}, "app_ro would be both a database and another's read-only pool"),
    ({"pgbouncer_auth_user": "dba"}, "pgbouncer_auth_user = 'dba': a role of Patroni's"),
    ({"pgbouncer_pool_mode": "statement"}, "pgbouncer_pool_mode = 'statement'"),
    ({"pgbouncer_databases": "postgres"}, "pgbouncer_databases = 'postgres'"),
    ({"pgbouncer_port": 5432}, "pgbouncer_port = 5432 and haproxy_rw_port = 5432"),
])
def test_what_cannot_work_is_refused_naming_the_setting(groups, group_data, changes, expected):
    with pytest.raises(ConfigError) as raised:
        cluster_with(groups, group_data, **changes)
    assert expected in str(raised.value)


def test_the_lab_reports_the_lookup_function_as_the_deploy_wants_it(cluster):
    """Recorded on the lab (PostgreSQL 17) after the deploy: the operation finds nothing to do."""
    found = PoolerLookup().process(recorded("pgbouncer-lookup-pg17.json").splitlines())
    assert found == values.lookup_wanted(cluster)


def test_a_missing_function_or_a_silent_server_is_none():
    assert PoolerLookup().process([""]) is None
    assert PoolerLookup().process([]) is None


def test_the_secret_is_in_files_only(cluster):
    password = cluster.secrets[values.SECRET_KEY]
    assert values.auth_file(cluster) == f'"pgha_pooler" "{password}"\n'
    assert values.auth_pgpass(cluster).splitlines() == [f"127.0.0.1:5434:*:pgha_pooler:{password}",
                                                        f"127.0.0.1:6432:*:pgha_pooler:{password}"]
    assert password not in values.auth_role_sql(cluster) and password not in values.pooled_check_command(cluster)
    assert password not in json.dumps(values.config(cluster))
