"""Checks run as the last operations of a deploy: they change nothing and fail loudly.

A check is evaluated when the deploy executes (not while pyinfra plans it, when the
services may not exist yet), polls until its condition holds or its timeout runs out, and
reports its finding with host.noop, so a converged cluster still counts zero changes.
"""

from __future__ import annotations

from collections.abc import Callable

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.api.state import StateStage

from pgha.errors import WaitTimeout
from pgha.waiting import poll


def executing() -> bool:
    return host.state.current_stage == StateStage.Execute


def check_until(probe: Callable[[], tuple[bool, str]], timeout: float, interval: float = 1.0) -> str:
    """pgha.waiting.poll, failing the operation (pyinfra's own error) on timeout."""
    try:
        return poll(probe, timeout, interval)
    except WaitTimeout as error:
        raise OperationError(str(error)) from None
