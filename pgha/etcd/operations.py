"""Operations on the etcd cluster, run on an etcd member with etcdctl."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from pgha.common.checks import check_until, executing
from pgha.etcd.facts import EtcdHealth, EtcdMembers, make_etcdctl_command

# a member add or remove waits for the cluster to agree: longer than a read
CHANGE_TIMEOUT = 10


@operation()
def member_added(member: str, peer_url: str, endpoints: str):
    """``member`` is in the running cluster reached through ``endpoints`` (etcdctl member add)."""
    members = host.get_fact(EtcdMembers, endpoints=endpoints) or []
    if any(peer_url in m["peerURLs"] for m in members):
        host.noop(f"etcd member {member} ({peer_url}) is in the cluster")
        return
    yield make_etcdctl_command(
        endpoints, "member", "add", member, f"--peer-urls={peer_url}", command_timeout=CHANGE_TIMEOUT
    )


@operation()
def members_removed(peer_urls: list[str], endpoints: str):
    """No member of the running cluster advertises one of ``peer_urls`` (etcdctl member remove)."""
    members = host.get_fact(EtcdMembers, endpoints=endpoints) or []
    removed = [m for m in members if set(m["peerURLs"]) & set(peer_urls)]
    if not removed:
        host.noop("no etcd member to remove")
        return
    for member in removed:
        yield make_etcdctl_command(endpoints, "member", "remove", member["ID"], command_timeout=CHANGE_TIMEOUT)


@operation()
def cluster_healthy(expected: dict[str, str], endpoints: str, timeout: float):
    """Every member in ``expected`` (name: client URL) is healthy, and the member list seen
    through ``endpoints`` is exactly ``expected``. Changes nothing; fails the deploy when
    that does not hold within ``timeout`` seconds."""
    if not executing():
        return

    def probe():
        members = host.get_fact(EtcdMembers, endpoints=endpoints)
        if members is None:
            return False, f"etcd on {host.name} does not answer on {endpoints}"
        seen = {m["name"]: ",".join(m["clientURLs"]) for m in members}
        if seen != expected:
            return False, f"etcd member list on {host.name} is {seen}, expected {expected}"
        health = host.get_fact(EtcdHealth, endpoints=endpoints)
        unhealthy = sorted(name for name, url in expected.items() if not health.get(url))
        if unhealthy:
            return False, "etcd members not healthy: " + ", ".join(
                f"{name} ({expected[name]})" for name in unhealthy
            )
        return True, f"etcd: {len(expected)} healthy members, same list: {', '.join(sorted(expected))}"

    host.noop(check_until(probe, timeout))
    yield from ()
