"""Rolling package updates (issue 23 item 2): with newer builds of patroni and etcd-server
offered by a package repository on the lab host (lab/pghalab/package_repo.py), `pgha
upgrade` under writes updates the etcd members one at a time, the replicas, switches over,
then updates the former leader; every node ends with the new versions, the cluster healthy,
no acknowledged row lost. Its longest write gap is printed beside a plain switchover's.
"""

from __future__ import annotations

import json

import helpers
import pytest
from conftest import CLUSTER

from pgha import client
from pgha.patroni import rest
from pghalab import package_repo
from pghalab.drills import under_writes

pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc, pytest.mark.slow]

UPDATED = {"patroni": "patroni", "etcd": "etcd-server"}  # group -> the package rebuilt for it
GATEWAY = CLUSTER.settings.get("lab_gateway")  # a lab setting: absent on your own machines (collected by pgha verify)


def _version(host, package: str) -> str:
    return host.run(f"dpkg-query -W -f '${{Version}}' {package}").stdout.strip()


@pytest.fixture(scope="module")
def newer_packages(lab_hosts, tmp_path_factory):
    """Every node's apt sources offer the rebuilt packages while the module runs."""
    directory = tmp_path_factory.mktemp("pgha-lab-updates")
    package_repo.build(CLUSTER.patroni[0].name, list(UPDATED.values()), directory)
    package_repo.index(directory)
    with package_repo.served(directory, GATEWAY) as url:
        for host in lab_hosts.values():
            host.run_expect([0], package_repo.sources_command(url, GATEWAY))
        try:
            yield
        finally:
            for host in lab_hosts.values():
                host.run(package_repo.removal_command())


def test_a_package_update_rolls_through_the_cluster_under_writes(newer_packages, lab_hosts, cluster):
    before = {n.name: _version(lab_hosts[n.name], UPDATED[group]) for group in UPDATED for n in getattr(cluster, group)}
    dry = helpers.pgha("upgrade", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for name, version in before.items():
        assert f"{name} (" in dry.stdout and f"{version} -> {version}{package_repo.SUFFIX}" in dry.stdout, dry.stdout
    assert all(_version(lab_hosts[name], UPDATED["patroni" if name in [n.name for n in cluster.patroni] else "etcd"])
               == version for name, version in before.items())  # the dry run changed nothing
    leader_before = rest.leader(cluster)["name"]
    started = {n.patroni_name: rest.get_json(cluster, "patroni", address=n.address)["postmaster_start_time"]
               for n in cluster.patroni}

    done, figures = under_writes.measure(cluster, lambda: helpers.pgha("upgrade", timeout=1800), label="upgrade")
    print(f"\npgha upgrade under writes: {json.dumps(figures)}\n{done.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    for name, version in before.items():
        group = "patroni" if name in [n.name for n in cluster.patroni] else "etcd"
        assert _version(lab_hosts[name], UPDATED[group]) == version + package_repo.SUFFIX
    # etcd first, the replicas, then the leader after its switchover
    order = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("updating ")]
    leader_node = cluster.node(leader_before).name
    assert order[:len(cluster.etcd)] == [n.name for n in cluster.etcd]
    assert order[-1] == leader_node and set(order) == set(before)
    assert f"{leader_before} leads: switching over to" in done.stdout
    # every PostgreSQL restarted on the new Patroni, none lost a row, one leader at a time
    after = {n.patroni_name: rest.get_json(cluster, "patroni", address=n.address)["postmaster_start_time"]
             for n in cluster.patroni}
    assert all(after[name] != started[name] for name in started)
    assert rest.health(cluster)["problems"] == []
    assert figures["acknowledged_rows_missing"] == 0
    assert not figures["two_primaries_at_once"]

    # nothing left to update
    again = helpers.pgha("upgrade")
    assert again.returncode == 0 and "nothing to update" in again.stdout, again.stdout + again.stderr

    # the figure to compare with: a plain (paused) switchover under writes
    moved, switchover = under_writes.measure(cluster, lambda: client.switchover(cluster, leader_before),
                                             label="switchover")
    print(f"switchover under writes: {json.dumps(switchover)}")
    print(f"longest write gap: upgrade {figures['longest_gap_seconds']}s, "
          f"switchover {switchover['longest_gap_seconds']}s")
    assert moved["to"] == leader_before
