"""Bad input, the way a user writes it: an inventory and its group_data files in a folder of
their own, read by pgha.settings.loader exactly as pyinfra will read them (every group_data
file, wherever the inventory lives). One row per mistake: the files, and a fragment the
one-paragraph message must contain. No host is contacted: the check runs before any
connection, and the last tests prove it with pyinfra itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pgha.errors import ConfigError
from pgha.settings import loader

from .conftest import REPO_ROOT

INVENTORY = '''
from pgha.hosts import host
from pgha.settings.loader import check_inventory

etcd = [host("e1", "192.0.2.11"), host("e2", "192.0.2.12"), host("e3", "192.0.2.13")]
patroni = [
    host("p1", "192.0.2.21", patroni_name="pg-a"{p1}),
    host("p2", "192.0.2.22", patroni_name="pg-b"),
    host("p3", "192.0.2.23", patroni_name="pg-c"),
]
{extra}
check_inventory(__file__)
'''
CLIENTS = 'client_networks = ["192.0.2.0/26"]\netcd_client_networks = []\n'


def write(directory, p1: str = "", extra: str = "", all_py: str = CLIENTS, files: dict | None = None):
    """An inventory in ``directory``/inventories/prod.py with its own group_data."""
    folder = directory / "inventories"
    (folder / "group_data").mkdir(parents=True, exist_ok=True)
    inventory = folder / "prod.py"
    inventory.write_text(INVENTORY.format(p1=p1, extra=extra))
    (folder / "group_data" / "all.py").write_text(all_py)
    for name, text in (files or {}).items():
        (folder / "group_data" / name).write_text(textwrap.dedent(text))
    return inventory


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository root, as the README says (its group_data/ is read too)."""
    monkeypatch.chdir(REPO_ROOT)


def problems(inventory, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        loader.load_cluster(inventory, overrides)
    return str(info.value)


BAD = [
    # host data
    ("alias-a-string", {"p1": ', aliases="p1x"'}, "aliases = 'p1x': expected a list of host names"),
    ("alias-not-a-host-name", {"p1": ', aliases=["p 1"]'}, "expected a list of host names"),
    ("patroni-name-with-space", {"extra": 'patroni[0] = host("p1", "192.0.2.21", patroni_name="pg a")'},
     "patroni_name = 'pg a'"),
    ("patroni-name-underscore", {"extra": 'patroni[0] = host("p1", "192.0.2.21", patroni_name="pg_a")'},
     "letters, digits and '-'"),
    ("misspelt-host-key", {"p1": ', adress="192.0.2.99"'}, "unknown host data 'adress': did you mean 'address'?"),
    ("misspelt-ssh-key", {"p1": ', ssh_usr="admin"'}, "did you mean 'ssh_user'?"),
    ("setting-as-host-data", {"p1": ", postgresql_port=5435"}, "sets 'postgresql_port' in its host data"),
    ("dns-name-invalid", {"p1": ', dns_name="pg_a.example"'}, "dns_name = 'pg_a.example'"),
    ("address-not-ipv4", {"extra": 'patroni[0] = ("p1", {"address": "pg-a.example.net", "ssh_hostname": "x"})'},
     "expected an IPv4 address"),
    ("no-ssh-hostname", {"extra": 'patroni[0] = ("p1", {"address": "192.0.2.21", "patroni_name": "pg-a"})'},
     "but no ssh_hostname: pyinfra would connect to 'p1'"),
    ("duplicate-address", {"extra": 'patroni[1] = host("p2", "192.0.2.21", patroni_name="pg-b")'},
     "address 192.0.2.21 is used by both"),
    ("duplicate-patroni-name", {"extra": 'patroni[1] = host("p2", "192.0.2.22", patroni_name="pg-a")'},
     "host name 'pg-a' is used by both"),
    # groups
    ("unknown-group", {"extra": 'patrony = [host("p9", "192.0.2.29")]'}, "unknown group 'patrony': did you mean 'patroni'?"),
    ("unknown-group-file", {"files": {"etdc.py": "etcd_cluster_token = 'x'\n"}}, "unknown group 'etdc': did you mean 'etcd'?"),
    ("one-patroni", {"extra": "patroni = patroni[:1]"}, "group 'patroni' has 1 member(s)"),
    ("even-etcd", {"extra": "etcd = etcd[:2]"}, "group 'etcd' has 2 members: expected an odd number"),
    # settings in a per-group file, and settings that differ between hosts
    ("group-file-bad-value", {"files": {"patroni.py": "patroni_ttl = 'thirty'\n"}}, "patroni_ttl"),
    ("setting-differs-by-group", {"files": {"patroni.py": "haproxy_stats_port = 7001\n"}},
     "haproxy_stats_port differs between hosts"),
    # Python mistakes
    ("python-name-error", {"all_py": CLIENTS + "etcd_allow_even_members = true\n"}, "all.py:3: NameError"),
    ("python-syntax-error", {"all_py": CLIENTS + "patroni_ttl = (30\n"}, "all.py:3: SyntaxError"),
    ("python-error-in-group-file", {"files": {"patroni.py": "x = 1 / 0\n"}}, "patroni.py:1: ZeroDivisionError"),
    # missing and unknown settings
    ("no-client-networks", {"all_py": "etcd_client_networks = []\n"}, "'client_networks' is missing"),
    ("no-client-networks-says-why", {"all_py": "etcd_client_networks = []\n"}, "no default"),
    ("typo-setting", {"all_py": CLIENTS + "patroni_tll = 20\n"}, "unknown setting 'patroni_tll': did you mean patroni_ttl?"),
    ("renamed-setting", {"all_py": CLIENTS + "lab_release = 'trixie'\n"}, "'lab_release' was renamed: use debian_release"),
    ("parameter-at-top", {"all_py": CLIENTS + "max_connections = 200\n"}, "postgresql_parameters['max_connections']"),
    ("client-network-not-a-network", {"all_py": 'client_networks = ["192.0.2.0/33"]\netcd_client_networks = []\n'},
     "client_networks = ['192.0.2.0/33']"),
    # values and combinations
    ("release-unknown", {"all_py": CLIENTS + "debian_release = 'buster'\n"}, "debian_release = 'buster'"),
    ("version-not-shipped", {"all_py": CLIENTS + "debian_release = 'bookworm'\npostgresql_version = 17\n"},
     "Debian bookworm ships PostgreSQL 15"),
    ("ttl-below-patroni-4-floor", {"all_py": CLIENTS + "debian_release = 'trixie'\npatroni_ttl = 7\npatroni_loop_wait = 1\npatroni_retry_timeout = 3\n"},
     "patroni_ttl = 7: expected at least 20 with Patroni 4.0.7"),
    ("retry-below-patroni-4-floor", {"all_py": CLIENTS + "debian_release = 'trixie'\npatroni_retry_timeout = 2\n"},
     "patroni_retry_timeout = 2: expected at least 3"),
    ("timings-inconsistent", {"all_py": CLIENTS + "patroni_ttl = 20\npatroni_retry_timeout = 10\n"},
     "loop_wait + 2 * retry_timeout"),
    ("same-port-twice", {"all_py": CLIENTS + "haproxy_ro_port = 5432\n"}, "both listen on host"),
    ("replication-user-is-superuser", {"all_py": CLIENTS + "patroni_replication_user = 'postgres'\n"},
     "patroni_replication_user = 'postgres' is also patroni_superuser"),
    ("admin-is-superuser", {"all_py": CLIENTS + "patroni_admin_user = 'postgres'\n"}, "expected distinct roles"),
    ("etcd-patroni-user-root", {"all_py": CLIENTS + "etcd_patroni_user = 'root'\n"},
     "etcd_patroni_user = 'root': expected a user name other than root"),
    ("sync-count-too-high", {"all_py": CLIENTS + "patroni_synchronous_mode = True\npatroni_synchronous_node_count = 3\n"},
     "patroni_synchronous_node_count = 3"),
    ("failsafe-word", {"all_py": CLIENTS + "patroni_failsafe_mode = 'on'\n"},
     "patroni_failsafe_mode = 'on': expected None (on where the release's Patroni makes it reliable"),
    ("parameter-word-for-number", {"all_py": CLIENTS + "postgresql_parameters = {'max_connections': 'lots'}\n"},
     "postgresql_parameters['max_connections'] = 'lots'"),
    ("parameter-bad-unit", {"all_py": CLIENTS + "postgresql_parameters = {'shared_buffers': '1 parsec'}\n"},
     "postgresql_parameters['shared_buffers']"),
    ("parameter-wal-level-minimal", {"all_py": CLIENTS + "postgresql_parameters = {'wal_level': 'minimal'}\n"},
     "postgresql_parameters['wal_level']"),
    ("parameter-managed-by-patroni", {"all_py": CLIENTS + "postgresql_parameters = {'port': 5432}\n"},
     "postgresql_parameters['port']"),
    ("parameter-typo", {"all_py": CLIENTS + "postgresql_parameters = {'shared_bufers': '1GB'}\n"}, "did you mean 'shared_buffers'"),
    ("check-timeout-zero", {"all_py": CLIENTS + "etcd_check_timeout = 0\n"}, "etcd_check_timeout = 0"),
    ("duration-bad", {"all_py": CLIENTS + "haproxy_check_inter = 'soon'\n"}, "haproxy_check_inter = 'soon'"),
    ("ssh-password", {"p1": ', ssh_password="hunter2"'}, "host 'p1' sets ssh_password: pgha's commands over SSH"),
    ("ssh-key-password", {"p1": ', ssh_key_password="x"'}, "expected the key loaded in an ssh-agent"),
    # a keyword misspelt in host(...), and names pyinfra would fold into one host
    ("host-keyword-typo", {"extra": 'patroni[0] = host("p1", adress="192.0.2.21", patroni_name="pg-a")'},
     "host 'p1' has unknown host data 'adress': did you mean 'address'?"),
    ("host-keyword-typo-no-address", {"extra": 'patroni[0] = host("p1", adress="192.0.2.21", patroni_name="pg-a")'},
     "host 'p1' has address None: expected an IPv4 address"),
    ("same-name-twice-in-a-group", {"extra": 'patroni = patroni + [host("p2", "192.0.2.24", patroni_name="pg-d")]'},
     "host 'p2' is listed twice in group 'patroni': pyinfra would keep one and drop the other"),
    ("same-name-for-two-hosts", {"extra": 'backup = [host("e1", "192.0.2.31")]'},
     "host name 'e1' is given to '192.0.2.11' (group 'etcd') and to '192.0.2.31' (group 'backup')"),
]


@pytest.mark.parametrize(("files", "fragment"), [pytest.param(f, m, id=i) for i, f, m in BAD])
def test_bad_input_is_refused_with_a_message(tmp_path, in_repo, files, fragment):
    message = problems(write(tmp_path, **files))
    assert fragment in message, message
    assert "Traceback" not in message


def test_the_example_inventory_passes(in_repo):
    cluster = loader.load_cluster(REPO_ROOT / "inventories" / "example" / "inventory.py")
    assert [n.name for n in cluster.patroni] == ["pg-a", "pg-b", "pg-c"]
    assert [n.name for n in cluster.backup] == ["backup-a"]
    assert cluster.settings["client_networks"] == ["192.0.2.0/26"]
    assert "lab_bridge" not in cluster.settings  # no lab: no lab setting needed


def test_a_valid_inventory_in_a_subfolder_passes(tmp_path, in_repo):
    cluster = loader.load_cluster(write(tmp_path))
    assert len(cluster.nodes) == 6


def test_the_lab_inventory_passes(in_repo):
    cluster = loader.load_cluster(REPO_ROOT / "inventory.py")
    assert cluster.settings["lab_bridge"] == "lxcbr0"


def test_overrides_are_checked(tmp_path, in_repo):
    assert "patroni_ttl = 'x'" in problems(write(tmp_path), {"patroni_ttl": "x"})


def test_lab_bridge_longer_than_an_interface_name(tmp_path, in_repo):
    message = problems(REPO_ROOT / "inventory.py", {"lab_bridge": "a-very-long-bridge0"})
    assert "lab_bridge = 'a-very-long-bridge0': expected a network interface name of at most 15" in message


def _pyinfra(*args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "pyinfra"), "-y", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def test_data_override_is_refused_before_pyinfra_connects():
    proc = _pyinfra("inventory.py", "deploys/etcd.py", "--data", "patroni_ttl=thirty")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "patroni_ttl = 'thirty'" in output, output
    assert "Connecting to hosts" not in output, output


def test_group_data_of_an_inventory_elsewhere_is_refused_before_pyinfra_connects(tmp_path):
    inventory = write(tmp_path, files={"patroni.py": "patroni_ttl = 'thirty'\n"})
    proc = _pyinfra(str(inventory), "deploys/etcd.py")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "patroni_ttl differs between hosts (30 on e1, e2, e3; 'thirty' on p1, p2, p3)" in output, output
    assert "Connecting to hosts" not in output and "Traceback" not in output, output


def test_a_misspelt_host_keyword_is_refused_by_pyinfra_without_a_traceback(tmp_path):
    inventory = write(tmp_path, extra='patroni[0] = host("p1", adress="192.0.2.21", patroni_name="pg-a")')
    proc = _pyinfra(str(inventory), "deploys/etcd.py")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown host data 'adress': did you mean 'address'?" in output, output
    assert "Connecting to hosts" not in output and "Traceback" not in output, output


def test_a_misspelt_secrets_key_is_named(tmp_path, secrets_path, in_repo):
    from pgha import secrets

    secrets.ensure()
    values = json.loads(secrets_path.read_text())
    values["admin_pasword"] = values.pop("admin_password")
    secrets_path.write_text(json.dumps(values))
    message = problems(write(tmp_path))
    assert "unknown key 'admin_pasword'" in message and "did you mean 'admin_password'?" in message, message
    assert "'admin_password' is missing" in message
    assert values["admin_pasword"] not in message  # never a secret in a message


# --- tools from anywhere -------------------------------------------------------------------


def test_a_tool_run_from_elsewhere_reads_the_group_data_beside_the_inventory(tmp_path, monkeypatch):
    """Not the current directory's: pgha works from any directory, on the shared defaults."""
    inventory = write(tmp_path, all_py=CLIENTS + "patroni_ttl = 40\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "group_data").mkdir(parents=True)
    (elsewhere / "group_data" / "all.py").write_text("patroni_ttl = 'never read'\n")
    monkeypatch.chdir(elsewhere)
    cluster = loader.load_cluster(inventory)
    assert cluster.settings["patroni_ttl"] == 40
    assert cluster.settings["postgresql_port"] == 5434  # the shared defaults


def test_no_inventory_given_and_none_set_is_refused(monkeypatch):
    monkeypatch.delenv(loader.INVENTORY_VARIABLE, raising=False)
    with pytest.raises(ConfigError) as info:
        loader.inventory_path(None)
    assert "no inventory: give --inventory FILE" in str(info.value)
    monkeypatch.setenv(loader.INVENTORY_VARIABLE, "/nowhere/inventory.py")
    with pytest.raises(ConfigError) as info:
        loader.inventory_path(None)
    assert "$PGHA_INVENTORY '/nowhere/inventory.py': no such file" in str(info.value)


def _cli(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != loader.INVENTORY_VARIABLE}
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "pgha"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env={**environment, **(env or {})})


def test_pgha_without_an_inventory_says_so_and_fails(tmp_path):
    """Never the lab's by surprise: no request leaves, exit 2."""
    proc = _cli("status", cwd=REPO_ROOT)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "no inventory" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_pgha_prints_the_connection_strings_from_another_directory(tmp_path, secrets_path):
    (tmp_path / "elsewhere").mkdir()
    proc = _cli("status", "--dsn", "--inventory", str(REPO_ROOT / "inventories" / "example" / "inventory.py"),
                cwd=tmp_path / "elsewhere", env={"PGHA_SECRETS": str(secrets_path)})
    assert proc.returncode == 0, proc.stderr
    read_write = proc.stdout.splitlines()[0]
    assert " ".join(read_write.split()).startswith("read-write: host=192.0.2.21,192.0.2.22,192.0.2.23 port=5432 dbname=postgres user=dba ")
    from pgha.pki.authority import directory

    assert f"sslrootcert={directory() / 'ca.crt'}" in read_write  # absolute: not under the current directory


def test_pgha_verify_runs_four_workers_a_module_each_unless_told(monkeypatch):
    from pgha import cli

    assert cli._workers(["-v"]) == ["-n", "4", "--dist", "loadfile"]
    assert cli._workers(["-q", "-p", "no:cacheprovider"]) == ["-n", "4", "--dist", "loadfile"]
    assert cli._workers(["-n", "0"]) == [] and cli._workers(["-n2"]) == [] and cli._workers(["-p", "no:xdist"]) == []
    assert cli._workers(["--dist=load"]) == []
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli._workers(["-v"]) == []


@pytest.fixture
def lab_ca(monkeypatch):
    """The CA certificate where the lab's deploy has it (pki/ at the repository root), as
    the connection strings name it, without issuing anything there."""
    from pgha import client

    monkeypatch.setattr(client, "client_ca", lambda cluster: REPO_ROOT / "pki" / "ca.crt")


def test_the_connection_strings_are_complete(in_repo, lab_ca):
    from pgha import client

    cluster = loader.load_cluster(REPO_ROOT / "inventory.py")
    strings = client.connection_strings(cluster)
    hosts = ",".join(n.address for n in cluster.patroni)
    assert strings == {
        "read-write": f"host={hosts} port=5432 dbname=postgres user=dba target_session_attrs=read-write "
                      "sslmode=verify-full sslrootcert=pki/ca.crt",
        "read-only": f"host={hosts} port=5433 dbname=postgres user=dba target_session_attrs=prefer-standby "
                     "sslmode=verify-full sslrootcert=pki/ca.crt",
        "pooled read-write": f"host={hosts} port=6432 dbname=postgres user=dba sslmode=verify-full sslrootcert=pki/ca.crt",
        "pooled read-only": f"host={hosts} port=6432 dbname=postgres_ro user=dba sslmode=verify-full sslrootcert=pki/ca.crt",
    }


def test_the_readme_gives_the_strings_the_lab_deploy_prints(in_repo, lab_ca):
    """The README's connection strings are the lab's, as the deploy prints them from the
    repository root (and `pgha status --dsn` too: both call client.connect_text)."""
    from pgha import client

    readme = (REPO_ROOT / "README.md").read_text()
    for dsn in client.connection_strings(loader.load_cluster(REPO_ROOT / "inventory.py")).values():
        assert dsn in readme, dsn


def test_pgha_reaches_a_host_with_the_ssh_settings_pyinfra_uses():
    """Every ssh_* key pyinfra's connector reads is given to OpenSSH, read otherwise, or
    refused by the settings check: none is silently ignored."""
    from pyinfra.connectors.ssh import connector_data_meta

    from pgha import remote
    from pgha.cluster import Node

    handled = set(remote.SSH_OPTIONS) | remote.USED_OTHERWISE | set(remote.REFUSED)
    assert set(connector_data_meta) == handled
    node = Node("pg-a", "192.0.2.21", ssh={"ssh_hostname": "pg-a.example.net", "ssh_user": "admin", "ssh_port": 2222,
                                           "ssh_key": "/k", "ssh_config_file": "/c", "ssh_allow_agent": False,
                                           "ssh_connect_retries": 2})
    command = remote.ssh_command(node, "true")
    assert command[-2:] == ["admin@pg-a.example.net", "sudo -n sh -c true"]
    for expected in (["-p", "2222"], ["-i", "/k"], ["-F", "/c"], ["-o", "IdentityAgent=none"],
                     ["-o", "ConnectionAttempts=3"]):
        assert any(command[i:i + 2] == expected for i in range(len(command))), (expected, command)
