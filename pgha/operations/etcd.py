"""Operations on the etcd cluster, run on an etcd member with etcdctl."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from pgha.facts.etcd import EtcdHealth, EtcdMembers
from pgha.operations.checks import executing, poll

LOCAL = "http://127.0.0.1:2379"


def _etcdctl(endpoints: str) -> str:
    return f"ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=10s --endpoints={shlex.quote(endpoints)}"


@operation()
def member_added(member: str, peer_url: str, endpoints: str):
    """``member`` is in the running cluster reached through ``endpoints`` (etcdctl member add)."""
    members = host.get_fact(EtcdMembers, endpoints=endpoints) or []
    if any(peer_url in m["peerURLs"] for m in members):
        host.noop(f"etcd member {member} ({peer_url}) is in the cluster")
        return
    yield f"{_etcdctl(endpoints)} member add {shlex.quote(member)} --peer-urls={shlex.quote(peer_url)}"


@operation()
def members_removed(peer_urls: list[str], endpoints: str = LOCAL):
    """No member of the running cluster advertises one of ``peer_urls`` (etcdctl member remove)."""
    members = host.get_fact(EtcdMembers, endpoints=endpoints) or []
    removed = [m for m in members if set(m["peerURLs"]) & set(peer_urls)]
    if not removed:
        host.noop("no etcd member to remove")
        return
    for member in removed:
        yield f"{_etcdctl(endpoints)} member remove {member['ID']}"


@operation()
def cluster_healthy(expected: dict[str, str], timeout: float = 60):
    """Every member in ``expected`` (name: client URL) is healthy, and this member's list of
    members is exactly ``expected``. Changes nothing; fails the deploy otherwise."""
    if not executing():
        return

    def probe():
        members = host.get_fact(EtcdMembers, endpoints=LOCAL)
        if members is None:
            return False, f"etcd on {host.name} does not answer on {LOCAL}"
        seen = {m["name"]: ",".join(m["clientURLs"]) for m in members}
        if seen != expected:
            return False, f"etcd member list on {host.name} is {seen}, expected {expected}"
        health = host.get_fact(EtcdHealth, endpoints=LOCAL)
        unhealthy = sorted(name for name, url in expected.items() if not health.get(url))
        if unhealthy:
            return False, "etcd members not healthy: " + ", ".join(
                f"{name} ({expected[name]})" for name in unhealthy
            )
        return True, f"etcd: {len(expected)} healthy members, same list: {', '.join(sorted(expected))}"

    host.noop(poll(probe, timeout))
    yield from ()
