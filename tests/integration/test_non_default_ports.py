"""The whole cluster on other ports: etcd's client port, Patroni's REST API and PostgreSQL
moved off their defaults, deployed on scratch containers (the real cluster is not touched)
with deploys/all.py, then checked by the deploy's own checks, a second run that changes
nothing, and the verification tests (etcd, Patroni, HAProxy) pointed at this inventory
through PGHA_INVENTORY. Every endpoint and port must come from the settings for this to pass.

The scratch containers are destroyed at the end, whatever happened.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

import helpers

PORTS = {"etcd_client_port": 2479, "patroni_restapi_port": 8018, "postgresql_port": 5544}
ETCD_NODES = {"ports_etcd1": "10.0.3.111", "ports_etcd2": "10.0.3.112", "ports_etcd3": "10.0.3.113"}
PATRONI_NODES = {
    "ports_patroni1": ("10.0.3.114", "ports-pg-1", []),
    "ports_patroni2": ("10.0.3.115", "ports-pg-2", []),
    "ports_patroni3": ("10.0.3.116", "ports-pg-3", []),
}
ALL_NODES = {**ETCD_NODES, **{n: a for n, (a, _, _) in PATRONI_NODES.items()}}

INVENTORY = f'''"""Scratch inventory of tests/integration/test_non_default_ports.py."""
from pgha.lab import topology, values
from pgha.settings.loader import check_inventory

_groups = topology.groups({ETCD_NODES!r}, {PATRONI_NODES!r})
all, lxc_hosts, etcd, patroni = (_groups[g] for g in ("all", "lxc_hosts", "etcd", "patroni"))
values.prepare_local_files(check_inventory(__file__))
'''

# The verification tests run against this inventory: what they check does not depend on the
# lab's own topology (the deploy-changing tests of those files stay with the real lab).
VERIFICATION = [
    "tests/integration/test_etcd.py",
    "tests/integration/test_patroni.py",
    "tests/integration/test_haproxy.py",
]
VERIFICATION_FILTER = (
    "healthy_seen_from or member_list_matches or ports_listen or key_written or "
    "streaming_replicas or rest_cluster_agrees or health_endpoints or row_written or "
    "show_config or rw_port or ro_port or no_replica_accepts or stats_page or "
    "local_proxy or multi_host_dsn or config_is_valid"
)


def _destroy(inventory) -> None:
    helpers.python_module("-m", "pgha.lab.teardown", str(inventory))
    for name in ALL_NODES:  # never anything but this test's containers
        if name in helpers.lxc_containers():
            subprocess.run(["lxc-stop", "-k", "-n", name], capture_output=True)
            subprocess.run(["lxc-destroy", "-n", name], capture_output=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ports")
    used = {a for c in helpers.lxc_containers().values() for a in c["ipv4"]}
    clash = sorted(used & set(ALL_NODES.values()))
    if clash and not any(name in helpers.lxc_containers() for name in ALL_NODES):
        pytest.fail(f"scratch addresses already in use by other containers: {clash}")
    text = helpers.GROUP_DATA.read_text(encoding="utf-8")
    for setting, port in PORTS.items():
        text, count = re.subn(rf"^{setting} = \d+", f"{setting} = {port}", text, flags=re.M)
        assert count == 1, f"group_data/all.py no longer sets {setting}"
    (directory / "group_data").mkdir()
    (directory / "group_data" / "all.py").write_text(text, encoding="utf-8")
    inventory = directory / "inventory.py"
    inventory.write_text(INVENTORY, encoding="utf-8")
    outputs = {}
    try:
        for step, deploy, extra in (
            ("lab", "deploys/lxc_hosts.py", ["--limit", "lxc_hosts"]),
            ("first", "deploys/all.py", []),
            ("second", "deploys/all.py", []),
        ):
            rc, output = helpers.run_pyinfra(inventory, deploy, *extra, timeout=900)
            (directory / f"{step}.log").write_text(output, encoding="utf-8")
            outputs[step] = (rc, output)
            if rc != 0:
                break
        yield inventory, outputs
    finally:
        _destroy(inventory)


def test_the_scratch_cluster_uses_the_other_ports(scratch):
    inventory, _ = scratch
    cluster = helpers.load_cluster(inventory)
    assert {k: cluster.settings[k] for k in PORTS} == PORTS


def test_first_deploy_succeeds_with_its_checks(scratch):
    _, outputs = scratch
    rc, output = outputs["first"]
    assert rc == 0, helpers.tail(output)
    assert "etcd: 3 healthy members" in output, helpers.tail(output)
    assert "--> Cluster status" in output, helpers.tail(output)


def test_second_deploy_changes_nothing(scratch):
    _, outputs = scratch
    assert "second" in outputs, "the first deploy failed"
    rc, output = outputs["second"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)


def test_verification_passes_against_the_scratch_cluster(scratch):
    inventory, outputs = scratch
    assert outputs.get("second", (1,))[0] == 0, "the deploys failed"
    proc = subprocess.run(
        [str(helpers.VENV_BIN / "pytest"), *VERIFICATION, "-q", "-p", "no:cacheprovider",
         "-k", VERIFICATION_FILTER],
        cwd=helpers.PROJECT_ROOT,
        env=dict(os.environ, PGHA_INVENTORY=str(inventory)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, helpers.tail(output, 80)
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 30, helpers.tail(output)
