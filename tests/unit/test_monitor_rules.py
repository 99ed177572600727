"""Every alert rule proven on synthetic series by `promtool test rules` (Debian's promtool,
taken out of its package by `make tools`): each fires on its fault, with the labels that
name the member and the words it says, and stays quiet on a healthy cluster. The lab test of
each rule (tests/integration/test_alerts.py) causes the real fault."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from pgha.monitor import rules as monitor_rules

from .conftest import REPO_ROOT, cluster_with

PROMTOOL = REPO_ROOT / ".venv" / "tools" / "bin" / "promtool"
SCOPE = "my-ha-cluster"
INTERVAL = "15s"


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL.is_file(), f"{PROMTOOL} is missing: run `make tools` (make unit and make test do)"
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=120)


def series(name: str, labels: dict, values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


PATRONI = {"job": "patroni", "scope": SCOPE}
PG1 = {"instance": "pg_patroni1", "member": "pg-1"}
PG2 = {"instance": "pg_patroni2", "member": "pg-2"}
PG3 = {"instance": "pg_patroni3", "member": "pg-3"}


def healthy(minutes: int = 130) -> list[dict]:
    """A healthy cluster: pg-1 leads, pg-2 and pg-3 stream and keep up, three etcd members,
    every target up, a backup an hour old, the disks half full, certificates a year away."""
    n = minutes * 4
    found = [
        series("patroni_primary", {**PATRONI, **PG1}, f"1x{n}"),
        series("patroni_primary", {**PATRONI, **PG2}, f"0x{n}"),
        series("patroni_replica", {**PATRONI, **PG2}, f"1x{n}"),
        series("patroni_postgres_timeline", {**PATRONI, **PG1}, f"3x{n}"),
        series("patroni_xlog_location", {**PATRONI, **PG1}, f"5000000+1000x{n}"),
        series("patroni_xlog_received_location", {**PATRONI, **PG2}, f"4999000+1000x{n}"),
        series("patroni_xlog_replayed_location", {**PATRONI, **PG2}, f"4998000+1000x{n}"),
        series("patroni_is_paused", {**PATRONI, **PG1}, f"0x{n}"),
        series("patroni_pending_restart", {**PATRONI, **PG2}, f"0x{n}"),
        series("patroni_postgres_running", {**PATRONI, **PG2}, f"1x{n}"),
        series("pgha_postgres_primary", {"job": "postgres", **PG1}, f"1x{n}"),
        series("pgha_postgres_primary", {"job": "postgres", **PG2}, f"0x{n}"),
        series("pgha_postgres_streaming", {"job": "postgres", **PG2}, f"1x{n}"),
        series("pgha_postgres_archiving_failing", {"job": "postgres", **PG1}, f"0x{n}"),
        series("haproxy_backend_active_servers", {"job": "haproxy", "proxy": "primary", **PG1}, f"1x{n}"),
        series("pgbackrest_backup_since_last_completion_seconds",
               {"job": "pgbackrest", "instance": "backup1", "backup_type": "incr", "stanza": SCOPE}, f"3600+15x{n}"),
        series("node_filesystem_avail_bytes", {"job": "node", "instance": "etcd1", "mountpoint": "/", "fstype": "ext4"},
               f"50x{n}"),
        series("node_filesystem_size_bytes", {"job": "node", "instance": "etcd1", "mountpoint": "/", "fstype": "ext4"},
               f"100x{n}"),
        series("node_filesystem_readonly", {"job": "node", "instance": "etcd1", "mountpoint": "/", "fstype": "ext4"},
               f"0x{n}"),
        series("probe_ssl_earliest_cert_expiry", {"job": "tls", "instance": "pg_patroni1", "endpoint": "patroni"},
               f"31536000x{n}"),
    ]
    for job, instances in (("patroni", ("pg_patroni1", "pg_patroni2")), ("etcd", ("etcd1", "etcd2", "etcd3")),
                           ("node", ("etcd1",))):
        found += [series("up", {"job": job, "instance": i}, f"1x{n}") for i in instances]
    found += [series("etcd_server_has_leader", {"job": "etcd", "instance": i}, f"1x{n}") for i in ("etcd1", "etcd2")]
    return found


def replaced(base: list[dict], *changes: dict) -> list[dict]:
    """``base`` with the series of ``changes`` in place of those of the same name and labels."""
    wanted = {c["series"]: c for c in changes}
    return [wanted.pop(s["series"], s) for s in base] + list(wanted.values())


def labels(**found) -> dict:
    return {"scope": SCOPE, **found}


# alert -> (the series of its fault, when to look, the alert's labels, what it says)
FAULTS = {
    "PostgresNoPrimary": (
        [series("patroni_primary", {**PATRONI, **PG1}, "1x8 0x40")], "10m", [labels(severity="critical")],
        "no Patroni member of the cluster runs as the primary: writes fail"),
    "PostgresTwoPrimaries": (
        [series("pgha_postgres_primary", {"job": "postgres", **PG2}, "0x8 1x40")], "5m", [labels(severity="critical")],
        "2 PostgreSQL servers run as primaries (split brain): stop the one Patroni does not lead"),
    "PatroniMemberDown": (
        [series("up", {"job": "patroni", "instance": "pg_patroni2"}, "1x8 0x40")], "5m",
        [labels(severity="critical", job="patroni", instance="pg_patroni2")],
        "pg_patroni2: Patroni or its PostgreSQL is down (the cluster has one member less)"),
    "ReplicaNotStreaming": (
        [series("pgha_postgres_streaming", {"job": "postgres", **PG2}, "1x8 0x40")], "5m",
        [labels(severity="warning", job="postgres", **PG2)],
        "pg_patroni2: the replica does not stream from the primary"),
    "ReplicaLagging": (
        # the replica stops at 5007000 while the primary jumps to 6230000: 1.2 MB behind
        [series("patroni_xlog_received_location", {**PATRONI, **PG2}, "4999000+1000x8 5007000x40"),
         series("patroni_xlog_replayed_location", {**PATRONI, **PG2}, "4998000+1000x8 5006000x40"),
         series("patroni_xlog_location", {**PATRONI, **PG1}, "5000000+1000x8 6230000x40")], "5m",
        [labels(severity="warning", **PG2)],
        "pg_patroni2 lags 1.166MiB behind the primary: beyond patroni_maximum_lag_on_failover it is no candidate "
        "for a failover"),
    "PatroniFailover": (
        [series("patroni_postgres_timeline", {**PATRONI, **PG1}, "3x80 4x200")], "25m",
        [labels(severity="info")], "the primary changed (new timeline) within the last 15m"),
    "PatroniPaused": (
        [series("patroni_is_paused", {**PATRONI, **PG1}, "0x8 1x200")], "35m", [labels(severity="warning")],
        "Patroni is paused (maintenance mode): no failover happens"),
    "PatroniPendingRestart": (
        [series("patroni_pending_restart", {**PATRONI, **PG2}, "0x8 1x400")], "65m",
        [labels(severity="info", **PATRONI, **PG2)],
        "pg_patroni2: PostgreSQL waits for a restart to apply a parameter"),
    "EtcdMemberDown": (
        [series("up", {"job": "etcd", "instance": "etcd3"}, "1x8 0x40")], "5m",
        [labels(severity="warning", job="etcd", instance="etcd3")], "etcd3: etcd is down"),
    "EtcdNoLeader": (
        [series("etcd_server_has_leader", {"job": "etcd", "instance": "etcd1"}, "1x8 0x40")], "5m",
        [labels(severity="critical", job="etcd", instance="etcd1")],
        "etcd1: etcd has no leader (no quorum): Patroni cannot keep or take the leader lock"),
    "EtcdQuorumAtRisk": (
        [series("up", {"job": "etcd", "instance": "etcd3"}, "1x8 0x40")], "5m", [labels(severity="critical")],
        "2 etcd members answer: one more loss and etcd stops (no quorum)"),
    "HAProxyNoPrimary": (
        [series("haproxy_backend_active_servers", {"job": "haproxy", "proxy": "primary", **PG1}, "1x8 0x40")], "5m",
        [labels(severity="critical", job="haproxy", proxy="primary", **PG1)],
        "pg_patroni1: HAProxy's read-write port has no server (clients there cannot write)"),
    "WalArchivingFailing": (
        [series("pgha_postgres_archiving_failing", {"job": "postgres", **PG1}, "0x8 1x40")], "3m",
        [labels(severity="critical", job="postgres", **PG1)],
        "pg_patroni1: WAL archiving to the pgBackRest repository fails (point-in-time recovery stops at the last "
        "archived file, pg_wal grows)"),
    "BackupTooOld": (
        [series("pgbackrest_backup_since_last_completion_seconds",
                {"job": "pgbackrest", "instance": "backup1", "backup_type": "incr", "stanza": SCOPE},
                "3600+15x8 28000+15x400")], "20m", [labels(severity="warning")],
        "the newest backup is 8h 4m 25s old: older than the schedule allows"),
    "FilesystemFilling": (
        [series("node_filesystem_avail_bytes", {"job": "node", "instance": "etcd1", "mountpoint": "/", "fstype": "ext4"},
                "50x8 5x40")], "5m",
        [labels(severity="warning", job="node", instance="etcd1", mountpoint="/", fstype="ext4")],
        "etcd1: / has 5% free"),
    "CertificateExpiring": (
        [series("probe_ssl_earliest_cert_expiry", {"job": "tls", "instance": "pg_patroni1", "endpoint": "patroni"},
                "31536000x8 864000x40")], "5m",
        [labels(severity="warning", job="tls", instance="pg_patroni1", endpoint="patroni")],
        "pg_patroni1 patroni: its TLS certificate expires in 9d 23h 55m 0s (a deploy renews it)"),
    "ExporterDown": (
        [series("up", {"job": "node", "instance": "etcd1"}, "1x8 0x40")], "5m",
        [labels(severity="warning", job="node", instance="etcd1")], "etcd1: the node metrics do not answer"),
}


@pytest.fixture
def rules_file(cluster, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(monitor_rules.rules_text(cluster))
    return path


def run_test(tmp_path, rules_file, input_series: list[dict], alerts: list[dict]) -> subprocess.CompletedProcess:
    test = {"rule_files": [str(rules_file)], "evaluation_interval": INTERVAL,
            "tests": [{"interval": INTERVAL, "input_series": input_series, "alert_rule_test": alerts}]}
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return promtool("test", "rules", str(path))


def test_every_rule_has_its_fault_here_and_on_the_lab(cluster):
    assert sorted(r.alert for r in monitor_rules.rules(cluster)) == sorted(FAULTS)


def test_the_rules_file_passes_promtool_check_rules(rules_file):
    proc = promtool("check", "rules", str(rules_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(FAULTS)} rules found" in proc.stdout


def test_a_healthy_cluster_raises_no_alert(tmp_path, rules_file):
    alerts = [{"eval_time": t, "alertname": name, "exp_alerts": []}
              for name in FAULTS for t in ("5m", "40m", "125m")]
    proc = run_test(tmp_path, rules_file, healthy(), alerts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("alert", sorted(FAULTS))
def test_each_rule_fires_on_its_fault_and_not_before(tmp_path, rules_file, alert):
    fault, when, expected, summary = FAULTS[alert]
    exp = [{"exp_labels": e, "exp_annotations": {"summary": summary}} for e in expected]
    proc = run_test(tmp_path, rules_file, replaced(healthy(), *fault),
                    [{"eval_time": "1m", "alertname": alert, "exp_alerts": []},
                     {"eval_time": when, "alertname": alert, "exp_alerts": exp}])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_switchover_seen_by_scrapes_apart_is_no_split_brain(tmp_path, rules_file):
    """The new primary's first sample and the old one's last overlap for a scrape interval."""
    switchover = [series("pgha_postgres_primary", {"job": "postgres", **PG1}, "1x8 1 0x40"),
                  series("pgha_postgres_primary", {"job": "postgres", **PG2}, "0x8 1 1x40")]
    proc = run_test(tmp_path, rules_file, replaced(healthy(), *switchover),
                    [{"eval_time": t, "alertname": "PostgresTwoPrimaries", "exp_alerts": []}
                     for t in ("135s", "150s", "3m", "10m")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_backup_rule_allows_the_longest_scheduled_gap_and_its_grace(cluster):
    # the default schedules: the longest gap is 01:00 to 07:00 (6 h), plus 2 h of grace
    assert monitor_rules.backup_max_age(cluster) == 8 * 3600
    assert "min(pgbackrest_backup_since_last_completion_seconds) > 28800" in monitor_rules.rules_text(cluster)


def test_without_a_schedule_or_a_backup_host_no_backup_rule(groups, group_data):
    for key in ("pgbackrest_schedule_full", "pgbackrest_schedule_diff", "pgbackrest_schedule_incr"):
        group_data[key] = None
    assert "BackupTooOld" not in [r.alert for r in monitor_rules.rules(cluster_with(groups, group_data))]
    group_data["alert_backup_max_age"] = "26h"
    assert monitor_rules.backup_max_age(cluster_with(groups, group_data)) == 26 * 3600
