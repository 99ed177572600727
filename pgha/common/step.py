"""A deploy step: pyinfra's @deploy (the names of the operations it registers start with
the step's name, "etcd: configure | ..."), typed as what it does (pyinfra 3 types a deploy as
an operation taking pyinfra's global arguments first, which mypy then reads wrongly)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from pyinfra.api import deploy

F = TypeVar("F", bound=Callable[..., Any])


def step(name: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], deploy(name))
