"""The seed's etcd scale-out, 2 -> 3 members, on scratch containers (the real cluster is
never touched): build a 2-member lab, deploy etcd, write a key; grow the lab and the
inventory to 3 members, deploy again; the newcomer joins with initial-cluster-state
`existing`, the others keep `new`, the key is still there; a further run changes nothing.

The scratch inventory has its own Patroni group (2 containers that never get Patroni):
deploys/lxc_hosts.py writes /etc/hosts into every container of the inventory and restarts
those whose files changed, so listing the real Patroni nodes would rewrite and restart them.

It also keeps its own lab state (known_hosts, host keys) next to it: lab.prepare_local_files()
rewrites .lab/known_hosts from whatever inventory is loaded, so a scratch inventory that
used the default paths would replace the real lab's known_hosts while the other engineer
deploys with it. The test checks that .lab/known_hosts ends up unchanged and restores it
(by loading inventory.py) if it did not.

The steps are tests run in order; once a step fails, the later steps are skipped, and the
scratch containers are always destroyed at the end.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import helpers
import pytest
from conftest import CLUSTER, LAB_NAMES

from pghalab.values import container_host_data

pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc, pytest.mark.slow]

ETCD_NODES = {
    "scratch_etcd1": "10.0.3.91",
    "scratch_etcd2": "10.0.3.92",
    "scratch_etcd3": "10.0.3.93",
}
PATRONI_NODES = {  # only built as containers, to satisfy the inventory check
    "scratch_patroni1": ("10.0.3.94", "scratch-pg-1", ["sp1"]),
    "scratch_patroni2": ("10.0.3.95", "scratch-pg-2", ["sp2"]),
}
ALL_NODES = {**ETCD_NODES, **{n: a for n, (a, _, _) in PATRONI_NODES.items()}}
CONFIG_FILE = "/etc/etcd/etcd.conf.yml"
HOST_KEYS = helpers.PROJECT_ROOT / ".lab" / "host_keys"  # the real lab's (pghalab.values.HOST_KEYS)
CLIENT_PORT = CLUSTER.settings["etcd_client_port"]
PEER_PORT = CLUSTER.settings["etcd_peer_port"]

INVENTORY_TEMPLATE = '''"""Scratch inventory written by tests/integration/test_etcd_scale_out.py."""
from pathlib import Path

from pghalab import topology
from pghalab import values as lab
from pgha.settings.loader import check_inventory

# This inventory's own lab state, next to it: .lab/known_hosts and .lab/host_keys belong
# to the real lab (prepare_local_files() would replace the real known_hosts otherwise).
_HERE = Path(__file__).resolve().parent
lab.KNOWN_HOSTS = _HERE / "known_hosts"
lab.HOST_KEYS = _HERE / "host_keys"

_groups = topology.groups({etcd!r}, {patroni!r})
all, lxc_hosts, etcd, patroni = (_groups[g] for g in ("all", "lxc_hosts", "etcd", "patroni"))
lab.prepare_local_files(check_inventory(__file__))
'''


def _real_lab_problems() -> list[str]:
    """What a scratch run could break in the real lab (and nothing the other engineer's
    deploys may legitimately change meanwhile): the real nodes' known_hosts entries, no
    scratch entry or host key in .lab/, no scratch name in a real container's /etc/hosts."""
    problems = []
    known = helpers.LAB_KNOWN_HOSTS.read_text() if helpers.LAB_KNOWN_HOSTS.exists() else ""
    entries = {tuple(line.split()[:3]) for line in known.splitlines() if line.strip()}
    for node in CLUSTER.nodes:
        public = (HOST_KEYS / node.name / "ssh_host_ed25519_key.pub").read_text().split()
        if (node.address, public[0], public[1]) not in entries:
            problems.append(f".lab/known_hosts lost the entry of {node.name} ({node.address})")
    for name, address in ALL_NODES.items():
        if any(entry[0] == address for entry in entries):
            problems.append(f".lab/known_hosts has an entry for scratch {address}")
        if (HOST_KEYS / name).exists():
            problems.append(f".lab/host_keys/{name} was created")
    for name in LAB_NAMES:
        hosts = (Path("/var/lib/lxc") / name / "rootfs/etc/hosts").read_text()
        if any(re.search(rf"\b{scratch}\b", hosts) for scratch in ALL_NODES):
            problems.append(f"{name}'s /etc/hosts lists scratch nodes")
        missing = [n.address for n in CLUSTER.nodes if n.address not in hosts.split()]
        if missing:
            problems.append(f"{name}'s /etc/hosts lost {missing}")
    return problems


def _restore_lab_known_hosts() -> None:
    """Put the real lab's known_hosts right again: drop scratch entries, then let
    inventory.py's own prepare_local_files() rewrite the real nodes' entries."""
    if helpers.LAB_KNOWN_HOSTS.exists():
        lines = helpers.LAB_KNOWN_HOSTS.read_text().splitlines()
        kept = [line for line in lines if not line.split() or line.split()[0] not in ALL_NODES.values()]
        if kept != lines:
            helpers.LAB_KNOWN_HOSTS.write_text("".join(f"{line}\n" for line in kept))
    helpers.load_cluster(helpers.INVENTORY)


class Scratch:
    def __init__(self, directory: Path):
        self.dir = directory
        self.inv2 = directory / "inv2.py"
        self.inv3 = directory / "inv3.py"
        self.known_hosts = directory / "known_hosts"
        self.failed: str | None = None
        self.key = f"{helpers.TEST_KEY_PREFIX}scale-out-{uuid.uuid4().hex[:12]}"
        self.value = uuid.uuid4().hex
        self.outputs: dict[str, str] = {}
        self.real_problems_before = _real_lab_problems()
        group_data = directory / "group_data"
        group_data.mkdir()
        text, count = re.subn(
            r"^etcd_allow_even_members = False\b",
            "etcd_allow_even_members = True",
            helpers.GROUP_DATA.read_text(encoding="utf-8"),
            flags=re.M,
        )
        assert count == 1, "group_data/all.py no longer sets etcd_allow_even_members = False"
        (group_data / "all.py").write_text(text, encoding="utf-8")
        for path, names in ((self.inv2, list(ETCD_NODES)[:2]), (self.inv3, list(ETCD_NODES))):
            path.write_text(
                INVENTORY_TEMPLATE.format(
                    etcd={n: ETCD_NODES[n] for n in names}, patroni=PATRONI_NODES
                ),
                encoding="utf-8",
            )
        self.ssh_config = directory / "ssh_config"
        helpers.write_ssh_config(self.ssh_config, {
            name: {**container_host_data(name, address), "ssh_known_hosts_file": str(self.known_hosts)}
            for name, address in ALL_NODES.items()
        })
        self.hosts = helpers.testinfra_hosts(self.ssh_config, ETCD_NODES)

    def record(self, name: str, output: str) -> None:
        """Keep a pyinfra run's output (also in the scratch directory, for post-mortems)."""
        self.outputs[name] = output
        (self.dir / f"{name}.log").write_text(output, encoding="utf-8")

    def step(self, name: str):
        return _Step(self, name)

    def teardown(self) -> subprocess.CompletedProcess:
        return helpers.python_module("-m", "pghalab.teardown", str(self.inv3))


class _Step:
    def __init__(self, scratch: Scratch, name: str):
        self.scratch, self.name = scratch, name

    def __enter__(self):
        if self.scratch.failed:
            pytest.skip(f"an earlier step failed: {self.scratch.failed}")

    def __exit__(self, kind, value, traceback):
        if kind is not None and not issubclass(kind, pytest.skip.Exception):
            self.scratch.failed = self.name
        return False


def _scratch_containers() -> list[str]:
    return [n for n in helpers.lxc_containers() if n in ALL_NODES]


def _force_destroy(names) -> None:
    for name in names:
        if name not in ALL_NODES:  # never anything but this test's containers
            continue
        subprocess.run(["lxc-stop", "-k", "-n", name], capture_output=True)
        subprocess.run(["lxc-destroy", "-n", name], capture_output=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    used = {a for c in helpers.lxc_containers().values() for a in c["ipv4"]}
    clash = sorted(used & set(ALL_NODES.values()))
    leftovers = _scratch_containers()
    if clash and not leftovers:
        pytest.fail(f"scratch addresses already in use by other containers: {clash}")
    s = Scratch(tmp_path_factory.mktemp("scratch"))
    if leftovers:  # from an interrupted earlier run
        s.teardown()
        _force_destroy(_scratch_containers())
    yield s
    if _scratch_containers():
        s.teardown()
        _force_destroy(_scratch_containers())
    if any("known_hosts" in p for p in _real_lab_problems()):
        _restore_lab_known_hosts()


def _members(host):
    return helpers.member_list(host)


def _expected(names):
    return sorted(
        (
            {
                "name": n,
                "peerURLs": [f"https://{ETCD_NODES[n]}:{PEER_PORT}"],
                "clientURLs": [f"https://{ETCD_NODES[n]}:{CLIENT_PORT}"],
            }
            for n in names
        ),
        key=lambda m: m["name"],
    )


def _config_value(host, key: str) -> str:
    result = host.run(f"grep -E '^{key}:' {CONFIG_FILE}")
    assert result.rc == 0, f"{key} missing from {CONFIG_FILE}: {result.stderr}"
    return result.stdout.partition(":")[2].strip().strip("'\"")


def _assert_running(names):
    containers = helpers.lxc_containers()
    for name in names:
        assert name in containers, f"{name} was not built: {sorted(containers)}"
        assert containers[name]["state"] == "RUNNING", containers[name]
        assert containers[name]["ipv4"] == [ALL_NODES[name]], containers[name]


# --- the steps, in order --------------------------------------------------------------------


def test_build_two_member_scratch_lab(scratch):
    with scratch.step("build the 2-member scratch lab"):
        rc, output = helpers.run_pyinfra(
            scratch.inv2, "deploys/lxc_hosts.py", "--limit", "lxc_hosts", timeout=900
        )
        scratch.record("lab2", output)
        assert rc == 0, helpers.tail(output)
        _assert_running(["scratch_etcd1", "scratch_etcd2", "scratch_patroni1", "scratch_patroni2"])
        assert "scratch_etcd3" not in helpers.lxc_containers()
        assert _real_lab_problems() == scratch.real_problems_before


def test_deploy_two_member_etcd(scratch):
    with scratch.step("deploy etcd with 2 members"):
        rc, output = helpers.run_pyinfra(scratch.inv2, "deploys/etcd.py", "--limit", "etcd")
        scratch.record("etcd2", output)
        assert rc == 0, helpers.tail(output)
        first = scratch.hosts["scratch_etcd1"]
        names = ["scratch_etcd1", "scratch_etcd2"]
        for name in names:
            assert _members(scratch.hosts[name]) == _expected(names), name
        assert helpers.cluster_health(first) == {
            f"https://{ETCD_NODES[n]}:{CLIENT_PORT}": True for n in names
        }
        put = helpers.etcdctl(first, "put", scratch.key, scratch.value)
        assert (put.rc, put.stdout.strip()) == (0, "OK"), put.stderr


def test_grow_scratch_lab_to_three_etcd_nodes(scratch):
    with scratch.step("grow the scratch lab"):
        rc, output = helpers.run_pyinfra(
            scratch.inv3, "deploys/lxc_hosts.py", "--limit", "lxc_hosts", timeout=900
        )
        scratch.record("lab3", output)
        assert rc == 0, helpers.tail(output)
        _assert_running(list(ALL_NODES))
        assert _real_lab_problems() == scratch.real_problems_before
        # the 2-member cluster came through whatever the lab deploy did to its containers
        first = scratch.hosts["scratch_etcd1"]
        assert helpers.wait_until(lambda: helpers.get_key(first, scratch.key) == scratch.value, 60)


def test_growing_the_lab_does_not_restart_existing_containers(scratch):
    """Adding a node rewrites every container's /etc/hosts; that alone should not restart
    (stop every service of) the containers already running."""
    output = scratch.outputs.get("lab3")
    if output is None:
        pytest.skip("the lab was not grown")
    restarts = [row for row in helpers.changed_operation_rows(output) if "Restart " in row]
    assert not restarts, "\n".join(restarts)


def test_scale_out_to_three_members(scratch):
    with scratch.step("deploy etcd with 3 members"):
        rc, output = helpers.run_pyinfra(scratch.inv3, "deploys/etcd.py", "--limit", "etcd")
        scratch.record("etcd3", output)
        assert rc == 0, helpers.tail(output)
        names = list(ETCD_NODES)
        for name in names:
            host = scratch.hosts[name]
            assert _members(host) == _expected(names), name
            assert helpers.cluster_health(host) == {
                f"https://{ETCD_NODES[n]}:{CLIENT_PORT}": True for n in names
            }, name
        newcomer = scratch.hosts["scratch_etcd3"]
        assert helpers.get_key(newcomer, scratch.key) == scratch.value
        assert helpers.wait_until(
            lambda: helpers.get_key(newcomer, scratch.key, serializable=True) == scratch.value, 20
        ), "scratch_etcd3's own store does not have the key written before it joined"


def test_newcomer_joined_existing_cluster_others_kept_new(scratch):
    with scratch.step("initial-* settings after the scale-out"):
        peers = {n: f"{n}=https://{a}:{PEER_PORT}" for n, a in ETCD_NODES.items()}
        hosts = scratch.hosts
        assert _config_value(hosts["scratch_etcd3"], "initial-cluster-state") == "existing"
        assert _config_value(hosts["scratch_etcd3"], "initial-cluster") == ",".join(peers.values())
        for name in ("scratch_etcd1", "scratch_etcd2"):
            assert _config_value(hosts[name], "initial-cluster-state") == "new", name
            assert _config_value(hosts[name], "initial-cluster") == ",".join(
                [peers["scratch_etcd1"], peers["scratch_etcd2"]]
            ), name


def test_further_runs_change_nothing(scratch):
    with scratch.step("further runs"):
        rc, output = helpers.run_pyinfra(scratch.inv3, "deploys/etcd.py", "--limit", "etcd")
        assert rc == 0, helpers.tail(output)
        assert helpers.grand_total(output)["hosts"] >= 3 * len(ETCD_NODES)
        assert helpers.changed_operations(output) == 0, "\n".join(
            helpers.changed_operation_rows(output)
        )
        rc, output = helpers.run_pyinfra(
            scratch.inv3, "deploys/lxc_hosts.py", "--limit", "lxc_hosts", timeout=900
        )
        assert rc == 0, helpers.tail(output)
        assert helpers.changed_operations(output) == 0, "\n".join(
            helpers.changed_operation_rows(output)
        )


def test_member_removed_when_the_setting_allows_it(scratch):
    with scratch.step("remove a member, allowed by etcd_allow_member_removal"):
        directory = scratch.dir / "removal"
        (directory / "group_data").mkdir(parents=True)
        text, count = re.subn(
            r"^etcd_allow_member_removal = False\b",
            "etcd_allow_member_removal = True",
            (scratch.dir / "group_data" / "all.py").read_text(encoding="utf-8"),
            flags=re.M,
        )
        assert count == 1, "group_data/all.py no longer sets etcd_allow_member_removal = False"
        (directory / "group_data" / "all.py").write_text(text, encoding="utf-8")
        # same lab state (known_hosts, host keys) as the other scratch inventories
        inventory = scratch.inv2.read_text(encoding="utf-8").replace(
            "_HERE = Path(__file__).resolve().parent\n", "_HERE = Path(__file__).resolve().parent.parent\n"
        )
        assert "parent.parent" in inventory
        (directory / "inv2.py").write_text(inventory, encoding="utf-8")

        rc, output = helpers.run_pyinfra(directory / "inv2.py", "deploys/etcd.py", "--limit", "etcd")
        scratch.record("etcd-remove", output)
        assert rc == 0, helpers.tail(output)
        names = list(ETCD_NODES)[:2]
        for name in names:
            assert _members(scratch.hosts[name]) == _expected(names), name
        assert helpers.get_key(scratch.hosts["scratch_etcd1"], scratch.key) == scratch.value
        rc, output = helpers.run_pyinfra(directory / "inv2.py", "deploys/etcd.py", "--limit", "etcd")
        assert rc == 0, helpers.tail(output)
        assert helpers.changed_operations(output) == 0, "\n".join(helpers.changed_operation_rows(output))


# --- always: clean up, and the real lab is as it was --------------------------------------


def test_teardown_destroys_the_scratch_containers(scratch):
    result = scratch.teardown()
    assert result.returncode == 0, result.stdout + result.stderr
    assert _scratch_containers() == []


def test_real_lab_untouched(scratch, etcd_hosts):
    assert scratch.real_problems_before == [], scratch.real_problems_before
    assert _real_lab_problems() == []
    first = next(iter(etcd_hosts.values()))
    assert helpers.member_list(first) == helpers.expected_members(CLUSTER)
    assert helpers.cluster_health(first) == {u: True for u in helpers.client_urls(CLUSTER).values()}
