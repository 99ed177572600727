"""What a package outside the product (the lab, pghalab) may add to the inventory checks:
its own inventory group (whose hosts are not the cluster's), settings read from that
group's host, host data keys on the cluster's hosts, and checks run when its group has
hosts. It registers itself when imported (the lab's inventory imports it), so pgha never
imports it and a user's inventory never meets it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgha.validators import Setting


@dataclass(frozen=True)
class Extension:
    name: str
    group: str
    settings: dict[str, Setting] = field(default_factory=dict)
    host_data: dict[str, Setting] = field(default_factory=dict)
    problems: Callable | None = None  # (cluster) -> list[str], with its group's settings


EXTENSIONS: dict[str, Extension] = {}


def register(extension: Extension) -> None:
    EXTENSIONS[extension.name] = extension


def groups() -> list[str]:
    return [e.group for e in EXTENSIONS.values()]


def settings() -> dict[str, Setting]:
    return {k: v for e in EXTENSIONS.values() for k, v in e.settings.items()}


def host_data() -> dict[str, Setting]:
    return {k: v for e in EXTENSIONS.values() for k, v in e.host_data.items()}
