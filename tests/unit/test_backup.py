"""pgha.backup.values: pgbackrest.conf of the repository host and of the Patroni nodes, the
commands PostgreSQL and Patroni run, the timers, the firewall, and the checks that reach
the user as ConfigError problems; the pgbackrest_* settings and the repository passphrase.
The repository's answers (facts, restore, commands) are in test_backup_repository.py."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from pgha import components, secrets
from pgha.backup import values
from pgha.errors import ConfigError
from pgha.patroni import values as patroni
from pgha.postgres import data_dir
from pghalab import topology

from .conftest import FAKE_SECRETS, cluster_with

STANZA = "my-ha-cluster"
PATRONI_ADDRESSES = ["10.0.3.141", "10.0.3.201", "10.0.3.68"]
DATA_DIR = "/var/lib/postgresql/17/my-ha-cluster"


def common_names(cluster) -> dict[str, str]:
    """Certificate common names unlike the node names, so a test sees which one is used."""
    return {n.name: f"cn-{n.name}.example" for n in cluster.nodes}


def options(config: dict, section: str) -> list[tuple[str, str]]:
    return config["sections"][section]


def values_of(config: dict, section: str, key: str) -> list[str]:
    return [v for k, v in options(config, section) if k == key]


def one(config: dict, section: str, key: str) -> str:
    found = values_of(config, section, key)
    assert len(found) == 1, f"{key} in [{section}]: {found}"
    return found[0]


def problems_of(groups, data, **changes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cluster_with(groups, data, **changes)
    for problem in info.value.problems:
        assert problem in str(info.value)
    return info.value.problems


# --- the commands -------------------------------------------------------------------------


def test_make_pgbackrest_command():
    assert values.make_pgbackrest_command("s1", "--type=full", "backup") == "pgbackrest --stanza=s1 --type=full backup"
    assert values.make_pgbackrest_command("s1", "info", user="pgbackrest") == (
        "runuser -u pgbackrest -- pgbackrest --stanza=s1 info"
    )


def test_postgresql_and_patroni_commands(cluster):
    s = cluster.settings
    assert values.stanza(s) == STANZA
    assert values.archive_parameters(s) == {
        "archive_mode": "on",
        "archive_command": values.make_pgbackrest_command(STANZA, "archive-push", "%p", program=values.ARCHIVE_PUSH),
        "archive_timeout": "60s",
    }
    # through the wrapper: a stale segment of an abandoned timeline must not block archiving
    assert values.archive_parameters(s)["archive_command"] == (
        "/usr/local/lib/pgha/pgbackrest-archive-push --stanza=my-ha-cluster archive-push %p")
    # through the wrapper: an unreachable repository must not hold a replica's recovery for minutes
    wrapper = values.IF_REACHABLE
    assert values.restore_command(s) == values.make_pgbackrest_command(
        STANZA, "archive-get", "%f", '"%p"', program=wrapper)
    assert values.restore_command(s) == f'{wrapper} --stanza=my-ha-cluster archive-get %f "%p"'
    assert values.replica_restore_command(s) == f"{wrapper} --stanza=my-ha-cluster --delta restore"


def test_the_stanza_follows_the_scope_and_the_archive_timeout_its_setting(groups, group_data):
    cluster = cluster_with(groups, group_data, patroni_scope="shop", pgbackrest_archive_timeout="5min")
    assert values.archive_parameters(cluster.settings) == {
        "archive_mode": "on",
        "archive_command": f"{values.ARCHIVE_PUSH} --stanza=shop archive-push %p",
        "archive_timeout": "5min",
    }
    assert values.patroni_config(cluster)["replica_command"] == f"{values.IF_REACHABLE} --stanza=shop --delta restore"


def test_patroni_config_with_a_repository(cluster):
    s = cluster.settings
    assert values.patroni_config(cluster) == {
        "parameters": values.archive_parameters(s),
        "restore_command": values.restore_command(s),
        "replica_methods": ["pgbackrest", "basebackup"],
        "replica_command": values.replica_restore_command(s),
    }
    # what patroni.yml gets: the archiving parameters set locally on each member
    local = patroni.config(cluster, cluster.node("pg-2"), values.patroni_config(cluster))["local_parameters"]
    assert local["archive_command"] == f"{values.ARCHIVE_PUSH} --stanza=my-ha-cluster archive-push %p"
    assert local["archive_mode"] == "on"


def test_no_backup_group_no_archiving(group_data):
    cluster = cluster_with(topology.groups(backup_nodes={}), group_data)
    assert cluster.backup == []
    assert not values.enabled(cluster)
    assert values.patroni_config(cluster) == {}
    assert values.timers(cluster)  # the schedules are settings; the deploy skips them
    local = patroni.config(cluster, cluster.node("pg-1"))["local_parameters"]
    assert not set(values.OWNED_PARAMETERS) & set(local)
    assert "pgbackrest_tls_port" not in components.ports_of(cluster, cluster.node("pg-1"))


# --- pgbackrest.conf ----------------------------------------------------------------------


def assert_options(config: dict, section: str, expected: dict[str, str]) -> None:
    """Each option of ``expected`` appears once in ``section``, with that value."""
    assert {key: one(config, section, key) for key in expected} == expected


def test_repository_config_global(cluster):
    config = values.repository_config(cluster, common_names(cluster))
    assert list(config["sections"]) == ["global", STANZA]
    assert_options(config, "global", {
        "repo1-path": "/var/lib/pgbackrest",
        "repo1-retention-full": "2",
        "repo1-retention-diff": "6",
        "repo1-cipher-type": "aes-256-cbc",
        "repo1-cipher-pass": FAKE_SECRETS["pgbackrest_repo_passphrase"],
        "backup-standby": "y",
        "compress-type": "zst",
        "process-max": "2",
        "tls-server-port": "8432",
        "tls-server-cert-file": "/etc/pgha/tls/pgbackrest.crt",
    })
    # only the Patroni nodes' certificates, by common name, for this stanza alone
    assert values_of(config, "global", "tls-server-auth") == [
        f"cn-pg_patroni{i}.example={STANZA}" for i in (1, 2, 3)
    ]
    assert not values_of(config, "global", "repo1-host")


def test_repository_config_has_one_pg_host_per_patroni_node(cluster):
    config = values.repository_config(cluster, common_names(cluster))
    hosts = {k: v for k, v in options(config, STANZA) if k.endswith("-host")}
    assert hosts == {"pg1-host": "pg_patroni1", "pg2-host": "pg_patroni2", "pg3-host": "pg_patroni3"}
    for index in (1, 2, 3):
        assert one(config, STANZA, f"pg{index}-host-type") == "tls"
        assert one(config, STANZA, f"pg{index}-host-port") == "8432"
        assert one(config, STANZA, f"pg{index}-host-ca-file") == "/etc/pgha/tls/ca.crt"
        assert one(config, STANZA, f"pg{index}-path") == DATA_DIR == data_dir(cluster.settings)
        assert one(config, STANZA, f"pg{index}-port") == "5434"
        assert one(config, STANZA, f"pg{index}-socket-path") == "/var/run/postgresql"
        assert one(config, STANZA, f"pg{index}-user") == "postgres"
    assert not any(k.startswith("pg4-") for k, _ in options(config, STANZA))


def test_a_node_dns_name_is_the_name_connected_to(groups, group_data):
    index = [name for name, _ in groups["patroni"]].index("pg_patroni2")
    name, data = groups["patroni"][index]
    groups["patroni"][index] = (name, {**data, "dns_name": "pg2.example.com"})
    cluster = cluster_with(groups, group_data)
    config = values.repository_config(cluster, common_names(cluster))
    assert one(config, STANZA, "pg2-host") == "pg2.example.com"
    assert one(config, STANZA, "pg1-host") == "pg_patroni1"


def test_member_config(cluster):
    config = values.member_config(cluster, common_names(cluster))
    assert list(config["sections"]) == ["global", STANZA]
    assert_options(config, "global", {
        "repo1-host": "backup1",
        "repo1-host-type": "tls",
        "repo1-host-port": "8432",
        "repo1-host-cert-file": "/etc/pgha/tls/pgbackrest.crt",
        "archive-async": "y",
        "spool-path": "/var/spool/pgbackrest",
    })
    # only the repository host's certificate may reach this node's TLS server
    assert values_of(config, "global", "tls-server-auth") == [f"cn-backup1.example={STANZA}"]
    assert options(config, STANZA) == [
        ("pg1-path", DATA_DIR),
        ("pg1-port", "5434"),
        ("pg1-socket-path", "/var/run/postgresql"),
        ("pg1-user", "postgres"),
    ]


def test_the_passphrase_is_only_in_the_repository_host_config(cluster):
    passphrase = FAKE_SECRETS["pgbackrest_repo_passphrase"]
    member = values.member_config(cluster, common_names(cluster))
    everything = [item for section in member["sections"].values() for pair in section for item in pair]
    assert passphrase not in everything
    assert not [k for section in member["sections"].values() for k, _ in section if "cipher" in k]
    repository = values.repository_config(cluster, common_names(cluster))
    assert ("repo1-cipher-pass", passphrase) in options(repository, "global")


def test_archive_push_queue_max_only_when_set(groups, group_data, cluster):
    assert cluster.settings["pgbackrest_archive_push_queue_max"] is None
    assert not values_of(values.member_config(cluster, common_names(cluster)), "global", "archive-push-queue-max")
    limited = cluster_with(groups, group_data, pgbackrest_archive_push_queue_max="4GiB")
    assert one(values.member_config(limited, common_names(limited)), "global", "archive-push-queue-max") == "4GiB"
    repository = values.repository_config(limited, common_names(limited))
    assert not values_of(repository, "global", "archive-push-queue-max")


def test_backup_from_the_leader_when_asked(groups, group_data):
    cluster = cluster_with(groups, group_data, pgbackrest_backup_from_standby=False, pgbackrest_compress_type="lz4")
    config = values.repository_config(cluster, common_names(cluster))
    assert one(config, "global", "backup-standby") == "n"
    assert one(config, "global", "compress-type") == "lz4"


def test_server_unit_runs_as_the_repository_or_postgres_user(cluster):
    assert values.server_unit(cluster.node("backup1")) == {"user": "pgbackrest", "config_file": values.CONFIG_FILE}
    assert values.server_unit(cluster.node("pg-1")) == {"user": "postgres", "config_file": values.CONFIG_FILE}


# --- timers and firewall ------------------------------------------------------------------


def test_one_timer_per_scheduled_type(cluster):
    timers = values.timers(cluster)
    assert [(t["type"], t["name"], t["schedule"]) for t in timers] == [
        ("full", "pgbackrest-full", "Sun *-*-* 01:00:00"),
        ("diff", "pgbackrest-diff", "Mon..Sat *-*-* 01:00:00"),
        ("incr", "pgbackrest-incr", "*-*-* 07..23/4:00:00"),
    ]
    assert timers[0]["command"] == "pgbackrest --stanza=my-ha-cluster --type=full backup"
    assert timers[2]["command"] == values.make_pgbackrest_command(STANZA, "--type=incr", "backup")
    assert {t["user"] for t in timers} == {"pgbackrest"}


def test_no_timer_for_a_schedule_set_to_none(groups, group_data):
    cluster = cluster_with(groups, group_data, pgbackrest_schedule_diff=None)
    assert [t["type"] for t in values.timers(cluster)] == ["full", "incr"]
    none = cluster_with(groups, group_data, pgbackrest_schedule_full=None, pgbackrest_schedule_diff=None,
                        pgbackrest_schedule_incr=None)
    assert values.timers(none) == []


def test_firewall_sources(cluster):
    assert values.firewall_sources(cluster, cluster.node("backup1")) == PATRONI_ADDRESSES
    for name in ("pg-1", "pg-2", "pg-3"):
        assert values.firewall_sources(cluster, cluster.node(name)) == ["10.0.3.100"]


# --- the checks, as the user sees them ----------------------------------------------------


def test_two_backup_hosts_are_refused(group_data):
    groups = topology.groups(backup_nodes={"backup1": "10.0.3.100", "backup2": "10.0.3.102"})
    assert problems_of(groups, group_data) == [
        "inventory: group 'backup' has 2 hosts (backup1, backup2): expected one repository host (or none)"
    ]


def test_a_patroni_node_as_repository_host_is_refused(groups, group_data):
    groups["backup"] = [groups["patroni"][0]]
    assert problems_of(groups, group_data) == [
        "inventory: host 'pg_patroni1' is in groups 'backup' and 'patroni': expected a dedicated "
        "repository host (backups must survive the loss of a database node)"
    ]


OWNED = {"archive_mode": "on", "archive_command": "/bin/true", "archive_timeout": "60s",
         "restore_command": "cp /archive/%f %p"}


@pytest.mark.parametrize("name", sorted(OWNED))
def test_archiving_parameters_are_refused_with_a_repository(groups, group_data, name):
    parameters = {**group_data["postgresql_parameters"], name: OWNED[name]}
    problems = problems_of(groups, group_data, postgresql_parameters=parameters)
    assert len(problems) == 1
    assert problems[0].startswith(f"group_data: postgresql_parameters[{name!r}] = {OWNED[name]!r}: expected it unset")


def test_archiving_parameters_are_accepted_without_a_repository(group_data):
    parameters = {**group_data["postgresql_parameters"], **OWNED}
    cluster = cluster_with(topology.groups(backup_nodes={}), group_data, postgresql_parameters=parameters)
    assert cluster.settings["postgresql_parameters"]["archive_command"] == "/bin/true"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_a_bad_schedule_is_refused_by_systemd_analyze(groups, group_data):
    problems = problems_of(groups, group_data, pgbackrest_schedule_full="every tuesday")
    assert len(problems) == 1
    assert problems[0].startswith("group_data: pgbackrest_schedule_full = 'every tuesday' (")
    assert "every tuesday" in problems[0].split("(", 1)[1]  # systemd-analyze's own reason
    assert problems[0].endswith("expected a systemd OnCalendar expression such as 'Sun *-*-* 01:00:00', "
                                "or None (no timer)")


def test_a_bad_schedule_without_systemd_analyze(groups, group_data, monkeypatch):
    """The checked command line, and the reason taken from systemd-analyze's last line."""
    calls = []

    class Answer:
        returncode, stdout, stderr = 1, "", "first line\nbad weekday\n"

    def run(argv, **kwargs):
        calls.append(argv)
        return Answer() if argv[2] == "every tuesday" else type("Ok", (), {"returncode": 0})()

    monkeypatch.setattr(values.shutil, "which", lambda name: "/x/systemd-analyze" if name == "systemd-analyze" else None)
    monkeypatch.setattr(values.subprocess, "run", run)
    problems = problems_of(groups, group_data, pgbackrest_schedule_incr="every tuesday")
    assert problems == [
        "group_data: pgbackrest_schedule_incr = 'every tuesday' (bad weekday): expected a systemd OnCalendar "
        "expression such as 'Sun *-*-* 01:00:00', or None (no timer)"
    ]
    assert ["/x/systemd-analyze", "calendar", "every tuesday"] in calls
    # no systemd-analyze on the control machine: the schedule is not refused
    monkeypatch.setattr(values.shutil, "which", lambda name: None)
    assert values.calendar_problem("pgbackrest_schedule_incr", "every tuesday") is None


def test_good_and_none_schedules_are_accepted(groups, group_data):
    cluster = cluster_with(groups, group_data, pgbackrest_schedule_full="Sat *-*-* 02:30:00",
                           pgbackrest_schedule_diff=None)
    assert cluster.settings["pgbackrest_schedule_diff"] is None
    assert values.calendar_problem("pgbackrest_schedule_diff", None) is None


# --- the settings' types ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("pgbackrest_archive_timeout", "60s"),
        ("pgbackrest_archive_timeout", "5min"),
        ("pgbackrest_archive_push_queue_max", None),
        ("pgbackrest_archive_push_queue_max", "4GiB"),
        ("pgbackrest_compress_type", "bz2"),
    ],
)
def test_setting_accepted(groups, group_data, key, value):
    assert cluster_with(groups, group_data, **{key: value}).settings[key] == value


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("pgbackrest_archive_timeout", "5m", "a PostgreSQL duration such as 60s or 5min"),
        ("pgbackrest_compress_type", "xz", "one of 'zst', 'lz4', 'gz', 'bz2', 'none'"),
        ("pgbackrest_archive_push_queue_max", "4 gigs", "or a size such as '4GiB'"),
    ],
)
def test_setting_refused(groups, group_data, key, value, expected):
    problems = problems_of(groups, group_data, **{key: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"group_data: {key} = {value!r}: expected ")
    assert expected in problems[0]


# --- the repository passphrase ------------------------------------------------------------


def test_the_passphrase_is_added_to_an_older_file(secrets_path):
    older = {key: f"{key.replace('_', '-')}-kept-0123456789" for key in secrets.KEYS
             if key != "pgbackrest_repo_passphrase"}
    secrets_path.write_text(json.dumps(older), encoding="utf-8")
    os.chmod(secrets_path, 0o600)
    secrets.ensure()
    after = json.loads(secrets_path.read_text(encoding="utf-8"))
    assert {k: v for k, v in after.items() if k != "pgbackrest_repo_passphrase"} == older
    assert len(after["pgbackrest_repo_passphrase"]) >= secrets.MIN_LENGTH
    assert after["pgbackrest_repo_passphrase"] not in older.values()
    assert secrets.problems() == []
    secrets.ensure()  # generated once: the next deploy keeps it
    assert json.loads(secrets_path.read_text(encoding="utf-8")) == after


@pytest.mark.parametrize("keys", [["pgbackrest_repo_passphrase"], ["admin_password", "pgbackrest_repo_passphrase"]])
def test_the_passphrase_cannot_be_rotated(secrets_path, keys):
    secrets.ensure()
    before = secrets_path.read_bytes()
    with pytest.raises(ValueError) as error:
        secrets.rotate(keys)
    assert str(error.value) == (
        "cannot rotate pgbackrest_repo_passphrase: the pgBackRest repository is encrypted with it for good; "
        "a new passphrase needs a new repository (a new stanza)"
    )
    assert secrets_path.read_bytes() == before


def test_refused_rotation_creates_no_file(secrets_path):
    with pytest.raises(ValueError, match="encrypted with it for good"):
        secrets.rotate(["pgbackrest_repo_passphrase"])
    assert not secrets_path.exists()

