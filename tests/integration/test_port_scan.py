"""Every TCP port of every node scanned (issue 13): from this machine (in client_networks and
etcd_client_networks) exactly the cluster's service ports and SSH answer (the exporters' ports
answer the monitoring host only: test_monitoring.py reaches them from there); from an address
outside every allowed network, only SSH does.

A full connect scan (1-65535) per node, 2000 connections at once (about 5-10 s a node): a
closed or refused port answers with a TCP reset, so little waits for a timeout.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import time

import helpers
import pytest
from conftest import CLUSTER

pytestmark = pytest.mark.needs_lxc

OUTSIDER = "10.0.3.249"  # on the lab bridge, in no allowed network and outside the DHCP range
BRIDGE = CLUSTER.settings.get("lab_bridge")
S = CLUSTER.settings


def _ssh_port(node) -> int:
    return int(node.ssh.get("ssh_port") or 22)


def expected_from_clients(node) -> set[int]:
    """What a client network sees: SSH, and on each role the ports meant for clients (the
    etcd peer port answers the members only; HAProxy's etcd proxy listens on 127.0.0.1):
    on a Patroni node HAProxy's, PostgreSQL's, the REST API's and PgBouncer's."""
    ports = {_ssh_port(node)}
    if "etcd" in node.groups:
        ports.add(S["etcd_client_port"])
    if "patroni" in node.groups:
        ports |= {S[k] for k in ("haproxy_rw_port", "haproxy_ro_port", "haproxy_stats_port",
                                 "postgresql_port", "patroni_restapi_port", "pgbouncer_port")}
    if "monitor" in node.groups:
        ports |= {S["prometheus_port"], S["alertmanager_port"]}
    return ports


def scan(address: str, source: str | None = None, batch: int = 2000, timeout: float = 3.0) -> set[int]:
    """The TCP ports of ``address`` that accept a connection (from ``source`` if given): a
    non-blocking connect to every port, ``batch`` at a time, waited for with epoll."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < batch + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, batch + 100), hard))
    ports = range(1, 65536)
    found: set[int] = set()
    for first in range(0, len(ports), batch):
        poller = select.epoll()
        pending: dict[int, tuple[socket.socket, int]] = {}
        for port in ports[first:first + batch]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            if source:
                sock.bind((source, 0))
            if sock.connect_ex((address, port)) not in (0, errno.EINPROGRESS):
                sock.close()
                continue
            pending[sock.fileno()] = (sock, port)
            poller.register(sock.fileno(), select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(0.0, deadline - time.monotonic())):
                sock, port = pending.pop(fd)
                poller.unregister(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    found.add(port)
                sock.close()
        for sock, _ in pending.values():  # no answer in time: filtered, not open
            sock.close()
        poller.close()
    return found


@pytest.fixture(scope="module")
def outsider():
    with helpers.address_on_lab_bridge(OUTSIDER, BRIDGE) as address:
        yield address


def test_outsider_is_in_no_allowed_network():
    import ipaddress

    allowed = [*S["client_networks"], *S["etcd_client_networks"]]
    assert not any(ipaddress.ip_address(OUTSIDER) in ipaddress.ip_network(n) for n in allowed)


@pytest.mark.parametrize("node", CLUSTER.nodes, ids=lambda n: n.name)
def test_scan_from_a_client_network_finds_exactly_the_service_ports(node):
    assert scan(node.address) == expected_from_clients(node)


@pytest.mark.parametrize("node", CLUSTER.nodes, ids=lambda n: n.name)
def test_scan_from_outside_finds_only_ssh(outsider, node):
    assert scan(node.address, source=outsider) == {_ssh_port(node)}
