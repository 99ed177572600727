"""etcd on the `etcd` group: 3 healthy members that agree, listening where expected, running
as `etcd` from the managed config; replication; a member stopped and back; idempotence;
the deploy's check and its refusal to drop a member.

The only disruptive step stops etcd on the last member (etcd3) for a few seconds, in one
try/finally that always starts it again and waits until the cluster is healthy.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import uuid

import helpers
import pytest
import yaml
from conftest import CLUSTER, ETCD_NAMES

CONFIG_FILE = "/etc/etcd/etcd.conf.yml"
CLIENT_PORT = CLUSTER.settings["etcd_client_port"]
PEER_PORT = CLUSTER.settings["etcd_peer_port"]
URLS = helpers.client_urls(CLUSTER)
WRITER, VICTIM = ETCD_NAMES[0], ETCD_NAMES[-1]  # etcd1 writes, etcd3 is stopped
OUTAGE_BUDGET = 40  # seconds from `systemctl stop` until the cluster is healthy again


def address(name):
    return CLUSTER.node(name).address


def unique_key(label: str) -> str:
    return f"{helpers.TEST_KEY_PREFIX}{label}-{uuid.uuid4().hex[:12]}"


# --- membership and health ------------------------------------------------------------------


def test_inventory_has_three_etcd_members():
    assert len(ETCD_NAMES) == 3, ETCD_NAMES


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_every_member_healthy_seen_from(etcd_hosts, name):
    result = helpers.etcdctl(etcd_hosts[name], "endpoint", "health", "--cluster", "-w", "json")
    assert result.rc == 0, result.stdout + result.stderr
    assert helpers.cluster_health(etcd_hosts[name]) == {url: True for url in URLS.values()}


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_member_list_matches_inventory(etcd_hosts, name):
    assert helpers.member_list(etcd_hosts[name]) == helpers.expected_members(CLUSTER)


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_ports_listen(etcd_hosts, name):
    host = etcd_hosts[name]
    assert host.socket(f"tcp://{address(name)}:{CLIENT_PORT}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{CLIENT_PORT}").is_listening
    assert host.socket(f"tcp://{address(name)}:{PEER_PORT}").is_listening


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_etcd_runs_as_etcd_from_the_managed_config(etcd_hosts, name):
    host = etcd_hosts[name]
    service = host.service("etcd")
    assert service.is_running
    assert service.is_enabled
    processes = host.process.filter(comm="etcd")
    assert len(processes) == 1, [p.args for p in processes]
    assert processes[0].user == "etcd"
    assert processes[0].args.split()[1:] == ["--config-file", CONFIG_FILE]
    config = yaml.safe_load(host.file(CONFIG_FILE).content_string)
    assert config["name"] == name
    assert config["advertise-client-urls"] == URLS[name]


@pytest.mark.parametrize("writer", ETCD_NAMES)
def test_key_written_through_one_member_is_read_through_the_others(etcd_hosts, writer):
    key, value = unique_key(f"replication-{writer}"), uuid.uuid4().hex
    try:
        put = helpers.etcdctl(etcd_hosts[writer], "put", key, value)
        assert put.rc == 0 and put.stdout.strip() == "OK", put.stdout + put.stderr
        for reader in ETCD_NAMES:
            if reader == writer:
                continue
            # linearizable: through the reader; serializable: from the reader's own store
            assert helpers.get_key(etcd_hosts[reader], key) == value, reader
            local = helpers.wait_until(
                lambda reader=reader: helpers.get_key(etcd_hosts[reader], key, serializable=True) == value, 10
            )
            assert local, f"{reader}'s own store does not have {key}"
    finally:
        helpers.etcdctl(etcd_hosts[writer], "del", key)
    assert helpers.get_key(etcd_hosts[writer], key) is None


# --- idempotence ----------------------------------------------------------------------------


@pytest.mark.destructive
def test_second_etcd_deploy_changes_nothing():
    # A config change would restart etcd (on every member at once): look before running.
    rc, pending, output = helpers.dry_run_changes(
        helpers.INVENTORY, "deploys/etcd.py", "--limit", "etcd"
    )
    assert rc == 0, helpers.tail(output)
    assert not pending, "the etcd deploy would change:\n" + "\n".join(pending)

    rc, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/etcd.py", "--limit", "etcd")
    assert rc == 0, helpers.tail(output)
    totals = helpers.grand_total(output)
    assert totals["hosts"] >= 3 * len(ETCD_NAMES), totals  # every member ran its operations
    assert totals["error"] == 0, totals
    assert helpers.changed_operations(output) == 0, "\n".join(
        helpers.changed_operation_rows(output)
    )


# --- a member missing from the inventory ----------------------------------------------------


def _member_state(host) -> dict:
    """What a refused deploy must leave alone: config files, the running process."""
    files = host.run(f"cat {CONFIG_FILE} /etc/default/etcd").stdout
    service = host.run("systemctl show etcd -p MainPID -p ActiveEnterTimestamp").stdout
    return {"files": hashlib.sha256(files.encode()).hexdigest(), "service": service.strip()}


@pytest.mark.destructive
@pytest.mark.needs_lxc  # its scratch inventory is built from the lab's topology
def test_removing_a_member_from_the_inventory_is_refused(etcd_hosts, tmp_path):
    kept = ETCD_NAMES[:2]
    dropped = ETCD_NAMES[2]
    group_data = tmp_path / "group_data"
    group_data.mkdir()
    original = helpers.GROUP_DATA.read_text(encoding="utf-8")
    changed, count = re.subn(
        r"^etcd_allow_even_members = False\b", "etcd_allow_even_members = True", original, flags=re.M
    )
    assert count == 1, "group_data/all.py no longer sets etcd_allow_even_members = False"
    (group_data / "all.py").write_text(changed, encoding="utf-8")
    etcd_nodes = {name: address(name) for name in kept}
    patroni_nodes = {
        n.name: (n.address, n.patroni_name, n.aliases) for n in CLUSTER.patroni
    }
    inventory = tmp_path / "inventory.py"
    # Not lab.prepare_local_files(): that would rewrite .lab/known_hosts without etcd3.
    inventory.write_text(
        "from pghalab import topology\n"
        "from pgha.settings.loader import check_inventory\n"
        f"_groups = topology.groups({etcd_nodes!r}, {patroni_nodes!r})\n"
        "all, etcd, patroni = _groups['all'], _groups['etcd'], _groups['patroni']\n"
        "check_inventory(__file__)\n",
        encoding="utf-8",
    )
    before = {name: _member_state(etcd_hosts[name]) for name in ETCD_NAMES}
    members_before = helpers.member_list(etcd_hosts[kept[0]])

    rc, output = helpers.run_pyinfra(inventory, "deploys/etcd.py", "--limit", "etcd", timeout=300)

    assert rc != 0, helpers.tail(output)
    refusal = [line for line in output.splitlines() if "etcd_allow_member_removal" in line]
    assert refusal, "no message naming etcd_allow_member_removal:\n" + helpers.tail(output)
    assert any(re.search(rf"\b{re.escape(dropped)}\b", line) for line in refusal), refusal
    assert not any(re.search(rf"\b{re.escape(n)}\b", line) for line in refusal for n in kept), refusal
    # nothing ran, nothing changed
    assert "--> Beginning operation run" not in output, helpers.tail(output)
    assert {name: _member_state(etcd_hosts[name]) for name in ETCD_NAMES} == before
    assert helpers.member_list(etcd_hosts[kept[0]]) == members_before == helpers.expected_members(
        CLUSTER
    )


# --- one member stopped, then started again -------------------------------------------------


def _start_again(host) -> bool:
    return helpers.start_again(host, "etcd")


def _all_healthy(hosts) -> bool:
    expected = {url: True for url in URLS.values()}
    try:
        return all(helpers.cluster_health(h) == expected for h in hosts)
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def outage(etcd_hosts):
    """Stop etcd on VICTIM, observe the cluster and the deploy, start it again: the findings.

    Everything that needs the member down happens in one window (kept well under
    OUTAGE_BUDGET); the finally block always starts etcd again and waits for health.
    """
    writer, victim = etcd_hosts[WRITER], etcd_hosts[VICTIM]
    other = etcd_hosts[ETCD_NAMES[1]]
    if not _all_healthy([writer]):
        pytest.fail(f"the etcd cluster is not healthy before the test: {helpers.cluster_health(writer)}")
    key, value = unique_key("outage"), uuid.uuid4().hex
    seen: dict = {"key": key, "value": value}
    started = time.monotonic()
    try:
        seen["stop_rc"] = victim.run("systemctl stop etcd").rc
        seen["victim_state"] = victim.run("systemctl is-active etcd").stdout.strip()
        seen["health_during"] = helpers.cluster_health(writer)
        put = helpers.etcdctl(writer, "put", key, value)
        seen["put"] = (put.rc, (put.stdout + put.stderr).strip())
        seen["read_during"] = helpers.get_key(other, key)
        try:
            seen["deploy"] = helpers.run_pyinfra(
                helpers.INVENTORY, "deploys/etcd.py", "--limit", WRITER,
                "--data", "etcd_check_timeout=6", timeout=OUTAGE_BUDGET - 15,
            )
        except subprocess.TimeoutExpired as error:
            seen["deploy"] = (None, f"pyinfra timed out: {error}")
        seen["victim_state_after_deploy"] = victim.run("systemctl is-active etcd").stdout.strip()
    finally:
        seen["started"] = _start_again(victim)
        seen["healthy_again"] = helpers.wait_until(lambda: _all_healthy([writer, victim]), 60)
        seen["outage_seconds"] = time.monotonic() - started
    seen["victim_has_key"] = helpers.wait_until(
        lambda: helpers.get_key(victim, key, serializable=True) == value, 20
    )
    seen["victim_members"] = helpers.member_list(victim)
    print(f"etcd outage on {VICTIM}: {seen['outage_seconds']:.1f}s")
    yield seen
    helpers.etcdctl(writer, "del", key)


@pytest.mark.destructive
def test_outage_stopped_exactly_one_member(outage):
    assert outage["stop_rc"] == 0
    assert outage["victim_state"] == "inactive"
    expected = {url: url != URLS[VICTIM] for url in URLS.values()}
    assert outage["health_during"] == expected


@pytest.mark.destructive
def test_outage_cluster_accepts_writes_through_etcd1(outage):
    assert outage["put"] == (0, "OK")
    assert outage["read_during"] == outage["value"]


@pytest.mark.destructive
def test_outage_deploy_check_fails_naming_the_stopped_member(outage):
    rc, output = outage["deploy"]
    assert rc not in (0, None), helpers.tail(output)
    # the deploy limited to etcd1 must not have started etcd3 behind the test's back
    assert outage["victim_state_after_deploy"] == "inactive"
    complaints = [line for line in output.splitlines() if "not healthy" in line]
    assert complaints, "no 'not healthy' message:\n" + helpers.tail(output)
    assert all(URLS[VICTIM] in line for line in complaints), complaints
    healthy = [URLS[n] for n in ETCD_NAMES if n != VICTIM]
    assert not any(url in line for line in complaints for url in healthy), complaints


@pytest.mark.destructive
def test_outage_deploy_check_message_has_the_member_name(outage):
    """The message should say which member (etcd3), not only its client URL."""
    _, output = outage["deploy"]
    complaints = [line for line in output.splitlines() if "not healthy" in line]
    assert any(re.search(rf"\b{re.escape(VICTIM)}\b", line) for line in complaints), complaints


@pytest.mark.destructive
def test_outage_member_rejoins_with_the_key_written_while_down(outage):
    assert outage["started"], f"could not start etcd on {VICTIM} again"
    assert outage["healthy_again"], "the cluster did not become healthy again within 60 s"
    assert outage["victim_has_key"], f"{VICTIM} does not have {outage['key']} after rejoining"
    assert outage["victim_members"] == helpers.expected_members(CLUSTER)


@pytest.mark.destructive
def test_outage_was_short(outage):
    assert outage["outage_seconds"] < OUTAGE_BUDGET, outage["outage_seconds"]
