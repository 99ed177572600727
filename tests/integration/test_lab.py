"""The lab: the containers run with exactly their group_data address; pyinfra reaches each
over SSH; each resolves every node's names; a second lxc_hosts run reports zero changes."""

from __future__ import annotations

import ipaddress

import helpers
import pytest
from conftest import CLUSTER, LAB_NAMES, lab_params

pytestmark = pytest.mark.needs_lxc

SUBNET = ipaddress.ip_network(CLUSTER.settings.get("lab_subnet", "0.0.0.0/0"))


def node(name):
    return CLUSTER.node(name)


@pytest.fixture(scope="module")
def containers() -> dict:
    return helpers.lxc_containers()


@pytest.mark.parametrize("name", lab_params(LAB_NAMES))
def test_container_running_with_its_address(containers, name):
    assert name in containers, f"{name} missing from lxc-ls: {sorted(containers)}"
    assert containers[name]["state"] == "RUNNING"
    assert containers[name]["ipv4"] == [node(name).address], (
        f"{name} has IPv4 {containers[name]['ipv4']}, expected exactly {node(name).address}"
    )


@pytest.mark.parametrize("name", lab_params(LAB_NAMES))
def test_eth0_has_exactly_the_inventory_address(lab_hosts, name):
    result = lab_hosts[name].run("ip -4 -o addr show dev eth0")
    assert result.rc == 0, result.stderr
    addresses = [line.split()[3] for line in result.stdout.splitlines() if " inet " in line]
    assert addresses == [f"{node(name).address}/{SUBNET.prefixlen}"]


@pytest.mark.parametrize("name", lab_params(LAB_NAMES))
def test_eth0_broadcast_is_the_subnet_broadcast(lab_hosts, name):
    """Not in the brief's list, found while testing: LXC 5.0's computed broadcast is wrong."""
    result = lab_hosts[name].run("ip -4 -o addr show dev eth0")
    words = result.stdout.split()
    assert "brd" in words, result.stdout
    assert words[words.index("brd") + 1] == str(SUBNET.broadcast_address), result.stdout


@pytest.mark.parametrize("name", lab_params(LAB_NAMES))
def test_resolves_every_name_of_every_node(lab_hosts, name):
    expected = {n: other.address for other in CLUSTER.nodes for n in other.all_names}
    script = "; ".join(
        f"echo {n} $(getent ahostsv4 {n} | awk '{{print $1}}' | sort -u)" for n in expected
    )
    result = lab_hosts[name].run(script)
    assert result.rc == 0, result.stderr
    resolved = {}
    for line in result.stdout.splitlines():
        key, *addresses = line.split()
        resolved[key] = addresses
    wrong = {n: resolved.get(n) for n, address in expected.items() if resolved.get(n) != [address]}
    assert not wrong, f"on {name}, names resolved to the wrong (or no) address: {wrong}"
    # sanity: the check saw every name of all 6 nodes (pg-1, p1, pg_patroni1, etcd1, ...)
    assert len(resolved) == len(expected) >= len(CLUSTER.nodes)


@pytest.mark.parametrize("name", lab_params(LAB_NAMES))
def test_own_hostname_resolves(lab_hosts, name):
    """Not in the brief's list: lab.etc_hosts() promises "itself on 127.0.1.1"; the container's
    hostname (/etc/hostname, '_' -> '-') must resolve (hostname -f, sudo, Patroni's defaults)."""
    host = lab_hosts[name]
    hostname = host.run("hostname").stdout.strip()
    assert hostname == name.replace("_", "-")
    result = host.run(f"getent ahostsv4 {hostname} | awk '{{print $1}}' | sort -u")
    assert result.stdout.split() in ([node(name).address], ["127.0.1.1"]), (
        f"{name}: its hostname {hostname!r} resolves to {result.stdout.split()}"
    )


def test_pyinfra_reaches_every_container_over_ssh():
    from pgha.components import GROUPS

    limits = [argument for group in GROUPS for argument in ("--limit", group)]
    rc, output = helpers.run_pyinfra(helpers.INVENTORY, "fact", "server.Hostname", *limits, timeout=300)
    assert rc == 0, helpers.tail(output)
    hostnames = helpers.fact_data(output, "server.Hostname")
    assert hostnames == {name: name.replace("_", "-") for name in LAB_NAMES}


@pytest.mark.destructive
def test_second_lxc_hosts_run_changes_nothing():
    # A dry run first: a run that did change a container's files would also restart that
    # container (and stop the services running in it), so only go on when nothing is pending.
    rc, pending, output = helpers.dry_run_changes(
        helpers.INVENTORY, "deploys/lxc_hosts.py", "--limit", "lxc_hosts"
    )
    assert rc == 0, helpers.tail(output)
    assert "Detected changes" in output, helpers.tail(output)
    assert not pending, "lxc_hosts would change (and restart) containers:\n" + "\n".join(pending)

    rc, output = helpers.run_pyinfra(
        helpers.INVENTORY, "deploys/lxc_hosts.py", "--limit", "lxc_hosts", timeout=900
    )
    assert rc == 0, helpers.tail(output)
    assert helpers.grand_total(output)["hosts"] > 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, "\n".join(
        helpers.changed_operation_rows(output)
    )
