"""Fixtures for the integration tests: the real lab topology and testinfra hosts over SSH.

The topology comes from the inventory under test (helpers.INVENTORY: inventory.py, or
$PGHA_INVENTORY) through pgha.settings.loader, so the tests follow any change there.
Every test here is marked `lab`: it needs a deployed inventory (`make cluster`).

Tests that change the cluster are marked `destructive` (safety.py). They run only with
`--destructive` and only against an inventory whose group_data says `test_cluster = True`
(the lab's does); the read-only verification deselects them (`-m "not destructive"`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
import safety  # noqa: E402

from pghalab import values as lab  # noqa: E402

INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--destructive", action="store_true", default=False,
        help="allow the tests marked destructive (failover, restore, rebuild, parameter changes): "
        "only against an inventory whose group_data sets test_cluster = True",
    )


def pytest_collection_finish(session):
    """Destructive tests selected: refuse without --destructive, and against any inventory
    that is not marked as a test cluster, before a single test runs."""
    chosen = [i for i in session.items if i.get_closest_marker(safety.MARKER)]
    if not chosen:
        return
    if not session.config.getoption("--destructive"):
        pytest.exit(
            f"{len(chosen)} selected tests are destructive (they fail members over, restore, rebuild, "
            "change parameters), e.g. " + chosen[0].nodeid + ": run them with --destructive "
            "(`make drills INVENTORY=... CONFIRM=yes`), or only the read-only verification "
            '(`make verify`, -m "not destructive")', returncode=4,
        )
    if not CLUSTER.is_test_cluster:
        pytest.exit(
            f"{helpers.INVENTORY} is not marked as a test cluster (test_cluster = "
            f"{CLUSTER.settings.get('test_cluster')!r}, and it is no lab): the destructive tests "
            "would fail it over, restore and rebuild it. Set test_cluster = True in its "
            "group_data only for a cluster whose data may be lost", returncode=4,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Every step that changes the cluster checks the running test's markers (safety.py),
    in the test and in the fixtures its setup builds (a module's fixture is built for the
    first test that asks for it). Teardown only heals what a checked setup broke."""
    safety.GUARD.item = item


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    safety.GUARD.item = None


NO_LAB = "needs the LXC lab: {} has no lab containers (faults are injected, or scratch machines built, with LXC on this machine)"


def lab_params(names: list[str]) -> list:
    """``names`` to parametrize a lab test with, or one skipped case saying why there are none
    (pytest's own "got empty parameter set" says nothing to a user)."""
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=NO_LAB.format(helpers.INVENTORY)))]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.lab)
        if item.get_closest_marker("needs_lxc") and not LAB_NAMES:
            item.add_marker(pytest.mark.skip(reason=NO_LAB.format(helpers.INVENTORY)))


CLUSTER = helpers.CLUSTER
ETCD_NAMES = [n.name for n in CLUSTER.etcd]
PATRONI_NAMES = [n.name for n in CLUSTER.patroni]
LAB_NAMES = [n.name for n in CLUSTER.nodes if lab.container(n)]
NODE_NAMES = [n.name for n in CLUSTER.nodes]


@pytest.fixture(scope="session")
def cluster():
    """The real topology: the checked pgha.cluster.Cluster."""
    return CLUSTER


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    """The cluster's secrets (secrets.json, checked with the settings)."""
    return CLUSTER.secrets


@pytest.fixture(scope="session")
def ssh_config(tmp_path_factory) -> Path:
    """An ssh_config with one Host block per node, reached as pyinfra reaches it."""
    path = tmp_path_factory.mktemp("ssh") / "ssh_config"
    return helpers.write_ssh_config(path, {n.name: n.ssh for n in CLUSTER.nodes})


@pytest.fixture(scope="session")
def lab_hosts(ssh_config) -> dict:
    """Every node of the inventory: name -> testinfra host."""
    return {name: safety.GuardedHost(host) for name, host in helpers.testinfra_hosts(ssh_config, NODE_NAMES).items()}


@pytest.fixture(scope="session")
def etcd_hosts(lab_hosts) -> dict:
    return {name: lab_hosts[name] for name in ETCD_NAMES}


@pytest.fixture(scope="session")
def patroni_hosts(lab_hosts) -> dict:
    return {name: lab_hosts[name] for name in PATRONI_NAMES}
