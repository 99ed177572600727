"""Operations on the etcd cluster, run on an etcd member with etcdctl."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from pgha.common import snapshot
from pgha.common.checks import check_until, executing
from pgha.common.operations import file_sha1
from pgha.etcd.facts import EtcdAuth, EtcdHealth, EtcdMembers, make_etcdctl_command, prefix_end
from pgha.etcd.values import peer_address

# a member add or remove waits for the cluster to agree: longer than a read
CHANGE_TIMEOUT = 10


@operation()
def member_added(member: str, peer_url: str, endpoints: str, user: str, password_file: str):
    """``member`` is in the running cluster reached through ``endpoints`` (etcdctl member add)."""
    login: dict = {"user": user, "password_file": password_file}
    members = snapshot.get(EtcdMembers, endpoints=endpoints, **login) or []
    if any(peer_url in m["peerURLs"] for m in members):
        host.noop(f"etcd member {member} ({peer_url}) is in the cluster")
        return
    yield make_etcdctl_command(
        endpoints, "member", "add", member, f"--peer-urls={peer_url}", command_timeout=CHANGE_TIMEOUT, **login
    )


@operation()
def members_removed(peer_urls: list[str], endpoints: str, user: str, password_file: str):
    """No member of the running cluster advertises one of ``peer_urls`` (etcdctl member remove)."""
    login: dict = {"user": user, "password_file": password_file}
    members = snapshot.get(EtcdMembers, endpoints=endpoints, **login) or []
    removed = [m for m in members if set(m["peerURLs"]) & set(peer_urls)]
    if not removed:
        host.noop("no etcd member to remove")
        return
    for member in removed:
        yield make_etcdctl_command(endpoints, "member", "remove", member["ID"], command_timeout=CHANGE_TIMEOUT, **login)


@operation()
def restarted(member: str, peer_url: str, endpoints: str, user: str, password_file: str):
    """Restart the member (run it with ``_serial=True``: one member at a time keeps the
    quorum). A member whose peer URL is still plaintext gets ``peer_url`` first
    (etcdctl member update, through ``endpoints``, its own client URL as it runs now):
    etcd's documented way to move a running member's peer URL, taking effect at the restart."""
    login: dict = {"user": user, "password_file": password_file}
    members = host.get_fact(EtcdMembers, endpoints=endpoints, **login) or []
    own = next((m for m in members if peer_address(peer_url) in map(peer_address, m["peerURLs"])), None)
    if own and peer_url not in own["peerURLs"]:
        yield make_etcdctl_command(
            endpoints, "member", "update", own["ID"], f"--peer-urls={peer_url}", command_timeout=CHANGE_TIMEOUT, **login
        )
    yield "systemctl restart etcd.service"


def _auth(endpoints: str, login: dict, asked: dict | None, users: list[str], roles: list[str]) -> dict:
    """EtcdAuth for ``users`` and ``roles``, or for ``asked`` (every user and role the deploy
    keeps: one query that role_present, user_present and auth_enabled share)."""
    asked = asked or {"users": users, "roles": roles}
    return snapshot.get(EtcdAuth, endpoints=endpoints, users=asked["users"], roles=asked["roles"], **login)


@operation()
def role_present(role: str, grants: list[list[str]], endpoints: str, user: str, password_file: str,
                 asked: dict | None = None):
    """etcd role ``role`` exists with exactly ``grants`` ([permission, key prefix], each
    granted with --prefix)."""
    login: dict = {"user": user, "password_file": password_file}
    auth = _auth(endpoints, login, asked, [], [role])
    current = auth["roles"].get(role)
    wanted = [[permission, prefix, prefix_end(prefix)] for permission, prefix in grants]
    if current is not None and sorted(current) == sorted(wanted):
        host.noop(f"etcd role {role} has {', '.join(f'{p} {k}*' for p, k, _ in wanted)}")
        return
    if current is None:
        yield make_etcdctl_command(endpoints, "role", "add", role, **login)
    for permission, key, end in current or []:
        if [permission, key, end] not in wanted:
            yield make_etcdctl_command(endpoints, "role", "revoke-permission", role, *_range(key, end), **login)
    for permission, prefix, end in wanted:
        if [permission, prefix, end] not in (current or []):
            yield make_etcdctl_command(endpoints, "role", "grant-permission", role, permission, prefix, "--prefix", **login)


@operation()
def user_present(username: str, roles: list[str], wanted_file: str, current_file: str, endpoints: str, user: str,
                 password_file: str, asked: dict | None = None):
    """etcd user ``username`` exists with exactly ``roles`` and the password in
    ``wanted_file`` (0600 on the host). ``current_file`` holds the password etcd has now:
    the user is added, or its password changed (user passwd), from ``wanted_file`` on
    etcdctl's standard input, then ``wanted_file`` becomes ``current_file``. etcdctl logs in
    as ``user`` (``password_file``); for root's own rotation that is the old password,
    then the new one."""
    login: dict = {"user": user, "password_file": password_file}
    auth = _auth(endpoints, login, asked, [username], [])
    current = auth["users"].get(username)
    rotated = file_sha1(wanted_file) != file_sha1(current_file)
    if current is not None and not rotated and sorted(current) == sorted(roles):
        host.noop(f"etcd user {username} has the roles {', '.join(roles)} and its password")
        return
    stdin = f" < {shlex.quote(wanted_file)}"
    if current is None:
        yield make_etcdctl_command(endpoints, "user", "add", username, "--interactive=false", **login) + stdin
    elif rotated:
        yield make_etcdctl_command(endpoints, "user", "passwd", username, "--interactive=false", **login) + stdin
    if current is None or rotated:
        yield f"install -o root -g root -m 600 {shlex.quote(wanted_file)} {shlex.quote(current_file)}"
    for role in current or []:
        if role not in roles:
            yield make_etcdctl_command(endpoints, "user", "revoke-role", username, role, **login)
    for role in roles:
        if role not in (current or []):
            yield make_etcdctl_command(endpoints, "user", "grant-role", username, role, **login)


def _range(key: str, end: str) -> list[str]:
    """etcdctl's arguments for the key range [key, end) as etcd stores it."""
    if not end:
        return [key]
    if end == "\0":
        return [key, "--from-key"]
    return [key, "--prefix"] if end == prefix_end(key) else [key, end]


@operation()
def auth_enabled(endpoints: str, user: str, password_file: str, asked: dict | None = None):
    """etcd refuses clients that do not log in (etcdctl auth enable; root must exist)."""
    login: dict = {"user": user, "password_file": password_file}
    if _auth(endpoints, login, asked, [], [])["enabled"]:
        host.noop("etcd authentication is enabled")
        return
    yield make_etcdctl_command(endpoints, "auth", "enable", **login)


@operation()
def cluster_healthy(expected: dict[str, str], endpoints: str, timeout: float, user: str, password_file: str,
                    health: bool = True):
    """The member list seen through ``endpoints`` is exactly ``expected`` (name: client
    URL), and with ``health`` every member answers healthy (`endpoint health --cluster`:
    asked on one member, it covers them all). Changes nothing; fails the deploy when that
    does not hold within ``timeout`` seconds."""
    if not executing():
        return

    login: dict = {"user": user, "password_file": password_file}
    ask = snapshot.first_then_live()

    def probe():
        members = ask(EtcdMembers, endpoints=endpoints, **login)
        if members is None:
            return False, f"etcd on {host.name} does not answer on {endpoints}"
        seen = {m["name"]: ",".join(m["clientURLs"]) for m in members}
        if seen != expected:
            return False, f"etcd member list on {host.name} is {seen}, expected {expected}"
        if not health:
            return True, f"etcd: {host.name} lists the {len(expected)} members: {', '.join(sorted(expected))}"
        states = ask(EtcdHealth, endpoints=endpoints, **login)
        unhealthy = sorted(name for name, url in expected.items() if not states.get(url))
        if unhealthy:
            return False, "etcd members not healthy: " + ", ".join(
                f"{name} ({expected[name]})" for name in unhealthy
            )
        return True, f"etcd: {len(expected)} healthy members, same list: {', '.join(sorted(expected))}"

    host.noop(check_until(probe, timeout))
    yield from ()
