"""Every alert rule proven on the lab (issue 21): its fault caused for real, the alert seen
firing in Prometheus and delivered to the lab's webhook receiver, then cleared after the heal.
The unit tests (test_monitor_rules.py) prove the same rules on synthetic series.

A killed replica runs alone (every phase, bookworm's too). The other faults come in two
batches so that the lab pays each wait once: batch A breaks ten independent things at
the same time; batch B those that need Patroni paused, then the cluster without a primary,
then the backups' age. Each alert's time from fault to firing and from heal to clearing goes
to .lab/alerts.json (the docs' table of rules quotes it); the lab's group_data shortens the
`for` durations (LAB_MONITORING) so the figures are the lab's, not production's defaults.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
from pathlib import Path

import helpers
import pg_helpers
import pytest
from conftest import CLUSTER
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pgha import client
from pgha.backup import values as backup_values
from pgha.monitor import api, rules, values
from pgha.patroni import rest
from pgha.pki import authority
from pgha.pki import values as pki
from pgha.postgres import bin_dir, data_dir
from pgha.postgres.facts import make_psql_command
from pghalab import webhook

S = CLUSTER.settings
pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc,
              pytest.mark.skipif(not CLUSTER.groups.get(values.GROUP), reason="no monitoring host")]

RESULTS = helpers.PROJECT_ROOT / ".lab" / "alerts.json"
FAULTS = {r.alert: r.fault for r in rules.rules(CLUSTER)}
FIRE_TIMEOUT = 150
CLEAR_TIMEOUT = 150
PG_PORT = S["postgresql_port"]
REST_LOGIN = (S["patroni_restapi_username"], CLUSTER.secrets["restapi_password"])
FILL_MOUNT = "/srv/pgha-test-fill"  # Debian's node exporter leaves out /mnt, /media, /run
HAPROXY_PEM = pki.pem_file("haproxy")


class AlertWatch(helpers.Background):
    """Prometheus's active alerts polled every second: the first time each (alert, instance)
    is seen firing, and after that the first time it is no longer active."""

    interval = 1.0

    def __init__(self):
        super().__init__()
        self.fired: dict[tuple[str, str], float] = {}
        self.cleared: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def step(self):
        try:
            active = api.alerts(CLUSTER)
        except Exception:  # noqa: BLE001 - Prometheus busy: the next poll sees it
            return
        now = time.monotonic()
        firing = {(a["name"], a["instance"]) for a in active if a["state"] == "firing"}
        seen = {(a["name"], a["instance"]) for a in active}
        with self._lock:
            for key in firing:
                self.fired.setdefault(key, now)
                self.cleared.pop(key, None)
            for key in self.fired:
                if key not in seen:
                    self.cleared.setdefault(key, now)

    def forget(self, keys) -> None:
        """What was seen of ``keys`` so far (a fault about to be caused times from now)."""
        with self._lock:
            for key in keys:
                self.fired.pop(key, None)
                self.cleared.pop(key, None)

    def wait(self, keys, table: dict, timeout: float) -> list:
        helpers.wait_until(lambda: all(k in table for k in keys), timeout, interval=1)
        return [k for k in keys if k not in table]


def record(watch: AlertWatch, keys, faulted: float, healed: float | None) -> dict:
    """Each alert's figures, also merged into RESULTS."""
    figures = {}
    for name, instance in keys:
        fired, cleared = watch.fired.get((name, instance)), watch.cleared.get((name, instance))
        figures[name] = {
            "fault": FAULTS.get(name, ""), "instance": instance,
            "fired_after_seconds": None if fired is None else round(fired - faulted, 1),
            "cleared_after_seconds": None if cleared is None or healed is None else round(cleared - healed, 1),
        }
    RESULTS.parent.mkdir(exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved.update(figures)
    RESULTS.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    return figures


def sql(host, statement: str) -> str:
    return host.check_output("cd /tmp && " + make_psql_command(statement, PG_PORT)).strip()




def patch_config(address: str, document: dict) -> None:
    answer = rest.request(CLUSTER, "PATCH", address, "config", json=document, auth=REST_LOGIN, timeout=10)
    assert answer.status_code == 200, answer.text


def healthy(timeout: float = 180) -> None:
    problem = pg_helpers.wait_for_healthy_cluster(timeout)
    assert not problem, f"the cluster did not heal: {problem}"


def delivered(hosts: dict, status: str) -> set[str]:
    """The alerts the lab's webhook receiver got with ``status`` (firing, resolved)."""
    log = hosts[values.monitor_host(CLUSTER).name].check_output(f"cat {webhook.LOG} 2>/dev/null || true")
    names = set()
    for line in log.splitlines():
        for alert in json.loads(line)["notification"].get("alerts", []) if line.strip() else []:
            if alert.get("status") == status:
                names.add(alert["labels"]["alertname"])
    return names


def wait_delivered(hosts: dict, names, status: str, timeout: float = 60) -> list[str]:
    helpers.wait_until(lambda: set(names) <= delivered(hosts, status), timeout, interval=2)
    return sorted(set(names) - delivered(hosts, status))


def assert_fired_and_cleared(figures: dict, name: str) -> None:
    got = figures[name]
    assert got["fired_after_seconds"] is not None, f"{name} did not fire within {FIRE_TIMEOUT}s of its fault"
    assert got["cleared_after_seconds"] is not None, f"{name} did not clear within {CLEAR_TIMEOUT}s of the heal"


# --- a killed replica ---------------------------------------------------------------------


def test_a_killed_replica_raises_an_alert_naming_it_within_90s_that_clears(lab_hosts, patroni_hosts):
    _, replicas = pg_helpers.roles()
    victim = replicas[-1]
    host = patroni_hosts[victim.name]
    key = ("PatroniMemberDown", victim.name)
    with AlertWatch() as watch:
        faulted = time.monotonic()
        host.run("systemctl kill -s KILL patroni; systemctl stop patroni")
        try:
            missing = watch.wait([key], watch.fired, 90)
            undelivered = wait_delivered(lab_hosts, ["PatroniMemberDown"], "firing")
        finally:
            healed = time.monotonic()
            helpers.start_again(host, "patroni")
        assert not missing, f"no alert named {victim.name} within 90s of killing it"
        assert undelivered == [], "the firing alert did not reach the webhook receiver"
        assert watch.wait([key], watch.cleared, CLEAR_TIMEOUT) == []
    figures = record(watch, [key], faulted, healed)
    assert figures["PatroniMemberDown"]["fired_after_seconds"] < 90
    healthy()


# --- batch A: ten faults at once -------------------------------------------------------


def short_lived_certificate(node, days: int = 10) -> bytes:
    """The node's own certificate issued again by the cluster CA, valid ``days`` only."""
    ca_cert, ca_key = authority.ensure_ca(authority.directory(), "")  # the lab's: it exists
    own = x509.load_pem_x509_certificate(Path(authority.host_files(CLUSTER)[node.name].cert).read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(own.subject).issuer_name(ca_cert.subject)
               .public_key(own.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days)))
    for extension in own.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def haproxy_admin(host, command: str) -> None:
    host.check_output(f"python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                      f"s.connect('/run/haproxy/admin.sock'); s.sendall(b'{command}\\n'); print(s.recv(4096))\"")


BATCH_A = ["ReplicaNotStreaming", "ReplicaLagging", "EtcdMemberDown", "EtcdQuorumAtRisk", "ExporterDown",
           "FilesystemFilling", "HAProxyNoPrimary", "CertificateExpiring", "WalArchivingFailing",
           "PatroniPendingRestart"]


@pytest.fixture(scope="module")
def batch_a(lab_hosts):
    leader, replicas = pg_helpers.roles()
    cut = replicas[0]
    backup = CLUSTER.backup[0]
    etcd_down, node_exporter_down = CLUSTER.etcd[-1], CLUSTER.etcd[-2]
    haproxy_maint, haproxy_cert = leader, cut
    # raised, then set back to the value it runs with (a restart-only parameter taken out of
    # the configuration leaves PostgreSQL waiting for a restart, whatever its value)
    max_connections = int(sql(lab_hosts[leader.name], "show max_connections"))
    keys = [("ReplicaNotStreaming", cut.name), ("ReplicaLagging", cut.name),
            ("EtcdMemberDown", etcd_down.name), ("EtcdQuorumAtRisk", ""),
            ("ExporterDown", node_exporter_down.name), ("FilesystemFilling", backup.name),
            ("HAProxyNoPrimary", haproxy_maint.name), ("CertificateExpiring", haproxy_cert.name),
            ("WalArchivingFailing", leader.name), ("PatroniPendingRestart", leader.name)]
    h = lab_hosts
    certificate = short_lived_certificate(haproxy_cert).decode()
    with AlertWatch() as watch, contextlib.ExitStack() as stack:
        faulted = time.monotonic()
        try:
            stack.enter_context(helpers.cut_off(h[cut.name], [leader.address, backup.address],
                                                [PG_PORT, S["pgbackrest_tls_port"]]))
            h[etcd_down.name].run("systemctl stop etcd")
            h[node_exporter_down.name].run("systemctl stop prometheus-node-exporter")
            h[backup.name].run(f"mkdir -p {FILL_MOUNT} && mount -t tmpfs -o size=4m pgha-test-fill {FILL_MOUNT} && "
                               f"dd if=/dev/zero of={FILL_MOUNT}/fill bs=1k count=3900 2>/dev/null")
            # the leader's server only: the others are down by their checks, and "ready" would
            # bring them back as up until their next check
            haproxy_admin(h[haproxy_maint.name], f"set server primary/{leader.patroni_name} state maint")
            h[haproxy_cert.name].run(f"cp -p {HAPROXY_PEM} /tmp/pgha-test-haproxy.pem && "
                                     f"{{ printf '%s' '{certificate}'; sed -n '/BEGIN .*PRIVATE KEY/,/END .*PRIVATE KEY/p' "
                                     f"/tmp/pgha-test-haproxy.pem; }} > {HAPROXY_PEM} && systemctl reload haproxy")
            h[backup.name].run(f"systemctl stop {backup_values.SERVER_UNIT}")
            pg_helpers.write_wal(h[leader.name])
            sql(h[leader.name], "select pg_switch_wal()")
            patch_config(leader.address, {"postgresql": {"parameters": {"max_connections": max_connections + 10}}})
            watch.wait(keys, watch.fired, FIRE_TIMEOUT)
            undelivered = wait_delivered(h, BATCH_A, "firing")  # Alertmanager sends after group_wait
        finally:
            healed = time.monotonic()
            patch_config(leader.address, {"postgresql": {"parameters": {"max_connections": max_connections}}})
            helpers.start_again(h[backup.name], backup_values.SERVER_UNIT)
            h[haproxy_cert.name].run(f"cp -p /tmp/pgha-test-haproxy.pem {HAPROXY_PEM} && "
                                     "rm /tmp/pgha-test-haproxy.pem && systemctl reload haproxy")
            haproxy_admin(h[haproxy_maint.name], f"set server primary/{leader.patroni_name} state ready")
            h[backup.name].run(f"umount {FILL_MOUNT} && rmdir {FILL_MOUNT}")
            helpers.start_again(h[node_exporter_down.name], "prometheus-node-exporter")
            helpers.start_again(h[etcd_down.name], "etcd")
            stack.close()
            pg_helpers.write_wal(h[leader.name], 1)
            sql(h[leader.name], "select pg_switch_wal()")
        watch.wait(keys, watch.cleared, CLEAR_TIMEOUT)
    healthy()
    return {**record(watch, keys, faulted, healed), "undelivered": undelivered}



@pytest.mark.slow
@pytest.mark.parametrize("name", BATCH_A)
def test_batch_a_alert_fires_on_its_fault_and_clears(batch_a, name):
    assert_fired_and_cleared(batch_a, name)


@pytest.mark.slow
def test_batch_a_alerts_reach_the_webhook_and_resolve(lab_hosts, batch_a):
    assert batch_a["undelivered"] == []
    assert wait_delivered(lab_hosts, BATCH_A, "resolved") == []


# --- batch B: a switchover; Patroni paused, two primaries, etcd without a leader; no primary;
# --- the backups' age


@pytest.fixture(scope="module")
def batch_b(lab_hosts):
    h = lab_hosts
    figures = {}
    with AlertWatch() as watch:
        # a switchover: the timeline changes
        leader, replicas = pg_helpers.roles()
        faulted = time.monotonic()
        client.switchover(CLUSTER, replicas[0].patroni_name, timeout=60)
        switched = time.monotonic()
        watch.wait([("PatroniFailover", "")], watch.fired, FIRE_TIMEOUT)
        healthy()

        # paused: a replica promoted behind Patroni's back, two etcd members stopped
        leader, replicas = pg_helpers.roles()
        rogue = replicas[0]
        survivor, stopped = CLUSTER.etcd[0], CLUSTER.etcd[1:]
        keys = [("PatroniPaused", ""), ("PostgresTwoPrimaries", ""), ("EtcdNoLeader", survivor.name)]
        watch.forget(keys)
        faulted_paused = time.monotonic()
        try:
            patch_config(leader.address, {"pause": True})
            # the rogue archives nothing: its timeline's history file in the repository would
            # lead every later recovery (the replicas', a restore) onto its timeline. Its data
            # directory, postgresql.auto.conf included, is made anew by the rebuild below.
            sql(h[rogue.name], "alter system set archive_command = '/bin/true'")
            sql(h[rogue.name], "select pg_reload_conf()")
            time.sleep(2)  # the archiver reads its configuration again
            sql(h[rogue.name], "select pg_promote()")
            for node in stopped:
                h[node.name].run("systemctl stop etcd")
            watch.wait(keys, watch.fired, FIRE_TIMEOUT)
        finally:
            healed_paused = time.monotonic()
            for node in stopped:
                helpers.start_again(h[node.name], "etcd")
            helpers.wait_until(lambda: all(helpers.cluster_health(h[survivor.name]).values() or [False]), 60)
            # The rogue is rebuilt from scratch: Patroni stopped there while still paused (it
            # leaves PostgreSQL running), then PostgreSQL, its data directory removed, and
            # Patroni started once resumed: it makes a new replica from the repository. A
            # reinitialize sent after the resume raced Patroni's own pg_rewind of the rogue
            # (CI: pg_rewind wrote its backup_label over the restored files, and PostgreSQL
            # refused to start: "backup_label contains data inconsistent with control file").
            rogue_host = h[rogue.name]
            rogue_host.run("systemctl stop patroni")
            rogue_host.run(f"runuser -u postgres -- {bin_dir(S)}/pg_ctl -D {data_dir(S)} -m fast -w stop")
            rogue_host.run(f"rm -rf {data_dir(S)}")
            patch_config(leader.address, {"pause": False})
            helpers.start_again(rogue_host, "patroni")
        healthy()
        watch.wait(keys, watch.cleared, CLEAR_TIMEOUT)
        figures.update(record(watch, keys, faulted_paused, healed_paused))

        # no primary: every Patroni stopped
        key = ("PostgresNoPrimary", "")
        watch.forget([key])
        faulted_stop = time.monotonic()
        try:
            for node in CLUSTER.patroni:
                h[node.name].run("systemctl stop patroni")
            watch.wait([key], watch.fired, FIRE_TIMEOUT)
        finally:
            healed_stop = time.monotonic()
            for node in CLUSTER.patroni:
                helpers.start_again(h[node.name], "patroni")
        healthy()
        watch.wait([key], watch.cleared, CLEAR_TIMEOUT)
        figures.update(record(watch, [key], faulted_stop, healed_stop))

        # the backups' age: a maximum below the newest backup's age
        key = ("BackupTooOld", "")
        age = min(s["value"] for s in api.query(CLUSTER, "pgbackrest_backup_since_last_completion_seconds"))
        watch.forget([key])
        faulted_age = time.monotonic()
        try:
            code, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/monitor.py",
                                               "--data", f"alert_backup_max_age={max(1, int(age) // 2)}s")
            assert code == 0, helpers.tail(output)
            watch.wait([key], watch.fired, FIRE_TIMEOUT)
        finally:
            healed_age = time.monotonic()
            code, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/monitor.py")
            assert code == 0, helpers.tail(output)
        watch.wait([key], watch.cleared, CLEAR_TIMEOUT)
        figures.update(record(watch, [key], faulted_age, healed_age))

        # the switchover's alert clears alert_failover_window after the last timeline change
        watch.wait([("PatroniFailover", "")], watch.cleared, CLEAR_TIMEOUT)
        figures.update(record(watch, [("PatroniFailover", "")], faulted, switched))
    return figures


BATCH_B = ["PatroniFailover", "PatroniPaused", "PostgresTwoPrimaries", "EtcdNoLeader", "PostgresNoPrimary",
           "BackupTooOld"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCH_B)
def test_batch_b_alert_fires_on_its_fault_and_clears(batch_b, name):
    assert_fired_and_cleared(batch_b, name)


def test_every_rule_has_its_lab_test():
    covered = {"PatroniMemberDown", *BATCH_A, *BATCH_B}
    assert {r.alert for r in rules.rules(CLUSTER)} <= covered
