"""Fixtures for the integration tests: the real lab topology and testinfra hosts over SSH.

The topology comes from the inventory under test (helpers.INVENTORY: inventory.py, or
$PGHA_INVENTORY) through pgha.settings.loader, so the tests follow any change there.
Every test here is marked `lab`: it needs the LXC lab built and deployed (`make cluster`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.lab)
        if item.get_closest_marker("needs_lxc") and not LAB_NAMES:
            item.add_marker(pytest.mark.skip(
                reason=f"needs the LXC lab: {helpers.INVENTORY} has no lab containers "
                "(faults are injected, or scratch machines built, with LXC on this machine)"
            ))


CLUSTER = helpers.CLUSTER
ETCD_NAMES = [n.name for n in CLUSTER.etcd]
PATRONI_NAMES = [n.name for n in CLUSTER.patroni]
LAB_NAMES = [n.name for n in CLUSTER.nodes if n.lxc_container]
NODE_NAMES = [n.name for n in CLUSTER.nodes]


@pytest.fixture(scope="session")
def cluster():
    """The real topology: the checked pgha.settings.topology.Cluster."""
    return CLUSTER


@pytest.fixture(scope="session")
def ssh_config(tmp_path_factory) -> Path:
    """An ssh_config with one Host block per node, reached as pyinfra reaches it."""
    path = tmp_path_factory.mktemp("ssh") / "ssh_config"
    return helpers.write_ssh_config(path, {n.name: n.ssh for n in CLUSTER.nodes})


@pytest.fixture(scope="session")
def lab_hosts(ssh_config) -> dict:
    """Every node of the inventory: name -> testinfra host."""
    return helpers.testinfra_hosts(ssh_config, NODE_NAMES)


@pytest.fixture(scope="session")
def etcd_hosts(lab_hosts) -> dict:
    return {name: lab_hosts[name] for name in ETCD_NAMES}


@pytest.fixture(scope="session")
def patroni_hosts(lab_hosts) -> dict:
    return {name: lab_hosts[name] for name in PATRONI_NAMES}
