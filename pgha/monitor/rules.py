"""The alert rules, computed from the settings: each rule's expression, how long its fault must
last, its severity and what it says. tests/unit/test_monitor_rules.py proves each one on
synthetic series with `promtool test rules`; tests/integration/test_alerts.py by causing its
fault on the lab. Free of pyinfra.

One Prometheus watches one cluster: the rules need no `by (scope)`; each carries the scope as
a label. Member alerts name the inventory host (`instance`) and the Patroni member (`member`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from pgha.backup import values as backup_values
from pgha.cluster import Cluster
from pgha.monitor.settings import seconds
from pgha.rendering import yaml_file

GROUP_NAME = "pgha"
# filesystems that never fill by writing (a full tmpfs, /run's, does count)
PSEUDO_FILESYSTEMS = "ramfs|squashfs|overlay|nsfs|fuse.lxcfs|iso9660"


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    severity: str  # critical: clients are or soon will be affected; warning: redundancy is lost; info
    summary: str  # what the alert says, with {{ $labels.x }} where it names a member
    fault: str  # what fires it (the docs' table)
    wait: str = "0s"  # how long the fault lasts before the alert fires (`for`)

    def document(self, scope: str) -> dict:
        rule: dict = {"alert": self.alert, "expr": self.expr}
        if seconds(self.wait) > 0:
            rule["for"] = self.wait
        rule["labels"] = {"severity": self.severity, "scope": scope}
        rule["annotations"] = {"summary": self.summary}
        return rule


def member(text: str) -> str:
    return "{{ $labels.instance }}" + text


def backup_max_age(cluster: Cluster) -> float | None:
    """Seconds the newest backup may be old: alert_backup_max_age, else the longest gap between
    the scheduled backups plus alert_backup_grace (None: no schedule, no rule)."""
    s = cluster.settings
    if s["alert_backup_max_age"]:
        return seconds(s["alert_backup_max_age"])
    gap = backup_values.longest_gap_seconds(backup_values.schedules(s))
    return None if gap is None else gap + seconds(s["alert_backup_grace"])


def rules(cluster: Cluster) -> list[Rule]:
    s = cluster.settings
    down = s["alert_down_for"]
    scope = s["patroni_scope"]
    # a switchover seen through scrapes that are not simultaneous: the new primary's sample
    # can be newer than the old one's for up to a scrape interval (seen on the lab)
    skew = f"{int(3 * seconds(s['monitoring_scrape_interval']))}s"
    found = [
        Rule("PostgresNoPrimary", f'absent(patroni_primary{{scope="{scope}"}} == 1)', "critical",
             "no Patroni member of the cluster runs as the primary: writes fail",
             "every member stopped (no leader)", down),
        Rule("PostgresTwoPrimaries", "count(pgha_postgres_primary == 1) > 1", "critical",
             "{{ $value }} PostgreSQL servers run as primaries (split brain): stop the one Patroni does not lead",
             "a replica promoted outside Patroni while it is paused", skew),
        Rule("PatroniMemberDown", 'up{job="patroni"} == 0 or patroni_postgres_running == 0', "critical",
             member(": Patroni or its PostgreSQL is down (the cluster has one member less)"),
             "a replica's Patroni and PostgreSQL killed", down),
        Rule("ReplicaNotStreaming", "pgha_postgres_streaming == 0 and on (instance) patroni_replica == 1", "warning",
             member(": the replica does not stream from the primary"),
             "a replica cut off from the primary's PostgreSQL port", down),
        Rule("ReplicaLagging",
             "(scalar(max(patroni_xlog_location)) - max by (instance, member) "
             '({__name__=~"patroni_xlog_(received|replayed)_location", job="patroni"})) '
             f"> {int(s['patroni_maximum_lag_on_failover'])} and on (instance) patroni_replica == 1",
             "warning",
             member(" lags {{ $value | humanize1024 }}B behind the primary: beyond patroni_maximum_lag_on_failover "
                    "it is no candidate for a failover"),
             "a replica cut off from the primary while the primary writes", down),
        Rule("PatroniFailover",
             f"max(patroni_postgres_timeline) > max(patroni_postgres_timeline offset {s['alert_failover_window']})",
             "info", "the primary changed (new timeline) within the last " + s["alert_failover_window"],
             "a switchover or a failover", "0s"),
        Rule("PatroniPaused", "max(patroni_is_paused) == 1", "warning",
             "Patroni is paused (maintenance mode): no failover happens", "patronictl pause",
             s["alert_paused_for"]),
        Rule("PatroniPendingRestart", "patroni_pending_restart == 1", "info",
             member(": PostgreSQL waits for a restart to apply a parameter"),
             "a parameter that needs a restart changed", s["alert_pending_restart_for"]),
        Rule("EtcdMemberDown", 'up{job="etcd"} == 0', "warning", member(": etcd is down"),
             "one etcd member stopped", down),
        Rule("EtcdNoLeader", "etcd_server_has_leader == 0", "critical",
             member(": etcd has no leader (no quorum): Patroni cannot keep or take the leader lock"),
             "two of three etcd members stopped", down),
        Rule("EtcdQuorumAtRisk",
             f'count(up{{job="etcd"}} == 1) <= {len(cluster.etcd) // 2 + 1} or absent(up{{job="etcd"}} == 1)',
             "critical", "{{ $value }} etcd members answer: one more loss and etcd stops (no quorum)",
             "one etcd member of three stopped", down),
        Rule("HAProxyNoPrimary", 'haproxy_backend_active_servers{proxy="primary"} == 0', "critical",
             member(": HAProxy's read-write port has no server (clients there cannot write)"),
             "HAProxy's leader server put in maintenance on one node", down),
        Rule("WalArchivingFailing", "pgha_postgres_archiving_failing == 1 and on (instance) pgha_postgres_primary == 1",
             "critical", member(": WAL archiving to the pgBackRest repository fails (point-in-time recovery "
                                "stops at the last archived file, pg_wal grows)"),
             "the repository's pgBackRest server stopped while the primary switches WAL files", "0s"),
        Rule("FilesystemFilling",
             f'node_filesystem_avail_bytes{{fstype!~"{PSEUDO_FILESYSTEMS}"}} / node_filesystem_size_bytes '
             f'< {s["alert_filesystem_free_percent"] / 100} and node_filesystem_readonly == 0',
             "warning", member(": {{ $labels.mountpoint }} has {{ $value | humanizePercentage }} free"),
             "a filesystem filled beyond alert_filesystem_free_percent", down),
        Rule("CertificateExpiring",
             f"probe_ssl_earliest_cert_expiry - time() < {int(s['alert_certificate_days']) * 86400}", "warning",
             member(" {{ $labels.endpoint }}: its TLS certificate expires in {{ $value | humanizeDuration }} "
                    "(a deploy renews it)"),
             "an endpoint serving a certificate that expires within alert_certificate_days", "0s"),
        Rule("ExporterDown", 'up{job!~"patroni|etcd"} == 0', "warning",
             member(": the {{ $labels.job }} metrics do not answer"), "an exporter stopped", down),
    ]
    max_age = backup_max_age(cluster)
    if cluster.backup and max_age is not None:
        found.append(Rule(
            "BackupTooOld", f"min(pgbackrest_backup_since_last_completion_seconds) > {int(max_age)}", "warning",
            "the newest backup is {{ $value | humanizeDuration }} old: older than the schedule allows",
            "no backup for longer than the schedule allows (alert_backup_max_age)", down))
    return found


def rules_text(cluster: Cluster) -> str:
    scope = cluster.settings["patroni_scope"]
    document = {"groups": [{"name": GROUP_NAME, "rules": [r.document(scope) for r in rules(cluster)]}]}
    return yaml_file(["Managed by pgha (deploys/monitor.py) -- changes here are overwritten."], document)


def problems(cluster: Cluster) -> list[str]:
    """The backups' alert needs a maximum age: given, or read from the schedules by
    systemd-analyze on this machine (each schedule's syntax is the backup component's check)."""
    s = cluster.settings
    if not (cluster.groups.get("monitor") and cluster.backup) or s.get("alert_backup_max_age"):
        return []
    if backup_values.schedules(s) and shutil.which("systemd-analyze") is None:
        return ["group_data: alert_backup_max_age = None: the schedules cannot be read without systemd-analyze "
                "on this machine: expected a Prometheus duration such as 26h"]
    return []
