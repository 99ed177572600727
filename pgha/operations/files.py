"""Put a rendered configuration file in place only after its daemon's checker accepted it."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Sha1File


@operation()
def validated_copy(candidate: str, live: str, validate: str, user: str, group: str, mode: str):
    """Copy ``candidate`` over ``live`` when they differ, once ``validate`` (a command that
    fails on a bad file) has accepted it. A rejected file never goes live."""
    if host.get_fact(Sha1File, path=candidate) == host.get_fact(Sha1File, path=live):
        host.noop(f"{live} is up to date")
        return
    yield validate
    yield (
        f"install -o {shlex.quote(user)} -g {shlex.quote(group)} -m {shlex.quote(mode)} "
        f"{shlex.quote(candidate)} {shlex.quote(live)}"
    )
