"""The seed's "Ajout d'un nouveau secondaire": from a cluster of pg-1 and pg-2, adding
pg_patroni3 to the inventory and re-running makes it a streaming replica, restored from the
pgBackRest repository (the seed's "Amélioration"), without restarting the other members or
moving the leadership.

pg_patroni3 is first taken out of the running lab cluster (Patroni stopped, data wiped),
the deploy is run with a 2-member inventory, then with the real one.
"""

from __future__ import annotations

import shutil

import helpers
import pytest
from helpers import GROUP_DATA, INVENTORY, changed_operations, run_pyinfra

from pgha import client
from pgha.patroni import rest

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
    (tmp_path / "group_data").mkdir()
    shutil.copy(GROUP_DATA, tmp_path / "group_data" / "all.py")
    # the lab's inventory without pg_patroni3 (lab/pghalab/topology.py holds the nodes)
    text = (
        "from pghalab import topology\n"
        "from pgha.settings.loader import check_inventory\n"
        "_groups = topology.groups()\n"
        f"_groups['patroni'] = [h for h in _groups['patroni'] if h[0] != {REMOVED!r}]\n"
        "globals().update(_groups)  # every group of the lab: all, lxc_hosts, etcd, patroni, backup, monitor\n"
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


def test_adding_a_member_makes_it_a_streaming_replica_without_touching_the_others(
    cluster, patroni_hosts, leader_address, tmp_path
):
    removed = patroni_hosts[REMOVED]
    data_dir = f"/var/lib/postgresql/{cluster.settings['postgresql_version']}/{cluster.settings['patroni_scope']}"
    # 1. take pg_patroni3 out: Patroni and PostgreSQL stopped, data and config gone
    removed.run_expect([0], "systemctl disable --now patroni")
    removed.run_expect([0], f"rm -rf {data_dir} /etc/patroni/pg-3.yml /etc/patroni/.pg-3.yml.candidate")
    _wait(lambda: REMOVED_MEMBER not in _members(leader_address), 90, "pg-3 to leave /cluster")

    # 2. the 2-member inventory converges to a healthy 2-member cluster
    code, output = run_pyinfra(_two_member_inventory(tmp_path), "deploys/patroni.py", "--limit", "patroni")
    assert code == 0, output[-3000:]
    assert "pg-3" not in output.split("--> Cluster status")[-1].split("Connect")[0]
    before = {
        name: _rest(m["host"], "patroni")["postmaster_start_time"]
        for name, m in _members(leader_address).items()
    }
    assert sorted(before) == ["pg-1", "pg-2"]

    # 3. the real inventory adds pg-3 (restored from the pgBackRest repository)
    since = removed.run("date -u '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    code, output = run_pyinfra(INVENTORY, "deploys/patroni.py", "--limit", "patroni")
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

    # 4. nothing left to do
    code, output = run_pyinfra(INVENTORY, "deploys/patroni.py", "--limit", "patroni")
    assert code == 0, output[-3000:]
    assert changed_operations(output) == 0
    # the certificates of pg-1 and pg-2 were issued anew twice (without pg-3's names, then
    # with them): HAProxy's and pgBackRest's copies follow with the whole deploy, as they
    # would for a user who added a member with deploys/patroni.py alone
    code, output = run_pyinfra(INVENTORY, "deploys/all.py")
    assert code == 0, output[-3000:]
