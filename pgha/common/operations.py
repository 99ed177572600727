"""Operations every component uses: a validated copy of a rendered file, a barrier between
roles, the node's Debian release."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import File, Sha1File
from pyinfra.facts.server import LinuxDistribution


@operation()
def validated_copy(candidate: str, live: str, validate: str, user: str, group: str, mode: str):
    """Copy ``candidate`` over ``live`` when they differ, once ``validate`` (a command that
    fails on a bad file) has accepted it. A rejected file never goes live. Same content
    with another owner or mode: only those are set."""
    if host.get_fact(Sha1File, path=candidate) == host.get_fact(Sha1File, path=live):
        current = host.get_fact(File, path=live) or {}
        if (current.get("user"), current.get("group"), str(current.get("mode"))) == (user, group, str(int(mode))):
            host.noop(f"{live} is up to date")
            return
        yield f"chown {shlex.quote(user)}:{shlex.quote(group)} {shlex.quote(live)}"
        yield f"chmod {shlex.quote(mode)} {shlex.quote(live)}"
        return
    yield validate
    yield (
        f"install -o {shlex.quote(user)} -g {shlex.quote(group)} -m {shlex.quote(mode)} "
        f"{shlex.quote(candidate)} {shlex.quote(live)}"
    )


@operation()
def barrier(what: str):
    """Changes nothing. Registered on every host between two roles: pyinfra orders
    operations host by host, so a step every host shares makes the next role wait for the
    previous one everywhere (e.g. Patroni starts only once etcd is healthy)."""
    host.noop(what)
    yield from ()


@operation()
def release_is(expected: str):
    """The node runs Debian ``expected`` (debian_release): the deploy installs that release's
    packages, and never upgrades a node from one release to another."""
    found = ((host.get_fact(LinuxDistribution) or {}).get("release_meta") or {}).get("VERSION_CODENAME")
    if found != expected:
        raise OperationError(
            f"{host.name} runs Debian {found or '(unknown release)'}, but debian_release = "
            f"{expected!r}: expected the release the nodes run (this deploy does not upgrade "
            "a node from one release to another)"
        )
    host.noop(f"{host.name} runs Debian {expected}")
    yield from ()
