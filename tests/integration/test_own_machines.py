"""Deploying onto your own machines, as the README's "Deploy onto your own machines" says:
eight plain Debian machines (three etcd, three Patroni, the backup repository, the monitoring
host) made outside
the lab deploy (copies of the base system with their own SSH host keys, neither curl nor
python3, no lab /etc/hosts, reached with a key that is not the lab's), the example inventory
copied and edited the way a user would (addresses, SSH key, known_hosts filled by the
first-contact step, client networks), and the cluster's ports moved off their defaults (etcd
client, REST API, PostgreSQL, pgBackRest: every port and endpoint must come from the
settings). Then the deploy with its own checks, a second run that changes nothing, the
connection strings it printed last used as printed, `pgha status` from another directory,
the whole read-only verification (`pgha verify`) with every skip explained and proven to
have changed nothing, the destructive drills refused, and a stopped member shown as
unreachable.

The machines are destroyed at the end, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import helpers
import psycopg2
import pytest
from conftest import CLUSTER

from pgha import secrets
from pgha.patroni import rest
from pgha.pki import authority
from pghalab import values as lab
from pghalab.deploy import answers_ssh

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
    "192.0.2.41": ("own_monitor", "10.0.3.118"),
}
EXAMPLE = helpers.PROJECT_ROOT / "inventories" / "example"



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
    # a minimal install: no curl, no python3 (the deploy installs them where it needs them)
    prepared = _attach(name, "apt-get purge -y -q --auto-remove curl python3 >/dev/null 2>&1; "
                             "! command -v curl && ! command -v python3")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr


def _inventory(directory, key) -> os.PathLike:
    """The example inventory, edited as a user edits it."""
    shutil.copytree(EXAMPLE, directory, dirs_exist_ok=True)
    inventory = directory / "inventory.py"
    text = inventory.read_text()
    for example, (_, address) in MACHINES.items():
        text = text.replace(f'"{example}"', f'"{address}"')
    text = text.replace('"ssh_key": "~/.ssh/id_ed25519"', f'"ssh_key": "{key}"')
    assert "192.0.2." not in text and str(key) in text, "the example inventory's layout changed"
    inventory.write_text(text)
    group_data = directory / "group_data" / "all.py"
    text = group_data.read_text()
    mine = f'client_networks = ["{CLUSTER.settings["lab_gateway"]}/32"]'
    text, count = re.subn(r"^client_networks = .*$", mine, text, flags=re.M)
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
    # their own secrets and CA, made on first use like a new user's (not the lab's, which
    # its tests rotate)
    env = pytest.MonkeyPatch()
    env.setenv(secrets.ENV_VAR, str(directory / "secrets.json"))
    env.setenv(authority.ENV_VAR, str(directory / "pki"))
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
        env.undo()


def test_the_inventory_is_the_example_on_other_ports_without_a_lab(own):
    inventory, outputs = own
    assert "first" in outputs
    cluster = helpers.load_cluster(inventory)
    assert {k: cluster.settings[k] for k in PORTS} == PORTS
    assert not any(lab.container(n) for n in cluster.nodes), "the example inventory is not a lab"
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
    assert "lab" not in " ".join(helpers.operation_names(output)).lower(), "a lab operation in an own-machines deploy"


def _said_last(output: str) -> dict[str, str]:
    """The connection strings the deploy says last: {"read-write": ..., "read-only": ...,
    "pooled read-write": ..., "pooled read-only": ...}."""
    tail = output.split("--> Connect")[-1]
    assert tail != output, "no '--> Connect' at the end of the deploy:\n" + helpers.tail(output)
    assert "--> Results" not in tail and "Grand total" not in tail, "the connection strings are not the last words"
    found = {}
    for line in tail.strip().splitlines():
        kind, _, rest = line.partition(": ")
        if kind in ("read-write", "read-only", "pooled read-write", "pooled read-only"):
            found[kind] = rest.strip()
    return found


def test_second_deploy_changes_nothing_and_ends_with_the_cluster_and_how_to_connect(own):
    _, outputs = own
    assert "second" in outputs, "the first deploy failed"
    rc, output = outputs["second"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
    rows = rest.parse_summary(output.split("--> Cluster status")[-1])
    assert sorted(r["member"] for r in rows) == ["pg-a", "pg-b", "pg-c"], helpers.tail(output)
    strings = _said_last(output)
    assert strings["read-write"].startswith("host=10.0.3.114,10.0.3.115,10.0.3.116 port=5432 dbname=postgres "
                                            f"user={CLUSTER.settings['patroni_admin_user']} ")
    assert "sslmode=verify-full" in strings["read-only"] and "sslrootcert=" in strings["read-only"]


def test_the_printed_strings_connect_as_printed(own, monkeypatch):
    """psycopg2 (libpq) given exactly the string, the password in PGPASSWORD, from where the
    deploy ran (sslrootcert is the CA's path as seen from there)."""
    inventory, outputs = own
    strings = _said_last(outputs["second"][1])
    monkeypatch.chdir(helpers.PROJECT_ROOT)
    monkeypatch.setenv("PGPASSWORD", helpers.load_cluster(inventory).secrets["admin_password"])
    roles = {}
    for kind, dsn in strings.items():
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("select pg_is_in_recovery(), current_user, current_setting('ssl')")
            roles[kind] = cur.fetchone()
        conn.close()
    admin = CLUSTER.settings["patroni_admin_user"]
    assert roles == {"read-write": (False, admin, "on"), "read-only": (True, admin, "on"),
                     "pooled read-write": (False, admin, "on"), "pooled read-only": (True, admin, "on")}, roles


def test_pgha_status_from_another_directory(own, tmp_path):
    inventory, outputs = own
    proc = helpers.pgha("status", inventory=inventory, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rest.parse_summary(proc.stdout)
    assert sorted(r["member"] for r in rows) == ["pg-a", "pg-b", "pg-c"], proc.stdout
    assert sorted(r["role"] for r in rows) == ["leader", "replica", "replica"], proc.stdout
    assert any(line.startswith("archiving: ok") for line in proc.stdout.splitlines()), proc.stdout
    from_root = helpers.pgha("status", "--dsn", inventory=inventory)
    assert _said_last("--> Connect\n" + from_root.stdout) == _said_last(outputs["second"][1])


@pytest.fixture(scope="module")
def own_hosts(own, tmp_path_factory):
    cluster = helpers.load_cluster(own[0])
    config = helpers.write_ssh_config(tmp_path_factory.mktemp("own-ssh") / "config", {n.name: n.ssh for n in cluster.nodes})
    return cluster, helpers.testinfra_hosts(config, [n.name for n in cluster.nodes])


def test_the_read_only_verification_passes_explains_its_skips_and_changes_nothing(own, own_hosts):
    inventory, outputs = own
    assert outputs.get("second", (1,))[0] == 0, "the deploys failed"
    cluster, hosts = own_hosts
    before = helpers.cluster_fingerprint(cluster, hosts)
    proc = helpers.pgha("verify", "-q", "-p", "no:cacheprovider", inventory=inventory, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, helpers.tail(output, 80)
    summary = re.search(r"(\d+) passed(?:, (\d+) skipped)?", output)
    assert summary and int(summary.group(1)) >= 150, helpers.tail(output)
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert not any("empty parameter set" in line for line in skips), skips
    assert len(skips) >= 1 and all(re.match(r"SKIPPED \[\d+\] \S+?(:\d+)?: \S", line) for line in skips), skips
    after = helpers.cluster_fingerprint(cluster, hosts)
    assert after == before, {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


def test_the_destructive_drills_refuse_without_their_opt_in(own):
    inventory, _ = own
    make = ["make", "-s", "-C", str(helpers.PROJECT_ROOT), "drills", f"INVENTORY={inventory}"]
    refused = _run(*make, timeout=300)
    assert refused.returncode != 0 and "CONFIRM=yes" in refused.stderr, refused
    not_a_test_cluster = _run(*make, "CONFIRM=yes", "VERIFY_ARGS=-k second_etcd_deploy", timeout=300)
    output = not_a_test_cluster.stdout + not_a_test_cluster.stderr
    assert not_a_test_cluster.returncode != 0 and "is not marked as a test cluster" in output, output


def test_a_stopped_member_is_shown_unreachable(own):
    inventory, _ = own
    _run("lxc-stop", "-k", "-n", "own_pg3")
    proc = helpers.pgha("status", inventory=inventory, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {r["member"]: r for r in rest.parse_summary(proc.stdout)}
    assert rows["pg-c"]["state"] == "unreachable", proc.stdout
    assert "pg-c: its REST API does not answer" in proc.stdout
