"""The LXC lab's values: where its local state lives and what each container is given.

Local state (outside git) is in .lab/ at the repository root: the SSH key pair pyinfra
uses to reach the containers, each container's SSH host key (generated here, so the
known_hosts file is exact and survives a rebuild of the lab) and that known_hosts file.

Teardown: python -m pghalab.teardown (lab/pghalab/teardown.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
from pathlib import Path

from pgha import PROJECT_ROOT
from pgha.validators import Setting, is_ipv4, is_ipv4_network, is_list_of, is_name, is_port
from pghalab import webhook

LAB_DIR = PROJECT_ROOT / ".lab"
# the lab's inventory: what the Makefile, the benchmarks and the tests default to
LAB_INVENTORY = PROJECT_ROOT / "inventory.py"
SSH_KEY = LAB_DIR / "id_ed25519"
KNOWN_HOSTS = LAB_DIR / "known_hosts"
HOST_KEYS = LAB_DIR / "host_keys"
LXC_PATH = Path("/var/lib/lxc")
LXC_NET_DEFAULTS = Path("/etc/default/lxc-net")
# Bump when the base container's build steps change (the package list is hashed too).
BASE_RECIPE_VERSION = 3  # 2: apt goes through the lab host's package cache; 3: no downloaded packages kept
# the lab's builder: this machine, in its own inventory group
LAB_GROUP = "lxc_hosts"

# The lab's settings, read from the LXC host's data (pghalab.topology gives their values)
SETTINGS: dict[str, Setting] = {
    "lab_bridge": (
        lambda v: is_name(v) and len(v) <= 15, "a network interface name of at most 15 characters"
    ),
    "lab_subnet": (is_ipv4_network, "an IPv4 network such as 10.0.3.0/24"),
    "lab_gateway": (is_ipv4, "an IPv4 address inside lab_subnet"),
    "lab_dhcp_range": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(is_ipv4(a) for a in v),
        "a [first, last] pair of IPv4 addresses",
    ),
    "lab_base_container": (is_name, "a container name"),
    "lab_base_packages": (is_list_of(is_name), "a list of Debian package names"),
    "lab_package_cache_port": (is_port, "an integer port number from 1 to 65535"),
    "lab_webhook_port": (is_port, "an integer port number from 1 to 65535"),
}
# the host data of a lab node
HOST_DATA: dict[str, Setting] = {"lxc_container": (is_name, "an LXC container name")}


WEBHOOK_PROGRAM = Path(__file__).resolve().parent / "webhook.py"
WEBHOOK_PATH = "/usr/local/lib/pgha-lab/webhook.py"
WEBHOOK_LOG = webhook.LOG


def webhook_unit(settings: dict) -> str:
    return ("# Managed by the pgha lab: the alert receiver the tests read\n[Unit]\nDescription=pgha lab: alert receiver\n"
            f"After=network.target\n\n[Service]\nExecStart=/usr/bin/python3 {WEBHOOK_PATH} {settings['lab_webhook_port']}\n"
            "Restart=always\n\n[Install]\nWantedBy=multi-user.target\n")


def unit_active(container: str, unit: str) -> bool:
    """Whether ``unit`` is active inside the running ``container`` (asked as the deploy runs)."""
    import subprocess
    proc = subprocess.run(["lxc-attach", "-n", container, "--", "systemctl", "is-active", "--quiet", unit],
                          capture_output=True, check=False)
    return proc.returncode == 0


def container(node) -> str | None:
    """The LXC container a node is (None: a machine of its own, not the lab's)."""
    return node.extra.get("lxc_container")


def container_host_data(name: str, address: str, **extra) -> dict:
    """pyinfra host data for a lab container reached over SSH as root."""
    return {
        "address": address,
        "lxc_container": name,
        "ssh_hostname": address,
        "ssh_user": "root",
        "ssh_key": str(SSH_KEY),
        "ssh_known_hosts_file": str(KNOWN_HOSTS),
        "ssh_strict_host_key_checking": "yes",
        **extra,
    }


def rootfs(container: str) -> Path:
    return LXC_PATH / container / "rootfs"


def base_container(settings: dict) -> str:
    """The cached base container of the nodes' release: one per release
    (``pgha-base-bookworm``, ``pgha-base-trixie``), so switching debian_release back and
    forth rebuilds nothing."""
    return f"{settings['lab_base_container']}-{settings['debian_release']}"


def package_cache(settings: dict) -> str:
    """The lab host's apt cache (apt-cacher-ng), as a proxy URL on the bridge."""
    return f"http://{settings['lab_gateway']}:{settings['lab_package_cache_port']}"


def base_recipe(release: str, packages: list[str]) -> str:
    """A digest of what the base container is built from; a change rebuilds it."""
    text = f"v{BASE_RECIPE_VERSION} {release} {' '.join(sorted(packages))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lxc_net_defaults(settings: dict) -> str:
    """/etc/default/lxc-net: the bridge, its address and a DHCP range that avoids the lab."""
    subnet = ipaddress.ip_network(settings["lab_subnet"])
    first, last = settings["lab_dhcp_range"]
    return (
        "# Managed by pgha (deploys/lxc_hosts.py): the DHCP range leaves the lab's static\n"
        "# addresses out.\n"
        'USE_LXC_BRIDGE="true"\n'
        f'LXC_BRIDGE="{settings["lab_bridge"]}"\n'
        f'LXC_ADDR="{settings["lab_gateway"]}"\n'
        f'LXC_NETMASK="{subnet.netmask}"\n'
        f'LXC_NETWORK="{subnet}"\n'
        f'LXC_DHCP_RANGE="{first},{last}"\n'
        f'LXC_DHCP_MAX="{int(ipaddress.ip_address(last)) - int(ipaddress.ip_address(first)) + 1}"\n'
    )


def etc_hosts(cluster, node) -> str:
    """/etc/hosts for a node: every node with all its names (and its hostname, which
    cannot hold the '_' of a container name)."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "",
        "# Managed by pgha (deploys/lxc_hosts.py)",
    ]
    lines += [
        f"{other.address}\t{' '.join(dict.fromkeys(other.all_names + [hostname(other.name)]))}"
        for other in cluster.nodes
    ]
    return "\n".join(lines) + "\n"


def hostname(container: str) -> str:
    return container.replace("_", "-")


def interfaces() -> str:
    """eth0 is configured by LXC (lxc.net.0.ipv4.*): no DHCP client inside the container."""
    return (
        "# Managed by pgha: eth0's static address comes from the LXC config\n"
        "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n"
    )


def lxc_config_lines(settings: dict, node) -> dict[str, str]:
    subnet = ipaddress.ip_network(settings["lab_subnet"])
    return {
        # the broadcast is given explicitly: LXC 5.0 computes a wrong one (lxc/lxc#4522)
        "lxc.net.0.ipv4.address": f"{node.address}/{subnet.prefixlen} {subnet.broadcast_address}",
        "lxc.net.0.ipv4.gateway": settings["lab_gateway"],
        "lxc.start.auto": "1",
    }


def ensure_local_keys(names: list[str]) -> None:
    """The lab's client key pair and each container's host key, generated on first use."""
    LAB_DIR.mkdir(mode=0o700, exist_ok=True)
    if not SSH_KEY.exists():
        _keygen(SSH_KEY, "pgha-lab")
    for name in names:
        key = HOST_KEYS / name / "ssh_host_ed25519_key"
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            _keygen(key, f"root@{name}")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


def known_hosts(cluster) -> str:
    lines = []
    for node in cluster.nodes:
        if container(node):
            public = (HOST_KEYS / node.name / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{node.address} {public[0]} {public[1]}")
    return "\n".join(lines) + "\n"


def prepare_local_files(cluster) -> None:
    """Keys and known_hosts on the control machine: local files only, no host touched.
    (``cluster`` None: the inventory is being read for its check, nothing to do.)"""
    if cluster is None:
        return
    names = lab_containers(cluster)
    if not names:
        return
    ensure_local_keys(names)
    content = known_hosts(cluster)
    # keep the entries of other inventories' containers (e.g. the tests' scratch nodes)
    ours = {line.split()[0] for line in content.splitlines()}
    old = KNOWN_HOSTS.read_text() if KNOWN_HOSTS.exists() else ""
    kept = [line for line in old.splitlines() if line.split() and line.split()[0] not in ours]
    merged = "".join(f"{line}\n" for line in kept) + content
    if merged != old:  # replaced whole: an ssh started meanwhile (a test process beside) reads either file
        fresh = KNOWN_HOSTS.with_name(f".{KNOWN_HOSTS.name}.{os.getpid()}")
        fresh.write_text(merged)
        os.replace(fresh, KNOWN_HOSTS)


def lab_containers(cluster) -> list[str]:
    return [container(n) for n in cluster.nodes if container(n)]


def network_problems(cluster) -> list[str]:
    """What is wrong with the lab's network settings and its hosts' addresses."""
    problems: list[str] = []
    s = cluster.settings
    if not (is_ipv4_network(s.get("lab_subnet")) and is_ipv4(s.get("lab_gateway"))):
        return problems  # reported by the type check
    subnet = ipaddress.ip_network(s["lab_subnet"])
    gateway = ipaddress.ip_address(s["lab_gateway"])
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        problems.append(
            f"group_data: lab_gateway = {s['lab_gateway']!r}: expected a host address "
            f"inside lab_subnet {s['lab_subnet']}"
        )
    dhcp = None
    if SETTINGS["lab_dhcp_range"][0](s.get("lab_dhcp_range")):
        first, last = (ipaddress.ip_address(a) for a in s["lab_dhcp_range"])
        if first > last or first not in subnet or last not in subnet:
            problems.append(
                f"group_data: lab_dhcp_range = {list(s['lab_dhcp_range'])!r}: expected "
                f"[first, last] with first <= last, both inside lab_subnet {subnet}"
            )
        else:
            dhcp = (first, last)
            if first <= gateway <= last:
                problems.append(
                    f"group_data: lab_dhcp_range = {list(s['lab_dhcp_range'])!r} covers "
                    f"lab_gateway {gateway}: expected a range that leaves it out"
                )
    for node in cluster.nodes:
        if not container(node):
            continue
        address = ipaddress.ip_address(node.address)
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}: expected a "
                f"host address inside lab_subnet {subnet}"
            )
        elif address == gateway:
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}, the bridge's "
                f"own address (lab_gateway): expected another address in {subnet}"
            )
        elif dhcp and dhcp[0] <= address <= dhcp[1]:
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}, inside "
                f"lab_dhcp_range {dhcp[0]}-{dhcp[1]}: expected an address outside the DHCP range"
            )
    return problems
