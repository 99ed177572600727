"""Helpers shared by the integration tests: running pyinfra, reading its results, the topology.

Everything here runs on the control machine; the only network traffic goes to the lab's
containers (10.0.3.0/24) over SSH, or to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safety

from pgha.etcd.facts import make_etcdctl_command
from pgha.etcd.values import ROOT_USER, client_url, local_endpoint, password_file, peer_url
from pgha.waiting import wait_for
from pghalab import pyinfra_run

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# the inventory under test: the lab's, or the one named by `make verify INVENTORY=...`
INVENTORY = Path(os.environ.get("PGHA_INVENTORY") or PROJECT_ROOT / "inventory.py").resolve()
GROUP_DATA = PROJECT_ROOT / "group_data" / "all.py"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
LAB_KNOWN_HOSTS = PROJECT_ROOT / ".lab" / "known_hosts"

TEST_KEY_PREFIX = safety.TEST_KEY_PREFIX

_ANSI = pyinfra_run.ANSI
_GRAND_TOTAL = re.compile(r"^\s*Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.M)


# --- pyinfra --------------------------------------------------------------------------------


def run_pyinfra(
    inventory: str | os.PathLike,
    deploy: str | os.PathLike,
    *extra_args: str,
    timeout: float = 1800,
) -> tuple[int, str]:
    """Run `.venv/bin/pyinfra -y <inventory> <deploy> <extra_args...>` in the project root.

    Returns (exit code, stdout and stderr interleaved, without colour codes). ``deploy`` may
    also be a pyinfra sub-command such as "fact" or "exec" (its arguments in ``extra_args``).
    Settings can be given as ``"--data", "etcd_check_timeout=6"``.
    """
    if Path(inventory).resolve() == INVENTORY:  # scratch inventories are the test's own machines
        safety.GUARD.require(safety.pyinfra_changes(deploy, extra_args))
    return pyinfra_run.deploy(inventory, str(deploy), *map(str, extra_args), timeout=timeout)


def dry_run_changes(inventory: str | os.PathLike, deploy: str | os.PathLike, *extra_args: str,
                    timeout: float = 600) -> tuple[int, list[str], str]:
    """`pyinfra --dry` (with change detection): (exit code, operations that would certainly
    change something, output). Conditional changes (``_if``) are not counted."""
    returncode, output = pyinfra_run.run([str(pyinfra_run.PYINFRA), "--dry", str(inventory), str(deploy), *map(str, extra_args)], timeout)
    lines = output.splitlines()
    changes = []
    for i, line in enumerate(lines):
        if line.strip().startswith("Operation") and "Conditional Change" in line:
            change_col = line.index("Change")
            cond_col = line.index("Conditional Change")
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                if row[change_col:cond_col].strip() not in ("", "-"):
                    changes.append(row.strip())
            break
    return returncode, changes, output


def _count(cell: str) -> int:
    return 0 if cell == "-" else int(cell)


def grand_total(output: str) -> dict[str, int]:
    """The `Grand total` row of pyinfra's results table: hosts, success, error, no_change."""
    matches = _GRAND_TOTAL.findall(_ANSI.sub("", output))
    if not matches:
        raise AssertionError(
            "no 'Grand total' line in pyinfra's output (did it stop before the results?):\n"
            + tail(output)
        )
    hosts, success, error, no_change = matches[-1]
    return {
        "hosts": _count(hosts),
        "success": _count(success),
        "error": _count(error),
        "no_change": _count(no_change),
    }


def changed_operations(output: str) -> int:
    """How many operations changed something (the Success column of the Grand total row)."""
    return grand_total(output)["success"]


def changed_operation_rows(output: str) -> list[str]:
    """The rows of pyinfra's results table whose Success column is not '-' (for messages)."""
    text = _ANSI.sub("", output)
    start = text.rfind("--> Results:")
    rows = []
    for line in text[start:].splitlines()[2:] if start >= 0 else []:
        cells = line.split()
        if len(cells) >= 4 and not line.strip().startswith("Grand total") and cells[-3].isdigit():
            rows.append(line.strip())
    return rows


def operation_names(output: str) -> list[str]:
    """The operations a pyinfra run started, by name, in order."""
    return [line.split("--> Starting operation:", 1)[1].strip()
            for line in _ANSI.sub("", output).splitlines() if "--> Starting operation:" in line]


def fact_data(output: str, fact: str) -> dict[str, Any]:
    """The JSON printed by `pyinfra INVENTORY fact <fact>`: {host name: value}."""
    text = _ANSI.sub("", output)
    marker = f"--> Fact data for: {fact}"
    start = text.find(marker)
    if start < 0:
        raise AssertionError(f"no '{marker}' in pyinfra's output:\n{tail(output)}")
    body = text[start + len(marker):]
    end = body.find("\n-->")
    return json.loads(body if end < 0 else body[:end])


def tail(output: str, lines: int = 60) -> str:
    return "\n".join(output.splitlines()[-lines:])


def pgha(*args: str, inventory: str | os.PathLike | None = None, timeout: float = 900,
         cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (`.venv/bin/pgha ARGS --inventory INVENTORY`), by default
    against the inventory under test, from the project root."""
    target = Path(inventory or INVENTORY).resolve()
    if target == INVENTORY:
        safety.GUARD.require(safety.pgha_changes(args))
    return subprocess.run(
        [str(VENV_BIN / "pgha"), "--inventory", str(target), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or PROJECT_ROOT,
    )


# --- the topology ---------------------------------------------------------------------------


def load_cluster(path: str | os.PathLike = INVENTORY):
    """The checked Cluster of an inventory file (pgha.settings.loader, as every tool loads it)."""
    from pgha.settings.loader import load_cluster as load

    return load(path)


# The topology under test, loaded once so that tests can be parametrized by node name.
CLUSTER = load_cluster(INVENTORY)


# --- SSH ------------------------------------------------------------------------------------


def write_ssh_config(path: Path, hosts: dict[str, dict]) -> Path:
    """An ssh_config with one Host block per host (name -> its ssh_* host data, as pyinfra
    connects: ssh_hostname, ssh_user, ssh_key, ssh_known_hosts_file, strict host keys)."""
    blocks = []
    for name, ssh in hosts.items():
        key = ssh.get("ssh_key")
        blocks.append(
            f"Host {name}\n"
            f"    HostName {ssh.get('ssh_hostname') or name}\n"
            f"    User {ssh.get('ssh_user') or 'root'}\n"
            + (f"    IdentityFile {Path(key).expanduser()}\n    IdentitiesOnly yes\n" if key else "")
            + (f"    UserKnownHostsFile {ssh['ssh_known_hosts_file']}\n" if ssh.get("ssh_known_hosts_file") else "")
            + f"    StrictHostKeyChecking {ssh.get('ssh_strict_host_key_checking') or 'yes'}\n"
            "    BatchMode yes\n"
            "    LogLevel ERROR\n"
        )
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def testinfra_hosts(ssh_config: Path, names) -> dict:
    import testinfra

    return {name: testinfra.get_host(f"ssh://{name}", ssh_config=str(ssh_config)) for name in names}


# --- etcd -----------------------------------------------------------------------------------


def etcdctl(host, *args: str, endpoints: str | None = None, user: str | None = ROOT_USER):
    """Run etcdctl on a testinfra host (through that member unless ``endpoints`` says
    otherwise), logged in as ``user`` with the password file the deploy keeps on the member
    (None: anonymous)."""
    login = {"user": user, "password_file": password_file(user)} if user else {}
    return host.run(make_etcdctl_command(endpoints or local_endpoint(CLUSTER), *args, **login))


def cluster_health(host) -> dict[str, bool]:
    """`etcdctl endpoint health --cluster` through the member itself: {client URL: healthy}."""
    result = etcdctl(host, "endpoint", "health", "--cluster", "-w", "json")
    try:
        return {e["endpoint"]: bool(e.get("health")) for e in json.loads(result.stdout or "[]")}
    except ValueError:
        return {}


def member_list(host) -> list[dict]:
    """`etcdctl member list` through the member itself: [{name, peerURLs, clientURLs}] by name."""
    result = etcdctl(host, "member", "list", "-w", "json")
    assert result.rc == 0, f"etcdctl member list failed: {result.stderr}"
    members = json.loads(result.stdout)["members"]
    return sorted(
        (
            {
                "name": m.get("name", ""),
                "peerURLs": sorted(m.get("peerURLs", [])),
                "clientURLs": sorted(m.get("clientURLs", [])),
            }
            for m in members
        ),
        key=lambda m: m["name"],
    )


def get_key(host, key: str, serializable: bool = False) -> str | None:
    """The value of ``key`` read through the member (serializable: from its own store)."""
    args = ["get", key, "--print-value-only"]
    if serializable:
        args.append("--consistency=s")
    result = etcdctl(host, *args)
    if result.rc != 0:
        return None
    return result.stdout.strip() or None


def expected_members(cluster) -> list[dict]:
    return sorted(
        (
            {"name": n.name, "peerURLs": [peer_url(cluster, n)], "clientURLs": [client_url(cluster, n)]}
            for n in cluster.etcd
        ),
        key=lambda m: m["name"],
    )


def client_urls(cluster) -> dict[str, str]:
    return {n.name: client_url(cluster, n) for n in cluster.etcd}


# --- what a read-only run must leave as it found it ------------------------------------------

# every unit pgha runs, and every file it renders (globs), on any node
FINGERPRINT_UNITS = "patroni haproxy etcd pgbackrest-server 'pgha-*-firewall'"
FINGERPRINT_FILES = ("/etc/patroni/*.yml /etc/haproxy/haproxy.cfg /etc/etcd/etcd.conf.yml "
                     "/etc/pgbackrest/pgbackrest.conf /etc/pgha/*.nft /etc/systemd/system/patroni.service")


def cluster_fingerprint(cluster, hosts: dict) -> dict:
    """What changes when anything restarts, fails over or is reconfigured: each unit's main
    PID and start time, each managed file's checksum, each member's timeline, role and
    PostgreSQL start time, the DCS configuration. ``hosts``: testinfra hosts by node name."""
    from pgha.patroni import rest

    found: dict = {}
    for node in cluster.nodes:
        host = hosts[node.name]
        units = host.run(f"systemctl show -p Id -p MainPID -p ActiveEnterTimestampMonotonic {FINGERPRINT_UNITS} "
                         "2>/dev/null | grep -v '^MainPID=0$'").stdout
        sums = host.run(f"sha1sum {FINGERPRINT_FILES} 2>/dev/null").stdout
        found[node.name] = {"units": units.split(), "files": sorted(sums.splitlines())}
    for node in cluster.patroni:
        status = rest.get_json(cluster, "patroni", address=node.address) or {}
        found[node.name].update(role=status.get("role"), timeline=status.get("timeline"),
                                postmaster_start=status.get("postmaster_start_time"))
    found["dcs"] = rest.get_json(cluster, "config")
    return found


# --- misc -----------------------------------------------------------------------------------


def wait_until(probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """pgha.waiting.wait_for with the tests' default interval."""
    return wait_for(probe, timeout, interval)


def tcp_connect_command(address: str, port: int, seconds: int = 3) -> str:
    """A shell line that opens a TCP connection from a node (bash, on every Debian: a
    minimal machine has neither curl nor python3): exit 0 when it connects; "Connection
    refused" in its output when a firewall resets it."""
    return f"timeout {int(seconds)} bash -c 'exec 3<>/dev/tcp/{address}/{int(port)}' 2>&1"


def https_get_through(ssh_config: Path, via: str, address: str, port: int, path: str, ca: str | Path,
                      cert: str | Path | None = None, key: str | Path | None = None,
                      timeout: float = 10, login: tuple[str, str] | None = None) -> str:
    """``GET path`` over TLS to address:port, from the control machine through an SSH tunnel
    to ``via`` (`ssh -W`: the connection leaves from that node, as its firewall allows), the
    server checked against ``ca``; ``cert``/``key`` (on this machine) present a client
    certificate, ``login`` (user, password) asks with basic auth. Returns the response's first line, or "tls: <reason>" when the TLS layer
    refuses (a missing client certificate shows after the handshake, in TLS 1.3)."""
    import ssl
    import time

    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    if cert:
        context.load_cert_chain(str(cert), str(key))
    tunnel = subprocess.Popen(["ssh", "-F", str(ssh_config), "-W", f"{address}:{port}", via],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    deadline = time.monotonic() + timeout

    def send() -> None:
        data = outgoing.read() if outgoing.pending else b""
        try:
            while data:
                data = data[os.write(tunnel.stdin.fileno(), data):]
        except BrokenPipeError:
            # the server closed first (a TLS alert: no client certificate, say) and ssh
            # left: what the server sent before is still to be read from the tunnel
            pass

    def pump(step):
        while True:
            try:
                return step()
            except ssl.SSLWantReadError:
                send()
                data = os.read(tunnel.stdout.fileno(), 65536)
                if not data or time.monotonic() > deadline:
                    raise ConnectionError("the tunnel closed") from None
                incoming.write(data)
            finally:
                send()

    try:
        pump(tls.do_handshake)
        auth = ""
        if login:
            import base64
            auth = "Authorization: Basic " + base64.b64encode(":".join(login).encode()).decode() + "\r\n"
        pump(lambda: tls.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n".encode()))
        return pump(lambda: tls.read(4096)).decode(errors="replace").splitlines()[0]
    except ssl.SSLError as error:
        return f"tls: {error.reason or error}"
    finally:
        tunnel.kill()
        tunnel.wait()


class Background:
    """``step()`` run again and again in a thread, ``interval`` seconds apart, for the time of
    a ``with`` block (a watcher, a writer)."""

    interval = 0.0

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.step()

    def step(self) -> None:
        raise NotImplementedError


CUT_TABLE = "pgha_test_cut"  # the nftables table of a node cut off from some ports


@contextlib.contextmanager
def cut_off(host, addresses: list[str], ports: list[int]):
    """``host`` (a testinfra host) refused every connection to ``addresses`` on ``ports`` for
    the time of the block (an nftables table of its own, reset at once); its WAL receiver is
    killed, so that a replica cut off from its primary stops streaming now."""
    host.run(f"nft add table inet {CUT_TABLE} && nft add chain inet {CUT_TABLE} out "
             "'{ type filter hook output priority 0 ; }' && "
             f"nft add rule inet {CUT_TABLE} out ip daddr {{ {', '.join(addresses)} }} "
             f"tcp dport {{ {', '.join(str(p) for p in ports)} }} reject with tcp reset && "
             "pkill -f 'postgres: .*walreceiver'")
    try:
        yield
    finally:
        host.run(f"nft delete table inet {CUT_TABLE}")


def start_again(host, service: str) -> bool:
    """`systemctl start SERVICE` on a testinfra host, retried over SSH hiccups: a test must
    never leave a service it stopped down."""

    safety.GUARD.require(f"starts {service} again")

    def started() -> bool:
        try:
            return host.run(f"systemctl start {service}").rc == 0
        except Exception:  # noqa: BLE001 - SSH hiccup: try again
            return False

    return bool(wait_for(started, timeout=10, interval=2))


def lxc_containers() -> dict[str, dict]:
    """`lxc-ls --fancy` on this machine: {name: {"state": ..., "ipv4": [...]}}."""
    out = subprocess.run(
        ["lxc-ls", "--fancy", "--fancy-format", "name,state,ipv4"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    containers = {}
    for line in out.splitlines()[1:]:
        fields = line.split(None, 2)
        if len(fields) < 2:
            continue
        ipv4 = fields[2].strip() if len(fields) > 2 else "-"
        containers[fields[0]] = {
            "state": fields[1],
            "ipv4": [] if ipv4 == "-" else [a.strip() for a in ipv4.split(",")],
        }
    return containers


def python_module(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`.venv/bin/python <args>` in the project root (e.g. -m pghalab.teardown ...)."""
    return subprocess.run(
        [str(PYTHON), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def address_on_lab_bridge(address: str, bridge: str):
    """``address`` added to the lab bridge for the time of the block: a source in no allowed
    network, for probes from "outside" (curl --interface, a socket bound to it)."""
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", bridge], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", bridge], check=True)
