"""pgha.postgres.parameters: postgresql_parameters checked against PostgreSQL's own catalogue
(pgha/postgres/catalogue/<major>.json), Patroni's managed parameters and the topology.

Table-driven: each bad row must give exactly one one-line problem naming the parameter, the
value as written and what is expected; each good row must give none. The catalogue files are
compared with what generate.py makes of recorded samples of the real servers' answers.
"""

from __future__ import annotations

import json

import pytest

from pgha.postgres import parameters as P
from pgha.settings.loader import load_group_data
from pghalab import catalogue as generate

from .conftest import GROUP_DATA_DIR, recorded

# group_data's own parameters: the valid starting point every row changes
DEFAULTS = load_group_data(GROUP_DATA_DIR)["all"]["postgresql_parameters"]


def with_defaults(**changes) -> dict:
    return {**DEFAULTS, **changes}


def row(changes: dict, version: int, fragment: str, *, members: int = 3, sync: bool = False,
        sync_count: int = 1, replace: bool = False, id: str):
    parameters = changes if replace else {**DEFAULTS, **changes}
    return pytest.param(parameters, version, members, sync, sync_count, fragment, id=id)


BAD = [
    # --- types, units and ranges (PostgreSQL's own rules) ----------------------------------
    row({"max_connections": "lots"}, 15,
        "['max_connections'] = 'lots': expected an integer from 1 to 262143 (PostgreSQL 15)",
        id="integer-not-a-number-15"),
    row({"max_connections": "lots"}, 17,
        "= 'lots': expected an integer from 1 to 262143 (PostgreSQL 17)", id="integer-not-a-number-17"),
    row({"max_connections": "100MB"}, 15, "a unit is not accepted here: expected an integer "
        "from 1 to 262143", id="integer-unit-on-unitless"),
    row({"max_connections": 262144}, 17, "that is 262144, out of range", id="integer-above-max"),
    row({"max_connections": True}, 15, "= True: expected an integer", id="integer-python-bool"),
    row({"max_connections": "1_000"}, 15, "expected an integer", id="integer-python-only-syntax"),
    row({"shared_buffers": "9TB"}, 15, "'9TB': that is 1207959552 x 8kB, out of range: expected "
        "an integer from 16 to 1073741823 x 8kB, or a size with a unit (B, kB, MB, GB, TB)",
        id="blocks-above-max"),
    row({"shared_buffers": "100kB"}, 17, "that is 12 x 8kB, out of range", id="blocks-below-min"),
    row({"shared_buffers": "1gb"}, 15, "unit 'gb' is not accepted here", id="unit-case-sensitive"),
    row({"work_mem": "1XB"}, 17, "['work_mem'] = '1XB': unit 'XB' is not accepted here: expected "
        "an integer from 64 to 2147483647 kB", id="memory-unknown-unit"),
    row({"work_mem": "63kB"}, 15, "that is 63 kB, out of range", id="memory-below-min"),
    row({"work_mem": "5min"}, 15, "unit 'min' is not accepted here", id="time-unit-on-memory"),
    row({"checkpoint_timeout": "2d"}, 15, "that is 172800 s, out of range: expected an integer "
        "from 30 to 86400 s, or a time with a unit (us, ms, s, min, h, d) (PostgreSQL 15)",
        id="time-above-max"),
    row({"checkpoint_timeout": "29s"}, 17, "that is 29 s, out of range", id="time-below-min"),
    row({"autovacuum_naptime": "500ms"}, 17, "= '500ms': that is 0 s, out of range: expected an "
        "integer from 1 to 2147483 s", id="time-rounded-to-base-unit"),
    row({"checkpoint_timeout": "30GB"}, 17, "unit 'GB' is not accepted here", id="memory-unit-on-time"),
    row({"checkpoint_completion_target": 1.5}, 15, "= 1.5: that is 1.5, out of range: expected a "
        "number from 0 to 1 (PostgreSQL 15)", id="real-above-max"),
    row({"vacuum_cost_delay": "150ms"}, 17, "that is 150 ms, out of range: expected a number from "
        "0 to 100 ms", id="real-with-unit-above-max"),
    row({"random_page_cost": "nan"}, 15, "expected a number from 0 to", id="real-nan"),
    row({"hot_standby": "o"}, 15, "= 'o': expected a boolean: on, off, true, false, yes, no, 1 or 0",
        id="bool-ambiguous-prefix"),
    row({"wal_log_hints": "enabled"}, 17, "= 'enabled': expected a boolean", id="bool-not-a-word"),
    row({"wal_level": "hot"}, 15, "['wal_level'] = 'hot': expected one of minimal, replica, "
        "logical (any case) (PostgreSQL 15)", id="enum-unknown"),
    row({"password_encryption": "on"}, 17, "expected one of md5, scram-sha-256", id="enum-no-bool-alias"),
    row({"log_statement": ["ddl"]}, 15, "= ['ddl']: expected a string, number or boolean",
        id="value-wrong-python-type"),
    # --- names -------------------------------------------------------------------------------
    row({"shared_bufers": "1GB"}, 15, "['shared_bufers'] = '1GB': unknown parameter: expected a "
        "PostgreSQL 15 parameter: did you mean 'shared_buffers'?", id="unknown-typo"),
    row({"wal_keep_segments": 8}, 17, "did you mean wal_keep_size (wal_keep_segments was "
        "replaced in PostgreSQL 13", id="unknown-renamed"),
    row({"force_parallel_mode": "on"}, 17, "did you mean debug_parallel_query", id="unknown-renamed-16"),
    row({"old_snapshot_threshold": "1min"}, 17, "expected a PostgreSQL 17 parameter (it is a "
        "PostgreSQL 15 parameter)", id="unknown-only-in-15"),
    row({"transaction_timeout": "1min"}, 15, "(it is a PostgreSQL 17 parameter)", id="unknown-only-in-17"),
    row({"no_such_thing": 1}, 15, "or a custom name with a '.' such as 'pg_stat_statements.max'",
        id="unknown-no-hint"),
    row({"WAL_LEVEL": "logical"}, 15, "['WAL_LEVEL'] = 'logical': 'wal_level' is set too: "
        "expected each parameter once", id="duplicate-ignoring-case"),
    row({7: "x"}, 15, "postgresql_parameters[7] = 'x': expected a parameter name", id="key-not-a-string"),
    # --- what PostgreSQL refuses or ignores in postgresql.conf ---------------------------------
    row({"block_size": 4096}, 15, "['block_size'] = 4096: expected no value here: block_size is "
        "fixed when PostgreSQL is built or initdb runs (context internal)", id="internal-15"),
    row({"server_version": "17"}, 17, "(context internal)", id="internal-17"),
    row({"transaction_isolation": "serializable"}, 17, "PostgreSQL ignores transaction_isolation "
        "in its configuration file; set default_transaction_isolation instead", id="ignored-in-file"),
    # --- Patroni-managed parameters --------------------------------------------------------------
    row({"port": 5433}, 15, "['port'] = 5433: expected no value here: Patroni sets it from "
        "postgresql.listen: use the postgresql_port setting", id="patroni-port"),
    row({"listen_addresses": "*"}, 17, "Patroni sets it from postgresql.listen", id="patroni-listen"),
    row({"cluster_name": "x"}, 15, "use the patroni_scope setting", id="patroni-cluster-name"),
    row({"hba_file": "/etc/pg_hba.conf"}, 15, "Patroni writes pg_hba.conf itself", id="patroni-hba-file"),
    row({"ident_file": "/x"}, 17, "Patroni writes pg_ident.conf itself", id="patroni-ident-file"),
    row({"config_file": "/x"}, 15, "Patroni writes postgresql.conf itself", id="patroni-config-file"),
    row({"data_directory": "/srv"}, 17, "postgresql.data_dir", id="patroni-data-directory"),
    row({"unix_socket_directories": "/tmp"}, 15, "pgha sets it", id="pgha-socket-dir"),
    row({"primary_conninfo": "host=x"}, 17, "points each replica at the leader",
        id="patroni-primary-conninfo"),
    row({"primary_slot_name": "s"}, 15, "replication slot itself", id="patroni-primary-slot"),
    row({"Synchronous_Standby_Names": "*"}, 15, "use patroni_synchronous_mode and "
        "patroni_synchronous_node_count", id="patroni-sync-names-any-case"),
    row({"max_connections": 20}, 15, "= 20: expected at least 25: Patroni ignores lower values and "
        "starts PostgreSQL with its default 100", id="patroni-floor-max-connections"),
    row({"wal_keep_size": "8MB"}, 17, "= '8MB': expected at least 16 MB: Patroni ignores lower "
        "values", id="patroni-floor-wal-keep-size"),
    row({"max_locks_per_transaction": 16}, 17, "expected at least 32", id="patroni-floor-locks"),
    # --- what the replicated topology needs ------------------------------------------------------
    row({"wal_level": "minimal"}, 15, "['wal_level'] = 'minimal': expected replica or logical: "
        "minimal WAL cannot feed streaming replicas", id="topology-wal-level-15"),
    row({"wal_level": "MINIMAL"}, 17, "expected replica or logical", id="topology-wal-level-17"),
    row({"hot_standby": "off"}, 15, "['hot_standby'] = 'off': expected on: replicas serve "
        "read-only queries", id="topology-hot-standby"),
    row({"hot_standby": False}, 17, "= False: expected on", id="topology-hot-standby-python-bool"),
    row({"max_wal_senders": 2}, 15, "['max_wal_senders'] = 2: expected at least 4 with 3 Patroni "
        "members: one WAL sender per replica (2) plus 2 for pg_basebackup", id="topology-wal-senders"),
    row({"max_wal_senders": 5}, 17, "expected at least 6 with 5 Patroni members", members=5,
        id="topology-wal-senders-5-members"),
    row({"max_replication_slots": 3}, 15, "['max_replication_slots'] = 3: expected at least 4 with "
        "3 Patroni members: use_slots keeps a slot for every other member (2)", id="topology-slots"),
    row({"max_replication_slots": 5}, 17, "expected at least 7 with 7 Patroni members", members=7,
        id="topology-slots-7-members"),
    row({"max_wal_senders": 20, "max_replication_slots": 30}, 15, "['max_wal_senders'] = 20: "
        "expected at least 24 with 23", members=23, id="topology-many-members"),
    row({"max_replication_slots": 20}, 15,
        "['max_wal_senders'] is not set: Patroni's default is 10: expected at least 12",
        members=11, replace=True, id="topology-patroni-default-too-low"),
    row({"synchronous_commit": "local"}, 15, "['synchronous_commit'] = 'local': expected on, "
        "remote_write or remote_apply with patroni_synchronous_mode = True", sync=True,
        id="topology-sync-commit-local"),
    row({"synchronous_commit": "false"}, 17, "a failover can lose it", sync=True, sync_count=2,
        id="topology-sync-commit-hidden-off"),
]


@pytest.mark.parametrize("parameters, version, members, sync, sync_count, fragment", BAD)
def test_bad_parameters_give_one_line_naming_setting_value_and_expectation(
        parameters, version, members, sync, sync_count, fragment):
    problems = P.parameter_problems(parameters, version, members, sync, sync_count)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.startswith("group_data: postgresql_parameters[")
    assert "\n" not in problem and "expected" in problem
    assert fragment in problem


GOOD = [
    pytest.param(DEFAULTS, 15, id="defaults-15"),
    pytest.param(DEFAULTS, 17, id="defaults-17"),
    pytest.param(with_defaults(shared_buffers="1GB", work_mem="256kB", maintenance_work_mem="1.5GB",
                               effective_cache_size="4GB", wal_buffers="-1"), 15, id="memory-units"),
    pytest.param(with_defaults(checkpoint_timeout="5min", log_min_duration_statement="100ms",
                               wal_sender_timeout="1min", log_rotation_age="1d",
                               autovacuum_naptime="1500ms"), 17, id="time-units"),
    pytest.param(with_defaults(hot_standby=True, wal_log_hints="yes", track_commit_timestamp="on",
                               hot_standby_feedback="TRUE", jit="of"), 15, id="bool-spellings"),
    pytest.param(with_defaults(wal_level="Replica", synchronous_commit="REMOTE_APPLY",
                               log_min_messages="debug"), 17, id="enum-any-case-and-hidden-alias"),
    pytest.param(with_defaults(wal_level="hot_standby", wal_compression="true"), 15,
                 id="enum-legacy-spellings"),
    pytest.param(with_defaults(max_connections="0x20", checkpoint_completion_target=0.9,
                               random_page_cost="1.1", vacuum_cost_delay="2.5"), 15,
                 id="numbers-as-postgres-reads-them"),
    pytest.param({**DEFAULTS, "pg_stat_statements.max": 5000, "auto_explain.log_min_duration": "1s",
                  "shared_preload_libraries": "pg_stat_statements", "archive_command": "/bin/true",
                  "restore_command": "cp %f %p"}, 17, id="custom-and-string-parameters"),
    pytest.param({}, 15, id="nothing-set-patroni-defaults-suffice"),
]


@pytest.mark.parametrize("parameters, version", GOOD)
def test_good_parameters_give_no_problem(parameters, version):
    assert P.parameter_problems(parameters, version, 3, False, 1) == []


def test_synchronous_commit_off_is_fine_without_synchronous_mode():
    assert P.parameter_problems(with_defaults(synchronous_commit="off"), 15, 3, False, 1) == []
    assert P.parameter_problems(with_defaults(synchronous_commit="on"), 17, 3, True, 2) == []


@pytest.mark.parametrize("version", P.versions())
def test_the_seed_group_data_passes(group_data, version):
    assert P.parameter_problems(
        group_data["postgresql_parameters"], version, 3,
        group_data["patroni_synchronous_mode"], group_data["patroni_synchronous_node_count"],
    ) == []


@pytest.mark.parametrize("version, shown", [(16, "16"), ("15", "'15'"), (None, "None"), (True, "True")])
def test_a_version_without_catalogue_is_one_problem(version, shown):
    assert P.parameter_problems(DEFAULTS, version, 3, False, 1) == [
        f"group_data: postgresql_version = {shown}: no PostgreSQL parameter catalogue for this "
        "version: expected one of 15, 17"
    ]


@pytest.mark.parametrize("parameters", [None, ["wal_level"], "wal_level=replica"])
def test_parameters_not_a_mapping_is_one_problem(parameters):
    (problem,) = P.parameter_problems(parameters, 15, 3, False, 1)
    assert problem.startswith("group_data: postgresql_parameters = ")
    assert "expected a mapping" in problem


def test_restart_required():
    assert P.restart_required(["shared_buffers", "work_mem"], 15) == ["shared_buffers"]
    assert P.restart_required(["max_wal_senders", "checkpoint_timeout", "Shared_Buffers",
                               "pg_stat_statements.max", "no_such"], 17) == ["max_wal_senders",
                                                                              "Shared_Buffers"]


def test_versions_and_catalogues():
    assert P.versions() == [15, 17]
    assert P.catalogue(15) is P.catalogue(15)  # cached
    assert len(P.catalogue(15)) > 300 and len(P.catalogue(17)) > len(P.catalogue(15))
    assert P.catalogue(17)["shared_buffers"]["unit"] == "8kB"
    with pytest.raises(LookupError):
        P.catalogue(16)


# --- the catalogue files are what generate.py makes of the real servers' answers ------------


@pytest.mark.parametrize("version", [15, 17])
def test_catalogue_matches_what_generate_parses_from_recorded_answers(version):
    """tests/unit/recorded/pg<N>-*: a sample of the three answers (postgres --describe-config,
    pg_settings as JSON, accepted hidden enum spellings) kept by ``generate.py N --record``
    (the lines of a few parameters; the pg_settings rows re-printed one to a line)."""
    described = generate.parse_describe_config(recorded(f"pg{version}-describe-config.txt"))
    settings = generate.parse_pg_settings(recorded(f"pg{version}-pg_settings.json"))
    aliases = generate.parse_aliases(recorded(f"pg{version}-enum-aliases.txt"))
    stored = json.loads((P.CATALOGUE_DIR / f"{version}.json").read_text(encoding="utf-8"))
    built = generate.build_catalogue(stored["postgresql"], described, settings, aliases)
    assert stored["postgresql"].startswith(f"{version}.")
    assert len(built["parameters"]) >= 15
    for name, entry in built["parameters"].items():
        assert stored["parameters"][name] == entry, name
    # describe-config leaves out internal and file-disallowed parameters; pg_settings has them
    assert built["parameters"]["block_size"]["describe_config"] is False
    assert built["parameters"]["wal_level"]["aliases"] == {"archive": "replica", "hot_standby": "replica"}


def test_catalogue_files_are_rendered_stably():
    for version in P.versions():
        text = (P.CATALOGUE_DIR / f"{version}.json").read_text(encoding="utf-8")
        assert generate.render(json.loads(text)) == text


def test_generate_refuses_disagreeing_sources():
    described = generate.parse_describe_config(
        "max_connections\tsighup\tConnections\tINTEGER\t100\t1\t262143\tshort\t\n")
    settings = generate.parse_pg_settings(json.dumps([
        {"name": "max_connections", "context": "postmaster", "vartype": "integer", "unit": None,
         "min_val": "1", "max_val": "262143", "enumvals": None}]))
    with pytest.raises(ValueError, match="context"):
        generate.build_catalogue("15.0", described, settings, {})


def test_generate_without_a_version_prints_usage(capsys):
    assert generate.main([]) == 2
    assert "usage: python3 -m pghalab.catalogue MAJOR" in capsys.readouterr().err
