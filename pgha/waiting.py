"""Waiting for a condition until a deadline: the one loop every other module uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgha.errors import WaitTimeout


def wait_for(probe: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Call ``probe`` until it returns something truthy or ``timeout`` seconds pass;
    return its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def poll(probe: Callable[[], tuple[bool, str]], timeout: float, interval: float = 1.0) -> str:
    """Call ``probe`` until it returns (True, message) and return that message; raise
    WaitTimeout with its last message when ``timeout`` seconds pass first."""
    last: list[str] = [""]

    def ok() -> bool:
        passed, last[0] = probe()
        return passed

    if wait_for(ok, timeout, interval):
        return last[0]
    raise WaitTimeout(f"{last[0]} (still so after {timeout:.0f}s)")
