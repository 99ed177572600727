"""Removing a Patroni member and adding it back (issue 23 item 3 and the seed's "Ajout d'un
nouveau secondaire").

Removal: pg_patroni3 taken out of the inventory is refused without
patroni_allow_member_removal (naming it) and while it leads; with the setting, deploys/all.py
stops and disables it (its data kept), drops it from Patroni (member key, replication slot)
and from every HAProxy and pg_hba, and a second run changes nothing.

Adding: with its data wiped, the real inventory makes it a streaming replica again, restored
from the pgBackRest repository (the seed's "Amélioration"), without restarting the other
members or moving the leadership.
"""

from __future__ import annotations

import shutil
import time

import helpers
import pytest
from helpers import GROUP_DATA, INVENTORY, changed_operations, run_pyinfra

from pgha import client
from pgha.patroni import rest
from pgha.postgres import data_dir
from pgha.postgres.facts import make_psql_command

pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc, pytest.mark.slow]

REMOVED = "pg_patroni3"
REMOVED_MEMBER = "pg-3"


def _rest(address: str, path: str) -> dict:
    return rest.get_json(helpers.CLUSTER, path, timeout=3, address=address) or {}


def _members(address: str) -> dict[str, dict]:
    return {m["name"]: m for m in _rest(address, "cluster").get("members", [])}


def _wait(predicate, timeout: float, what: str):
    value = helpers.wait_until(predicate, timeout, interval=2)
    if not value:
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
    return value


def _two_member_inventory(tmp_path):
    (tmp_path / "group_data").mkdir(exist_ok=True)
    shutil.copy(GROUP_DATA, tmp_path / "group_data" / "all.py")
    # the lab's inventory without pg_patroni3 (lab/pghalab/topology.py holds the nodes)
    text = (
        "from pghalab import topology\n"
        "from pgha.settings.loader import check_inventory\n"
        f"_nodes = {{k: v for k, v in topology.PATRONI_NODES.items() if k != {REMOVED!r}}}\n"
        "globals().update(topology.inventory_groups(patroni_nodes=_nodes))  # as inventory.py, without it\n"
        "check_inventory(__file__)\n"
    )
    path = tmp_path / "inventory_two_patroni.py"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def leader_address(cluster):
    """The leader's address, once it is not pg-3 (the member this test takes out): earlier
    tests may leave pg-3 leading, and a planned switchover moves it off."""
    members = _members(cluster.node("pg_patroni1").address)
    leader = next(m for m in members.values() if m["role"] in ("leader", "master", "primary"))
    if leader["name"] == REMOVED_MEMBER:
        moved = client.switchover(cluster, candidate="pg-1")
        assert moved["to"] == "pg-1", moved
        return cluster.node("pg_patroni1").address
    return leader["host"]


ALLOW = ("--data", "patroni_allow_member_removal=True")


def _leader(address: str) -> str:
    return next(n for n, m in _members(address).items() if m["role"] in ("leader", "master", "primary"))


def _slots(host) -> list[str]:
    sql = "select slot_name from pg_replication_slots"
    return host.run_expect([0], make_psql_command(sql, helpers.CLUSTER.settings["postgresql_port"])).stdout.split()


def test_removing_a_member_is_refused_then_done_cleanly(cluster, patroni_hosts, tmp_path):
    first = cluster.node("pg_patroni1").address
    removed_address = cluster.node(REMOVED).address
    inventory = _two_member_inventory(tmp_path)
    assert REMOVED_MEMBER in _members(first), "pg-3 must be running for this test"

    # 1. without the setting: refused, naming the member, before anything changes
    code, output = run_pyinfra(inventory, "deploys/all.py")
    assert code != 0
    assert f"{REMOVED_MEMBER} ({removed_address})" in output and "patroni_allow_member_removal = True" in output
    assert "Traceback" not in output
    assert patroni_hosts[REMOVED].run("systemctl is-active patroni").stdout.strip() == "active"

    # 2. with the setting but pg-3 leading: refused, switch over first
    if _leader(first) != REMOVED_MEMBER:
        client.switchover(cluster, candidate=REMOVED_MEMBER)
    try:
        code, output = run_pyinfra(inventory, "deploys/all.py", *ALLOW)
        assert code != 0
        assert "leads the cluster" in output and "switch over first (pgha switchover --to " in output, output[-2000:]
        assert _leader(first) == REMOVED_MEMBER
    finally:
        client.switchover(cluster, candidate="pg-1")
    leader_host = patroni_hosts["pg_patroni1"]
    assert removal_slot() in _slots(leader_host)

    # 3. with the setting: stopped, disabled, out of Patroni, HAProxy and pg_hba; data kept
    started = time.monotonic()
    code, output = run_pyinfra(inventory, "deploys/all.py", *ALLOW)
    seconds = time.monotonic() - started
    assert code == 0, output[-3000:]
    print(f"removal of {REMOVED_MEMBER} by deploys/all.py: {seconds:.1f}s")
    removed = patroni_hosts[REMOVED]
    assert removed.run("systemctl is-active patroni pgbouncer haproxy").stdout.split() == ["inactive"] * 3
    assert removed.run("systemctl is-enabled patroni").stdout.strip() == "disabled"
    removed.run_expect([0], f"test -f {data_dir(cluster.settings)}/PG_VERSION")
    assert sorted(_members(first)) == ["pg-1", "pg-2"]
    assert removal_slot() not in _slots(leader_host)
    assert removal_slot() not in _slots(patroni_hosts["pg_patroni2"])  # Patroni 4 keeps copies on replicas
    for name in ("pg_patroni1", "pg_patroni2"):
        host = patroni_hosts[name]
        assert removed_address not in host.file("/etc/haproxy/haproxy.cfg").content_string
        assert removed_address not in host.file(f"/etc/patroni/{cluster.node(name).patroni_name}.yml").content_string
    # the DCS configuration is back as it was (member_slots_ttl only lowered meanwhile)
    assert "member_slots_ttl" not in _rest(first, "config")

    # 4. nothing left to do
    code, output = run_pyinfra(inventory, "deploys/all.py", *ALLOW)
    assert code == 0, output[-3000:]
    assert changed_operations(output) == 0, helpers.changed_operation_rows(output)


def removal_slot() -> str:
    return REMOVED_MEMBER.replace("-", "_")


def test_adding_a_member_makes_it_a_streaming_replica_without_touching_the_others(
    cluster, patroni_hosts, leader_address
):
    removed = patroni_hosts[REMOVED]
    # 1. pg_patroni3 out (removed by the test above, or taken out here): stopped, data and config gone
    removed.run_expect([0], "systemctl disable --now patroni")
    removed.run_expect([0], f"rm -rf {data_dir(cluster.settings)} /etc/patroni/pg-3.yml /etc/patroni/.pg-3.yml.candidate")
    _wait(lambda: REMOVED_MEMBER not in _members(leader_address), 90, "pg-3 to leave /cluster")
    before = {
        name: _rest(m["host"], "patroni")["postmaster_start_time"]
        for name, m in _members(leader_address).items()
    }
    assert sorted(before) == ["pg-1", "pg-2"]

    # 2. the real inventory adds pg-3 (restored from the pgBackRest repository): the whole
    # deploy, as the backup host and the firewalls must let it in again
    since = removed.run("date -u '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    code, output = run_pyinfra(INVENTORY, "deploys/all.py")
    assert code == 0, output[-3000:]
    members = _wait(
        lambda: (m := _members(leader_address)) and len(m) == 3 and m,
        60,
        "3 members in /cluster",
    )
    replication = {
        r["application_name"]: r["state"] for r in _rest(leader_address, "patroni").get("replication", [])
    }
    assert replication.get(REMOVED_MEMBER) == "streaming", replication
    assert members[REMOVED_MEMBER]["role"] == "replica"
    if cluster.backup:
        log = removed.run(f"journalctl -u patroni --since '{since}' --no-pager -o cat").stdout
        assert "replica has been created using pgbackrest" in log, log[-2000:]
    # the leader did not move and the other members were not restarted
    assert _members(leader_address)[
        next(n for n, m in members.items() if m["host"] == leader_address)
    ]["role"] in ("leader", "master", "primary")
    after = {name: _rest(members[name]["host"], "patroni")["postmaster_start_time"] for name in before}
    assert after == before

    # 3. nothing left to do
    code, output = run_pyinfra(INVENTORY, "deploys/all.py")
    assert code == 0, output[-3000:]
    assert changed_operations(output) == 0, helpers.changed_operation_rows(output)
