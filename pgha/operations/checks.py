"""Checks run as the last operations of a deploy: they change nothing and fail loudly.

A check is evaluated when the deploy executes (not while pyinfra plans it, when the
services may not exist yet), polls until its condition holds or its timeout runs out, and
reports its finding with host.noop, so a converged cluster still counts zero changes.
"""

from __future__ import annotations

import time
from typing import Callable

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError
from pyinfra.api.state import StateStage


def executing() -> bool:
    return host.state.current_stage == StateStage.Execute


def poll(probe: Callable[[], tuple[bool, str]], timeout: float, interval: float = 1.0) -> str:
    """Call ``probe`` until it returns (True, message); raise with its last message."""
    deadline = time.monotonic() + timeout
    while True:
        ok, message = probe()
        if ok:
            return message
        if time.monotonic() >= deadline:
            raise OperationError(f"{message} (still so after {timeout:.0f}s)")
        time.sleep(interval)


@operation()
def barrier(what: str):
    """Changes nothing. Registered on every host between two roles: pyinfra orders
    operations host by host, so a step every host shares makes the next role wait for the
    previous one everywhere (e.g. Patroni starts only once etcd is healthy)."""
    host.noop(what)
    yield from ()
