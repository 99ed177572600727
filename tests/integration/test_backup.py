"""pgBackRest on the lab: the repository host and its boundary, backups from a standby,
archiving across a failover, a replica rebuilt from the repository (the leader serves no
base backup), the repository down for a minute under writes, the disaster (a table dropped,
the whole cluster restored to the time before), and a second deploy that changes nothing.

Every command is the user's: `pgha backup`, `pgha backups`, `pgha reinit`, `pgha restore`,
`pgha status`. Skipped as a whole when the inventory has no `backup` host.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import time

import helpers
import pytest
from helpers import CLUSTER
from pg_helpers import (
    ADMIN,
    PG_PORT,
    RW_PORT,
    SUPERUSER,
    TEST_SCHEMA,
    connect,
    query,
    roles,
    wait_for_healthy_cluster,
)

from pgha.backup import values as backup_values
from pgha.backup.facts import parse_info
from pgha.pki import authority
from pgha.postgres import data_dir
from pghalab import values as lab

pytestmark = pytest.mark.skipif(not CLUSTER.backup, reason="the inventory has no `backup` host")

REPO = CLUSTER.backup[0] if CLUSTER.backup else None
TLS_PORT = CLUSTER.settings["pgbackrest_tls_port"]
STANZA = backup_values.stanza(CLUSTER.settings)
DISASTER_TABLE = f"{TEST_SCHEMA}.precious"


pgha = helpers.pgha


def repository_info(lab_hosts) -> dict:
    command = backup_values.make_pgbackrest_command(STANZA, "--output=json", "info", user=backup_values.REPO_USER)
    result = lab_hosts[REPO.name].run(command)
    assert result.rc == 0, result.stderr
    return parse_info(result.stdout)


def superuser_sql(sql: str, address: str | None = None):
    leader = address or roles()[0].address
    conn = connect(leader, PG_PORT, CLUSTER.secrets["superuser_password"], user=SUPERUSER)
    try:
        return query(conn, sql)
    finally:
        conn.close()


def reaches(host, address: str, port: int) -> bool:
    """A TCP connection from ``host`` (testinfra) to address:port succeeds."""
    return host.run(helpers.tcp_connect_command(address, port)).rc == 0


@pytest.fixture(scope="module", autouse=True)
def healthy():
    problem = wait_for_healthy_cluster(120)
    assert not problem, problem


# --- the repository host --------------------------------------------------------------------


def test_tls_servers_run_on_the_repository_host_and_every_patroni_node(lab_hosts, cluster):
    for node in [REPO, *cluster.patroni]:
        host = lab_hosts[node.name]
        assert host.service(backup_values.SERVER_UNIT).is_running, node.name
        assert host.socket(f"tcp://0.0.0.0:{TLS_PORT}").is_listening, node.name


def test_only_the_other_side_of_the_repository_reaches_its_tls_server(lab_hosts, cluster):
    for node in cluster.patroni:
        assert reaches(lab_hosts[node.name], REPO.address, TLS_PORT), f"{node.name} cannot reach the repository"
        assert reaches(lab_hosts[REPO.name], node.address, TLS_PORT), f"the repository cannot reach {node.name}"
    for etcd in cluster.etcd:
        assert not reaches(lab_hosts[etcd.name], REPO.address, TLS_PORT), f"{etcd.name} reaches the repository"
        for node in cluster.patroni:
            assert not reaches(lab_hosts[etcd.name], node.address, TLS_PORT), f"{etcd.name} reaches {node.name}"


def _pgbackrest_info_from(host, *options: str) -> str:
    command = backup_values.make_pgbackrest_command(STANZA, *options, "info", user=backup_values.PG_USER)
    result = host.run(f"cd /tmp && {command}")
    return result.stdout + result.stderr


def test_the_repository_serves_only_this_stanza_to_certificates_of_the_cluster_ca(lab_hosts, cluster, tmp_path):
    host = lab_hosts[cluster.patroni[0].name]
    assert "status: ok" in _pgbackrest_info_from(host)
    # another stanza: tls-server-auth gives each node's certificate this cluster's stanza only
    other = host.run("cd /tmp && runuser -u postgres -- pgbackrest --stanza=intruder info")
    assert "access denied" in other.stdout + other.stderr, other.stdout + other.stderr
    # a certificate with the same name from another CA
    ca_cert, ca_key = authority.ensure_ca(tmp_path / "other", "some other CA")
    files = authority.issue(tmp_path / "other", cluster.patroni[0].name, [cluster.patroni[0].name], [], ca_cert, ca_key)
    for local, remote in ((files.cert, "/tmp/pgha-test-other.crt"), (files.key, "/tmp/pgha-test-other.key")):
        host.run(f"install -o postgres -m 600 /dev/null {remote} && cat > {remote} <<'PEM'\n{local.read_text()}PEM")
    refused = _pgbackrest_info_from(host, "--repo1-host-cert-file=/tmp/pgha-test-other.crt",
                                    "--repo1-host-key-file=/tmp/pgha-test-other.key")
    host.run("rm -f /tmp/pgha-test-other.crt /tmp/pgha-test-other.key")
    assert "unknown ca" in refused, refused


def test_the_repository_is_encrypted_with_the_secret_only_its_host_holds(lab_hosts, cluster):
    info = repository_info(lab_hosts)
    assert info["status"] == 0, info
    config = lab_hosts[REPO.name].file(backup_values.CONFIG_FILE)
    assert (config.user, config.group, config.mode) == ("root", backup_values.REPO_USER, 0o640)
    assert "repo1-cipher-type=aes-256-cbc" in config.content_string
    passphrase = cluster.secrets[backup_values.SECRET_KEY]
    for node in cluster.patroni:
        assert passphrase not in lab_hosts[node.name].file(backup_values.CONFIG_FILE).content_string, node.name
    ciphered = lab_hosts[REPO.name].run(
        f"f=$(find {cluster.settings['pgbackrest_repo_path']}/backup -name backup.info | head -1); head -c 8 $f"
    )
    assert ciphered.stdout.startswith("Salted__"), "backup.info is not encrypted (openssl's Salted__ header)"


# --- backups --------------------------------------------------------------------------------


@pytest.mark.destructive
def test_pgha_backup_takes_a_backup_from_a_standby(lab_hosts):
    before = {b["label"] for b in repository_info(lab_hosts)["backups"]}
    proc = pgha("backup", "--type", "full")
    assert proc.returncode == 0, proc.stderr
    label = proc.stdout.split()[0]
    after = {b["label"]: b for b in repository_info(lab_hosts)["backups"]}
    assert label in after and label not in before, (proc.stdout, sorted(after))
    assert after[label]["type"] == "full"
    log = lab_hosts[REPO.name].run(f"cat /var/log/pgbackrest/{STANZA}-backup.log").stdout
    this_run = log.split("--type=full")[-1]
    assert "replay on the standby reached" in this_run, this_run[-1500:]


def test_pgha_backups_lists_them_and_the_window_one_can_restore_to(lab_hosts):
    proc = pgha("backups")
    assert proc.returncode == 0, proc.stderr
    for backup in repository_info(lab_hosts)["backups"]:
        assert backup["label"] in proc.stdout
    assert "restore to any time from" in proc.stdout, proc.stdout


def test_the_backup_timers_are_active(lab_hosts, cluster):
    for timer in backup_values.timers(cluster):
        unit = lab_hosts[REPO.name].service(f"{timer['name']}.timer")
        assert unit.is_running and unit.is_enabled, timer["name"]


# --- archiving ------------------------------------------------------------------------------


def timeline_of(address: str | None = None) -> int:
    """The leader's timeline, from its WAL insert position: right after a promotion the
    checkpoint's (pg_control_checkpoint) still names the old one."""
    name = superuser_sql("select pg_walfile_name(pg_current_wal_lsn())", address)[0][0]
    return int(name[:8], 16)


def fail_over(lab_hosts, cluster):
    """The first replica leads (patronictl failover), the cluster healthy again; returns it."""
    candidate = roles()[1][0]
    failover = lab_hosts[candidate.name].run(
        f"patronictl failover {cluster.settings['patroni_scope']} --candidate {candidate.patroni_name} --force"
    )
    assert failover.rc == 0, failover.stderr
    assert helpers.wait_until(lambda: roles()[0].name == candidate.name, 60, interval=1)
    assert not wait_for_healthy_cluster(120)
    return candidate


@pytest.mark.destructive
def test_archiving_goes_on_after_a_failover(lab_hosts, cluster):
    before = timeline_of()
    candidate = fail_over(lab_hosts, cluster)
    check = lab_hosts[REPO.name].run(
        backup_values.make_pgbackrest_command(STANZA, "check", user=backup_values.REPO_USER)
    )
    assert check.rc == 0, check.stderr
    timeline = timeline_of(candidate.address)
    assert timeline > before
    newest = repository_info(lab_hosts)["wal"][1]
    assert int(newest[:8], 16) == timeline, (newest, timeline)
    proc = pgha("status")
    assert "archiving: ok" in proc.stdout and proc.returncode == 0, proc.stdout


def archived_segments(lab_hosts) -> list[str]:
    """The WAL segments the repository holds (their names, oldest first)."""
    listing = lab_hosts[REPO.name].run(backup_values.make_pgbackrest_command(
        STANZA, "repo-ls", "--recurse", f"archive/{STANZA}", user=backup_values.REPO_USER))
    assert listing.rc == 0, listing.stderr
    return sorted(set(re.findall(r"\b([0-9A-F]{24})-[0-9a-f]{40}", listing.stdout)))


@pytest.mark.destructive
def test_a_stale_segment_of_an_abandoned_timeline_does_not_block_archiving(lab_hosts, cluster):
    """The soak's finding: a leader with a `.ready` segment of an older timeline that the
    repository holds with other content (written while it led cut off from the others, or
    brought back by pg_rewind). pgBackRest refuses it (error 45) and PostgreSQL used to retry
    it forever, archiving nothing after it; the repository's copy must stay as it was."""
    if timeline_of() == 1:
        fail_over(lab_hosts, cluster)
    leader = roles()[0]
    host = lab_hosts[leader.name]
    timeline = timeline_of(leader.address)
    segment = next((s for s in reversed(archived_segments(lab_hosts)) if int(s[:8], 16) < timeline), None)
    assert segment, f"the repository holds no segment of a timeline older than {timeline}"
    wal_dir = f"{data_dir(cluster.settings)}/pg_wal"
    fetched, stale = "/var/tmp/pgha-archived-segment", f"{wal_dir}/{segment}"
    get = backup_values.make_pgbackrest_command(STANZA, "archive-get", segment, user=backup_values.PG_USER)
    checksum = f"sha256sum {fetched} | cut -d' ' -f1"
    try:
        host.run_expect([0], f"{get} {fetched}")
        original = host.check_output(checksum)
        # the same segment with other bytes in its unused tail: its header still this cluster's
        host.run_expect([0], f"printf pgha-stale | dd of={fetched} bs=1 seek=$((16 * 1024 * 1024 - 64)) "
                             f"conv=notrunc status=none && install -o postgres -g postgres -m 600 {fetched} {stale} "
                             f"&& runuser -u postgres -- touch {wal_dir}/archive_status/{segment}.ready")
        # a switch wakes the archiver (a marker alone waits for its next minute); the stale
        # segment sorts first. txid_current: a commit record, so the switch has WAL to close
        superuser_sql("select txid_current()", leader.address)
        switched = superuser_sql("select pg_walfile_name(pg_switch_wal())", leader.address)[0][0]
        assert helpers.wait_until(lambda: not host.file(f"{wal_dir}/archive_status/{segment}.ready").exists,
                                  60, interval=1), f"{segment}.ready is still there: archiving is blocked"
        assert helpers.wait_until(
            lambda: superuser_sql("select last_archived_wal from pg_stat_archiver", leader.address)[0][0] >= switched,
            60, interval=1), f"{switched} was not archived after the stale segment"
        host.run_expect([0], f"rm -f {fetched} && {get} {fetched}")
        assert host.check_output(checksum) == original, "the repository's copy changed"
    finally:
        host.run(f"rm -f {fetched} {stale} {wal_dir}/archive_status/{segment}.ready {wal_dir}/archive_status/{segment}.done")
    proc = pgha("status")
    assert "archiving: ok" in proc.stdout and proc.returncode == 0, proc.stdout


# --- a replica rebuilt from the repository ----------------------------------------------------


def _tx_bytes(host) -> int:
    return int(host.run("cat /sys/class/net/eth0/statistics/tx_bytes").stdout)


@pytest.mark.destructive
def test_a_replica_is_rebuilt_from_the_repository_not_the_leader(lab_hosts):
    leader, replicas = roles()
    superuser_sql(f"create schema if not exists {TEST_SCHEMA} authorization {ADMIN}")
    superuser_sql(f"drop table if exists {TEST_SCHEMA}.filler; create table {TEST_SCHEMA}.filler as "
                  "select g, repeat('x', 1000) as pad from generate_series(1, 100000) g")
    size = superuser_sql("select pg_database_size('postgres')")[0][0]
    assert pgha("backup", "--type", "incr").returncode == 0
    target = replicas[-1]
    sent_before = _tx_bytes(lab_hosts[leader.name])
    proc = pgha("reinit", target.patroni_name)
    sent = _tx_bytes(lab_hosts[leader.name]) - sent_before
    assert proc.returncode == 0, proc.stderr
    assert "(by pgbackrest)" in proc.stdout, proc.stdout
    assert sent < size / 4, f"the leader sent {sent} bytes while a {size}-byte database was rebuilt"
    assert not wait_for_healthy_cluster(120)


# --- the repository down under writes --------------------------------------------------------


@pytest.mark.destructive
@pytest.mark.slow
@pytest.mark.needs_lxc
def test_repository_down_a_minute_blocks_no_write(lab_hosts):
    from pghalab.drills.under_writes import measure

    container = lab.container(REPO)
    seen = {}

    def outage():
        subprocess.run(["lxc-stop", "-n", container, "-k"], check=True)
        down_since = time.monotonic()
        for _ in range(3):  # WAL files to archive while the repository is away
            superuser_sql("select pg_switch_wal(), txid_current()")
            time.sleep(2)
        helpers.wait_until(lambda: "FAILING" in pgha("status").stdout, 60, interval=3)
        status = pgha("status")
        seen["status"], seen["status_rc"] = status.stdout, status.returncode
        time.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
        subprocess.run(["lxc-start", "-n", container], check=True)
        seen["down_seconds"] = time.monotonic() - down_since

    _, figures = measure(CLUSTER, outage, label="repository down")
    assert seen["down_seconds"] >= 60
    assert "archiving: FAILING" in seen["status"] and seen["status_rc"] == 1, seen["status"]
    assert figures["writes_refused"] == 0, figures
    assert figures["acknowledged_rows_missing"] == 0, figures
    assert figures["longest_gap_seconds"] < 1.0, figures
    assert helpers.wait_until(lambda: "archiving: ok" in pgha("status").stdout, 180, interval=3), pgha("status").stdout
    check = lab_hosts[REPO.name].run(
        backup_values.make_pgbackrest_command(STANZA, "check", user=backup_values.REPO_USER)
    )
    assert check.rc == 0, check.stderr


# --- the disaster: a table dropped, the cluster restored to the time before ------------------


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


@pytest.mark.destructive
def test_restore_refuses_before_touching_anything(lab_hosts):
    leader, _ = roles()
    timeline = timeline_of()
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%d %H:%M:%S+00")
    oldest = min(b["stop"] for b in repository_info(lab_hosts)["backups"])
    too_old = datetime.datetime.fromtimestamp(oldest - 3600, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    cases = {
        "in the future": ["--time", future, "--yes"],
        "before the end of the oldest backup": ["--time", too_old, "--yes"],
        "add --yes": ["--time", _utc_now()],
        "is not in the repository": ["--label", "20000101-000000F", "--yes"],
    }
    for expected, args in cases.items():
        proc = pgha("restore", *args)
        assert proc.returncode != 0 and expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert roles()[0].name == leader.name
    assert timeline_of() == timeline


@pytest.mark.destructive
def test_a_dropped_table_comes_back_with_one_command(lab_hosts):
    superuser_sql(f"create schema if not exists {TEST_SCHEMA} authorization {ADMIN}")
    superuser_sql(f"drop table if exists {DISASTER_TABLE}; create table {DISASTER_TABLE} (id int primary key)")
    conn = connect(roles()[0].address, RW_PORT, CLUSTER.secrets["superuser_password"], user=SUPERUSER)
    conn.autocommit = True
    try:
        for row in range(1, 201):  # one transaction a row, some before T, some after
            query(conn, f"insert into {DISASTER_TABLE} values ({row})")
            if row == 120:
                time.sleep(1)
                target = _utc_now()
                time.sleep(1)
        query(conn, f"drop table {DISASTER_TABLE}")
    finally:
        conn.close()
    timeline = timeline_of()

    proc = pgha("restore", "--time", target, "--yes", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every replica streams" in proc.stdout, proc.stdout

    assert not wait_for_healthy_cluster(60)
    rows = superuser_sql(f"select count(*), min(id), max(id) from {DISASTER_TABLE}")
    assert rows == [(120, 1, 120)], rows
    assert timeline_of() > timeline
    for replica in roles()[1]:
        assert superuser_sql(f"select count(*) from {DISASTER_TABLE}", replica.address) == [(120,)], replica.name
    check = lab_hosts[REPO.name].run(
        backup_values.make_pgbackrest_command(STANZA, "check", user=backup_values.REPO_USER)
    )
    assert check.rc == 0, check.stderr


@pytest.mark.destructive
def test_a_second_deploy_after_all_this_changes_nothing():
    rc, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/all.py", timeout=900)
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
