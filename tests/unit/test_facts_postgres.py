"""pgha.postgres.facts: the one psql command line and the facts built on it (outputs recorded
from PostgreSQL 17 on the trixie lab)."""

from __future__ import annotations

import pytest

from pgha.postgres.facts import RoleLogin, make_psql_command

PASSFILE = "/etc/patroni/.admin-pgpass"
ATTRIBUTES = ["createrole", "createdb"]


def test_psql_over_the_socket_by_default():
    assert make_psql_command("select 1", 5434) == (
        "runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5434 -d postgres -Atc 'select 1'"
    )


def test_psql_with_a_role_and_its_pgpass_file():
    command = make_psql_command("select 1", 5434, address="127.0.0.1", role="dba", passfile=PASSFILE)
    assert command == (
        f"runuser -u postgres -- env PGPASSFILE={PASSFILE} psql -X -w -v ON_ERROR_STOP=1 "
        "-h 127.0.0.1 -p 5434 -U dba -d postgres -Atc 'select 1'"
    )


def test_role_login_command_logs_in_over_tcp_with_the_pgpass_file():
    command = RoleLogin().command(role="dba", port=5434, passfile=PASSFILE, attributes=ATTRIBUTES)
    assert f"env PGPASSFILE={PASSFILE} psql -X -w " in command
    assert "-h 127.0.0.1 -p 5434 -U dba -d postgres" in command
    assert "json_build_object(" in command and "rolcreaterole" in command and "rolcreatedb" in command
    assert "password" not in command.lower().replace("pgpassfile", "")
    assert command.endswith("2>/dev/null || true")


def test_role_login_command_skips_what_is_not_a_column_name():
    command = RoleLogin().command(role="dba", port=5434, passfile=PASSFILE, attributes=["createdb", "x; drop"])
    assert "rolcreatedb" in command and "drop" not in command


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # PostgreSQL 17's answer on the trixie lab
        (['{"createrole" : true, "createdb" : true}'], {"login": True, "createrole": True, "createdb": True}),
        (['{"createrole" : true, "createdb" : false}'], {"login": True, "createrole": True, "createdb": False}),
        # the login failed (psql's error goes to /dev/null): no output at all is the default,
        # and anything that is not the JSON object is a failed login too
        ([""], {"login": False}),
        (["psql: error: connection to server at \"127.0.0.1\", port 5434 failed"], {"login": False}),
        (["[1, 2]"], {"login": False}),
    ],
)
def test_role_login_process(output, expected):
    assert RoleLogin().process(output) == expected


def test_role_login_default_is_no_login():
    assert RoleLogin.default() == {"login": False}


def test_postgres_settings_of_the_running_server():
    from pgha.postgres.facts import PostgresSettings

    assert PostgresSettings().process(["ssl=on", "ssl_min_protocol_version=TLSv1.2", ""]) == {
        "ssl": "on", "ssl_min_protocol_version": "TLSv1.2"}
    assert PostgresSettings().process([]) == {}
    assert "from pg_settings where true and name in" in PostgresSettings().command(names=["ssl"], port=5434)
