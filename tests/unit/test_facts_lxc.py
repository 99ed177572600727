"""pghalab.facts: parsing recorded command output (no command is run)."""

from __future__ import annotations

from pghalab.facts import LxcBaseRecipe, LxcContainers, LxcNetwork

# `lxc-ls --fancy --fancy-format name,state,autostart,ipv4`, as lxc-ls pads it
LXC_LS = [
    "NAME        STATE   AUTOSTART IPV4                ",
    "etcd1       RUNNING 1         10.0.3.64           ",
    "pg_patroni1 RUNNING 1         10.0.3.141          ",
    "pgha-base   STOPPED 0         -                   ",
    "multi       RUNNING 0         10.0.3.5, 10.0.3.6  ",
]

DNSMASQ_ARGS = (
    "dnsmasq --conf-file=/dev/null -u dnsmasq --strict-order --bind-interfaces "
    "--pid-file=/run/lxc/dnsmasq.pid --listen-address 10.0.3.1 --dhcp-range 10.0.3.2,10.0.3.30 "
    "--dhcp-lease-max=29 --interface=lxcbr0"
)


# --- LxcContainers ------------------------------------------------------------------------


def test_lxc_containers_parses_lxc_ls():
    assert LxcContainers().process(LXC_LS) == {
        "etcd1": {"state": "RUNNING", "autostart": True, "ipv4": ["10.0.3.64"]},
        "pg_patroni1": {"state": "RUNNING", "autostart": True, "ipv4": ["10.0.3.141"]},
        "pgha-base": {"state": "STOPPED", "autostart": False, "ipv4": []},
        "multi": {"state": "RUNNING", "autostart": False, "ipv4": ["10.0.3.5", "10.0.3.6"]},
    }


def test_lxc_containers_without_trailing_padding():
    output = [line.rstrip() for line in LXC_LS]
    assert LxcContainers().process(output) == LxcContainers().process(LXC_LS)


def test_lxc_containers_header_is_not_a_container():
    assert LxcContainers().process(LXC_LS[:1]) == {}
    assert "NAME" not in LxcContainers().process(LXC_LS)


def test_lxc_containers_row_without_ipv4_column():
    assert LxcContainers().process(["NAME STATE AUTOSTART", "base STOPPED 0"]) == {
        "base": {"state": "STOPPED", "autostart": False, "ipv4": []}
    }


def test_lxc_containers_no_lxc():
    # lxc-ls missing: the command prints nothing
    assert LxcContainers().process([]) == {}
    assert LxcContainers.default() == {}


# --- LxcBaseRecipe ------------------------------------------------------------------------


def test_lxc_base_recipe_is_the_file_content():
    assert LxcBaseRecipe().process(["0123456789abcdef"]) == "0123456789abcdef"
    assert LxcBaseRecipe().process(["  0123456789abcdef  ", ""]) == "0123456789abcdef"


def test_lxc_base_recipe_missing_is_none():
    assert LxcBaseRecipe().process([]) is None
    assert LxcBaseRecipe().process([""]) is None
    assert LxcBaseRecipe().process(["   "]) is None


def test_lxc_base_recipe_command_quotes_the_container():
    assert LxcBaseRecipe().command("pgha-base") == (
        "cat /var/lib/lxc/pgha-base/pgha-recipe 2>/dev/null || true"
    )
    assert "'a b'" in LxcBaseRecipe().command("a b")


# --- LxcNetwork ---------------------------------------------------------------------------


def test_lxc_network_with_dnsmasq_running():
    output = ["addresses: 10.0.3.1/24", f"dnsmasq_args: {DNSMASQ_ARGS}"]
    assert LxcNetwork().process(output) == {
        "addresses": ["10.0.3.1/24"],
        "dhcp_range": ["10.0.3.2", "10.0.3.30"],
        "dnsmasq_running": True,
    }


def test_lxc_network_dhcp_range_with_equals_sign():
    args = DNSMASQ_ARGS.replace("--dhcp-range 10.0.3.2,10.0.3.30", "--dhcp-range=10.0.3.2,10.0.3.30,1h")
    result = LxcNetwork().process(["addresses: 10.0.3.1/24", f"dnsmasq_args: {args}"])
    assert result["dhcp_range"] == ["10.0.3.2", "10.0.3.30"]


def test_lxc_network_without_dnsmasq():
    output = ["addresses: 10.0.3.1/24", "dnsmasq_args:"]
    assert LxcNetwork().process(output) == {
        "addresses": ["10.0.3.1/24"],
        "dhcp_range": None,
        "dnsmasq_running": False,
    }


def test_lxc_network_without_bridge():
    assert LxcNetwork().process(["addresses:", "dnsmasq_args:"]) == {
        "addresses": [],
        "dhcp_range": None,
        "dnsmasq_running": False,
    }


def test_lxc_network_with_two_addresses():
    output = ["addresses: 10.0.3.1/24 10.0.4.1/24", "dnsmasq_args: "]
    assert LxcNetwork().process(output)["addresses"] == ["10.0.3.1/24", "10.0.4.1/24"]


def test_lxc_network_command_names_the_bridge():
    command = LxcNetwork().command("lxcbr0")
    assert "ip -4 -o addr show dev lxcbr0" in command
    assert "--interface=lxcbr0" in command
