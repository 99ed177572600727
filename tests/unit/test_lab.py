"""pghalab: the files and digests the lab gives the LXC host and each container."""

from __future__ import annotations

import re

import pytest

from pgha.releases import RELEASES
from pgha.settings.checks import check
from pghalab import values as lab


@pytest.fixture
def cluster(groups, group_data):
    return check(groups, group_data)


def _shell_vars(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = re.fullmatch(r'([A-Z_]+)="([^"]*)"', line)
        assert match, f"not a KEY=\"value\" line: {line!r}"
        values[match[1]] = match[2]
    return values


# --- /etc/default/lxc-net -----------------------------------------------------------------


def test_lxc_net_defaults_from_the_seed_settings(group_data):
    assert _shell_vars(lab.lxc_net_defaults(group_data)) == {
        "USE_LXC_BRIDGE": "true",
        "LXC_BRIDGE": "lxcbr0",
        "LXC_ADDR": "10.0.3.1",
        "LXC_NETMASK": "255.255.255.0",
        "LXC_NETWORK": "10.0.3.0/24",
        "LXC_DHCP_RANGE": "10.0.3.2,10.0.3.30",
        "LXC_DHCP_MAX": "29",
    }


def test_lxc_net_defaults_follow_the_settings(group_data):
    group_data.update(
        lab_bridge="br-lab",
        lab_subnet="192.168.50.0/23",
        lab_gateway="192.168.50.1",
        lab_dhcp_range=["192.168.51.100", "192.168.51.199"],
    )
    assert _shell_vars(lab.lxc_net_defaults(group_data)) == {
        "USE_LXC_BRIDGE": "true",
        "LXC_BRIDGE": "br-lab",
        "LXC_ADDR": "192.168.50.1",
        "LXC_NETMASK": "255.255.254.0",
        "LXC_NETWORK": "192.168.50.0/23",
        "LXC_DHCP_RANGE": "192.168.51.100,192.168.51.199",
        "LXC_DHCP_MAX": "100",
    }


# --- /etc/hosts ---------------------------------------------------------------------------


def _hosts_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            address, *names = line.split()
            entries.append((address, names))
    return entries


def _resolve(text: str, name: str) -> str | None:
    """What glibc's files backend answers: the first line that lists the name."""
    for address, names in _hosts_entries(text):
        if name in names:
            return address
    return None


EXPECTED_NODE_LINES = [
    "10.0.3.64\tetcd1",
    "10.0.3.78\tetcd2",
    "10.0.3.32\tetcd3",
    "10.0.3.141\tpg_patroni1 pg-1 p1 pg-patroni1",
    "10.0.3.201\tpg_patroni2 pg-2 p2 pg-patroni2",
    "10.0.3.68\tpg_patroni3 pg-3 p3 pg-patroni3",
]


@pytest.mark.parametrize("node_name", ["etcd1", "pg_patroni1", "pg_patroni3"])
def test_etc_hosts_lists_every_node_with_all_its_names(cluster, node_name):
    text = lab.etc_hosts(cluster, cluster.node(node_name))
    lines = text.splitlines()
    for expected in EXPECTED_NODE_LINES:
        assert lines.count(expected) == 1, (expected, text)
    assert "127.0.0.1\tlocalhost" in lines
    assert text.endswith("\n")


@pytest.mark.parametrize("node_name", ["etcd2", "pg_patroni2"])
def test_etc_hosts_resolves_every_name_to_its_cluster_address(cluster, node_name):
    text = lab.etc_hosts(cluster, cluster.node(node_name))
    for node in cluster.nodes:
        for name in node.all_names:
            assert _resolve(text, name) == node.address, (name, text)
    assert _resolve(text, "localhost") == "127.0.0.1"


def test_etc_hosts_lists_a_node_in_two_groups_once(groups, group_data):
    groups["etcd"][2] = ("pg_patroni1", lab.container_host_data("pg_patroni1", "10.0.3.141"))
    group_data["haproxy_etcd_port"] = 2391
    cluster = check(groups, group_data)
    entries = _hosts_entries(lab.etc_hosts(cluster, cluster.node("etcd1")))
    assert [a for a, _ in entries].count("10.0.3.141") == 1
    assert ("10.0.3.141", ["pg_patroni1", "pg-1", "p1", "pg-patroni1"]) in entries
    assert "etcd3" not in {n for _, names in entries for n in names}


# --- the container's LXC config and interfaces ---------------------------------------------


@pytest.mark.parametrize(
    ("node_name", "address"), [("etcd3", "10.0.3.32"), ("pg_patroni2", "10.0.3.201")]
)
def test_lxc_config_lines(cluster, group_data, node_name, address):
    assert lab.lxc_config_lines(group_data, cluster.node(node_name)) == {
        "lxc.net.0.ipv4.address": f"{address}/24 10.0.3.255",
        "lxc.net.0.ipv4.gateway": "10.0.3.1",
        "lxc.start.auto": "1",
    }


def test_lxc_config_lines_follow_the_subnet(cluster, group_data):
    group_data.update(lab_subnet="10.0.0.0/16", lab_gateway="10.0.0.1")
    lines = lab.lxc_config_lines(group_data, cluster.node("etcd1"))
    assert lines["lxc.net.0.ipv4.address"] == "10.0.3.64/16 10.0.255.255"
    assert lines["lxc.net.0.ipv4.gateway"] == "10.0.0.1"


def test_interfaces_has_no_dhcp_for_eth0(group_data):
    text = lab.interfaces()
    assert "dhcp" not in text.lower()
    lines = [line.strip() for line in text.splitlines()]
    assert "auto eth0" in lines
    assert "iface eth0 inet manual" in lines
    assert "iface lo inet loopback" in lines
    assert [line for line in lines if line.startswith("iface eth0")] == ["iface eth0 inet manual"]


# --- the base container's recipe ----------------------------------------------------------

PACKAGES = ["openssh-server", "python3", "iproute2", "ca-certificates", "curl"]


def test_base_recipe_is_a_short_hex_digest():
    recipe = lab.base_recipe("bookworm", PACKAGES)
    assert re.fullmatch(r"[0-9a-f]{16}", recipe), recipe


def test_base_recipe_is_stable():
    recipe = lab.base_recipe("bookworm", PACKAGES)
    assert lab.base_recipe("bookworm", list(PACKAGES)) == recipe
    assert lab.base_recipe("bookworm", list(reversed(PACKAGES))) == recipe  # order is irrelevant


def test_base_recipe_matches_the_seed_settings(group_data):
    assert lab.base_recipe(group_data["debian_release"], group_data["lab_base_packages"]) == (
        lab.base_recipe("trixie", PACKAGES)
    )


@pytest.mark.parametrize(
    ("release", "packages"),
    [
        ("trixie", PACKAGES),
        ("bullseye", PACKAGES),
        ("bookworm", PACKAGES + ["vim"]),
        ("bookworm", PACKAGES[:-1]),
        ("bookworm", ["openssh-server", "python3", "iproute2", "ca-certificates", "wget"]),
        ("bookworm", []),
    ],
)
def test_base_recipe_changes_with_release_or_packages(release, packages):
    assert lab.base_recipe(release, packages) != lab.base_recipe("bookworm", PACKAGES)


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_one_base_container_per_release(group_data, release):
    group_data["debian_release"] = release
    assert lab.base_container(group_data) == f"pgha-base-{release}"


def test_base_container_follows_the_setting(group_data):
    group_data.update(lab_base_container="cache", debian_release="trixie")
    assert lab.base_container(group_data) == "cache-trixie"


def test_base_recipe_changes_with_its_version(monkeypatch):
    before = lab.base_recipe("bookworm", PACKAGES)
    monkeypatch.setattr(lab, "BASE_RECIPE_VERSION", lab.BASE_RECIPE_VERSION + 1)
    assert lab.base_recipe("bookworm", PACKAGES) != before


# --- host data ----------------------------------------------------------------------------


def test_container_host_data():
    data = lab.container_host_data("pg_patroni1", "10.0.3.141", patroni_name="pg-1", aliases=["p1"])
    assert data == {
        "address": "10.0.3.141",
        "lxc_container": "pg_patroni1",
        "ssh_hostname": "10.0.3.141",
        "ssh_user": "root",
        "ssh_key": str(lab.SSH_KEY),
        "ssh_known_hosts_file": str(lab.KNOWN_HOSTS),
        "ssh_strict_host_key_checking": "yes",
        "patroni_name": "pg-1",
        "aliases": ["p1"],
    }


def test_lab_containers_are_the_nodes_in_order(cluster):
    assert lab.lab_containers(cluster) == [
        "etcd1", "etcd2", "etcd3", "pg_patroni1", "pg_patroni2", "pg_patroni3", "backup1", "monitor1",
    ]
