"""Deploying onto your own machines, as the README's "Deploy onto your own machines" says:
seven plain Debian machines (three etcd, three Patroni, the backup repository) made outside
the lab deploy (copies of the base system with their own SSH host keys, no curl, no lab
/etc/hosts, reached with a key that is not the lab's), the example inventory copied and
edited the way a user would (addresses, SSH key, known_hosts filled by the first-contact
step, client networks), and the cluster's ports moved off their defaults (etcd client, REST
API, PostgreSQL, pgBackRest: every port and endpoint must come from the settings). Then the
deploy with its own checks, a second run that changes nothing, `pgha status`, and the
verification tests (etcd, Patroni, HAProxy, pgBackRest) pointed at that inventory through
PGHA_INVENTORY.

The machines are destroyed at the end, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest import CLUSTER

import helpers
from pgha.lab import values as lab
from pgha.lab.deploy import answers_ssh

pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc, pytest.mark.slow]

PORTS = {"etcd_client_port": 2479, "patroni_restapi_port": 8018, "postgresql_port": 5544,
         "pgbackrest_tls_port": 8532}
# the example's addresses -> these machines'
MACHINES = {
    "192.0.2.11": ("own_etcd1", "10.0.3.111"),
    "192.0.2.12": ("own_etcd2", "10.0.3.112"),
    "192.0.2.13": ("own_etcd3", "10.0.3.113"),
    "192.0.2.21": ("own_pg1", "10.0.3.114"),
    "192.0.2.22": ("own_pg2", "10.0.3.115"),
    "192.0.2.23": ("own_pg3", "10.0.3.116"),
    "192.0.2.31": ("own_backup", "10.0.3.117"),
}
EXAMPLE = helpers.PROJECT_ROOT / "inventories" / "example"

VERIFICATION = [
    "tests/integration/test_etcd.py",
    "tests/integration/test_patroni.py",
    "tests/integration/test_haproxy.py",
    "tests/integration/test_backup.py",
]
VERIFICATION_FILTER = (
    "healthy_seen_from or member_list_matches or ports_listen or key_written or "
    "streaming_replicas or rest_cluster_agrees or health_endpoints or row_written or "
    "show_config or rw_port or ro_port or no_replica_accepts or stats_page or "
    "local_proxy or multi_host_dsn or config_is_valid or tls_servers_run or only_the_other_side or "
    "encrypted_with_the_secret or lists_them"
)


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def _attach(name: str, command: str) -> subprocess.CompletedProcess:
    return _run("lxc-attach", "-n", name, "--", "sh", "-c", command, timeout=300)


def _destroy() -> None:
    for name, _ in MACHINES.values():  # never anything but this test's machines
        if name in helpers.lxc_containers():
            _run("lxc-stop", "-k", "-n", name)
            _run("lxc-destroy", "-n", name)


def _make_machine(name: str, address: str, public_key: str) -> None:
    """A plain machine: the base system copied, its own address and SSH host keys, the
    user's key authorised, curl removed (a minimal install has none)."""
    settings = CLUSTER.settings
    assert _run("lxc-copy", "-n", lab.base_container(settings), "-N", name).returncode == 0
    config = lab.LXC_PATH / name / "config"
    lines = [f"{k} = {v}" for k, v in lab.lxc_config_lines(settings, type("N", (), {"address": address})).items()]
    config.write_text(config.read_text() + "\n".join(lines) + "\n")
    root = lab.rootfs(name)
    (root / "etc/network/interfaces").write_text(lab.interfaces())
    (root / "etc/hostname").write_text(f"{lab.hostname(name)}\n")
    (root / "etc/resolv.conf").write_text(f"nameserver {settings['lab_gateway']}\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    assert _run("ssh-keygen", "-A", "-f", str(root)).returncode == 0  # its own host keys
    assert _run("lxc-start", "-n", name).returncode == 0
    assert helpers.wait_until(lambda: _attach(name, "true").returncode == 0, 60)
    prepared = _attach(name, "apt-get purge -y -q curl >/dev/null")
    assert prepared.returncode == 0, prepared.stderr


def _inventory(directory, key) -> "os.PathLike":
    """The example inventory, edited as a user edits it."""
    shutil.copytree(EXAMPLE, directory, dirs_exist_ok=True)
    inventory = directory / "inventory.py"
    text = inventory.read_text()
    for example, (name, address) in MACHINES.items():
        text = text.replace(f'"{example}"', f'"{address}"')
    text = text.replace('"ssh_key": "~/.ssh/id_ed25519"', f'"ssh_key": "{key}"')
    assert "192.0.2." not in text and str(key) in text, "the example inventory's layout changed"
    inventory.write_text(text)
    group_data = directory / "group_data" / "all.py"
    text = group_data.read_text()
    text, count = re.subn(r"^client_networks = .*$", f'client_networks = ["{CLUSTER.settings["lab_gateway"]}/32"]', text, flags=re.M)
    assert count == 1, "the example group_data no longer sets client_networks"
    text += "".join(f"{setting} = {port}\n" for setting, port in PORTS.items())
    group_data.write_text(text)
    return inventory


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    directory = tmp_path_factory.mktemp("own")
    used = {a for c in helpers.lxc_containers().values() for a in c["ipv4"]}
    clash = sorted(used & {a for _, a in MACHINES.values()})
    if clash and not any(name in helpers.lxc_containers() for name, _ in MACHINES.values()):
        pytest.fail(f"the test machines' addresses are already in use: {clash}")
    _destroy()  # leftovers of an interrupted run
    key = directory / "id_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "own-machines-test", "-f", str(key))
    outputs = {}
    try:
        for name, address in MACHINES.values():
            _make_machine(name, address, (directory / "id_ed25519.pub").read_text())
        inventory = _inventory(directory / "inventory", key)
        addresses = [a for _, a in MACHINES.values()]
        assert helpers.wait_until(lambda: all(answers_ssh(a) for a in addresses), 120), "no SSH"
        # the README's first-contact step (here the host keys were just made by us)
        scan = _run("ssh-keyscan", "-t", "ed25519", *addresses)
        assert sorted(line.split()[0] for line in scan.stdout.splitlines()) == sorted(addresses), scan
        (inventory.parent / "known_hosts").write_text(scan.stdout)
        for step in ("first", "second"):
            rc, output = helpers.run_pyinfra(inventory, "deploys/all.py", timeout=900)
            (directory / f"{step}.log").write_text(output, encoding="utf-8")
            outputs[step] = (rc, output)
            if rc != 0:
                break
        yield inventory, outputs
    finally:
        _destroy()


def test_the_inventory_is_the_example_on_other_ports_without_a_lab(own):
    inventory, outputs = own
    assert "first" in outputs
    cluster = helpers.load_cluster(inventory)
    assert {k: cluster.settings[k] for k in PORTS} == PORTS
    assert not any(n.lxc_container for n in cluster.nodes), "the example inventory is not a lab"
    hosts_file = (lab.rootfs("own_pg1") / "etc/hosts").read_text()
    assert not any(n.name in hosts_file for n in CLUSTER.nodes), "a lab name reached a machine"
    no_curl = _attach("own_etcd1", "command -v curl")
    assert no_curl.returncode != 0, "the etcd machines were to stay without curl"


def test_first_deploy_succeeds_with_its_checks(own):
    _, outputs = own
    rc, output = outputs["first"]
    assert rc == 0, helpers.tail(output)
    assert helpers.grand_total(output)["error"] == 0, helpers.tail(output)
    assert "etcd: every member healthy, all agree on the member list" in output
    summary = output.split("--> Cluster status")[-1]
    # the connection string names the machines by address and the configured admin user
    assert "host=10.0.3.114,10.0.3.115,10.0.3.116" in summary, helpers.tail(output)
    assert f"user {CLUSTER.settings['patroni_admin_user']}" in summary


def test_second_deploy_changes_nothing(own):
    _, outputs = own
    assert "second" in outputs, "the first deploy failed"
    rc, output = outputs["second"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)


def test_pgha_status_uses_the_inventory(own):
    inventory, _ = own
    proc = _run(str(helpers.VENV_BIN / "pgha"), "status", "--inventory", str(inventory))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    names = sorted(line.split()[0] for line in lines if not line.startswith("archiving:"))
    assert names == ["pg-a", "pg-b", "pg-c"], proc.stdout
    assert any(line.startswith("archiving: ok") for line in lines), proc.stdout


def test_verification_passes_against_the_machines(own):
    inventory, outputs = own
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
