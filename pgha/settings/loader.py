"""The one way from an inventory to a checked Cluster, used by inventory.py (before pyinfra
connects to any host), the deploy files, the CLI, the drills and the tests.

group_data/ is read the way pyinfra reads it; the secrets file is created on first use,
checked with the settings (one list of problems) and carried by the Cluster.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from pgha import PROJECT_ROOT, secrets
from pgha.errors import ConfigError
from pgha.settings.checks import check
from pgha.settings.topology import GROUPS, Cluster

DEFAULT_INVENTORY = PROJECT_ROOT / "inventory.py"


def load_group_data(directory: str | Path) -> dict[str, Any]:
    """group_data/all.py's public, non-module globals (what pyinfra gives every host)."""
    path = Path(directory) / "all.py"
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("__") and not isinstance(v, types.ModuleType)
    }


def checked_cluster(groups: dict[str, Any], data: dict[str, Any]) -> Cluster:
    """Settings, topology and secrets checked together; every problem reported at once. A
    missing secrets file is reported, not created (check_inventory creates it)."""
    problems: list[str] = []
    cluster = None
    try:
        cluster = check(groups, data)
    except ConfigError as error:
        problems += error.problems
    problems += secrets.problems()
    if problems:
        raise ConfigError(problems)
    cluster.secrets = secrets.read()
    return cluster


def check_inventory(inventory_file: str | Path, groups: dict[str, Any],
                    overrides: dict[str, Any] | None = None) -> Cluster:
    """Called by an inventory file with its own groups: the group_data beside it, with
    ``overrides`` applied, checked before pyinfra connects to any host."""
    data = load_group_data(Path(inventory_file).resolve().parent / "group_data")
    secrets.ensure()
    return checked_cluster(groups, {**data, **(overrides or {})})


def load_cluster(inventory: str | Path = DEFAULT_INVENTORY,
                 overrides: dict[str, Any] | None = None) -> Cluster:
    """The checked Cluster of an inventory file (executed as pyinfra executes it)."""
    path = Path(inventory).resolve()
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "pgha_inventory"}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    groups = {group: namespace.get(group, []) for group in GROUPS}
    return check_inventory(path, groups, overrides)


_current: dict[str, Cluster] = {}


def current() -> Cluster:
    """The checked Cluster of the running pyinfra deploy (its --data overrides included)."""
    from pyinfra import host, inventory

    groups = {
        group: [(h.name, dict(h.data.dict())) for h in inventory.get_group(group, [])]
        for group in GROUPS
    }
    data = dict(host.data.dict())
    key = repr((groups, sorted(data.items())))
    if key not in _current:
        _current[key] = checked_cluster(groups, data)
    return _current[key]
