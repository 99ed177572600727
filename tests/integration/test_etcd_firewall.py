"""A second fence besides etcd's TLS and users: a firewall on each member (nftables, only
its own table) lets the client port answer the Patroni nodes, the etcd members and
etcd_client_networks (the lab host) only, and the peer port the etcd members only."""

from __future__ import annotations

import subprocess

import helpers
import pytest
from conftest import CLUSTER

from pgha.pki.values import CA_FILE

pytestmark = pytest.mark.needs_lxc

# an address on the lab bridge that no setting allows (outside the DHCP range too)
STRANGER = "10.0.3.250"
BRIDGE = CLUSTER.settings.get("lab_bridge")
CLIENT_PORT = CLUSTER.settings["etcd_client_port"]
PEER_PORT = CLUSTER.settings["etcd_peer_port"]


def _curl(url: str, source: str | None = None) -> subprocess.CompletedProcess:
    # etcd's /health answers without a login; its certificate is the cluster CA's
    ca = str(CLUSTER.tls[CLUSTER.etcd[0].name].ca)
    args = ["curl", "-s", "-m", "3", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"]
    if source:
        args += ["--interface", source]
    return subprocess.run(args + [url], capture_output=True, text=True)


@pytest.fixture(scope="module")
def stranger_address():
    with helpers.address_on_lab_bridge(STRANGER, BRIDGE) as address:
        yield address


@pytest.mark.parametrize("node", CLUSTER.etcd, ids=lambda n: n.name)
def test_allowed_client_reaches_etcd(node):
    result = _curl(f"https://{node.address}:{CLIENT_PORT}/health")
    assert result.stdout == "200", result


@pytest.mark.parametrize("node", CLUSTER.etcd, ids=lambda n: n.name)
def test_other_addresses_are_refused(node, stranger_address):
    for port in (CLIENT_PORT, PEER_PORT):
        result = _curl(f"https://{node.address}:{port}/health", source=stranger_address)
        assert result.stdout == "000" and result.returncode != 0, (port, result)
    # the same machine from its allowed address still gets in
    assert _curl(f"https://{node.address}:{CLIENT_PORT}/health").stdout == "200"


@pytest.mark.parametrize("node", CLUSTER.etcd, ids=lambda n: n.name)
def test_lab_host_cannot_use_the_peer_port(node):
    result = _curl(f"https://{node.address}:{PEER_PORT}/members")
    assert result.stdout == "000" and result.returncode != 0, result


def test_patroni_nodes_reach_etcd_through_their_proxy(patroni_hosts):
    for name, host in patroni_hosts.items():
        out = host.check_output(f"curl -s -m 3 --cacert {CA_FILE} -o /dev/null -w '%{{http_code}}' https://127.0.0.1:{CLIENT_PORT}/health")
        assert out == "200", name
