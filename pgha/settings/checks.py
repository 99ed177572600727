"""The checks across settings and topology. `check(groups, data)` returns the checked
Cluster or raises ConfigError listing every problem; each names the setting, the bad value
and what is expected.
"""

from __future__ import annotations

import difflib
from typing import Any

from pgha import components
from pgha.cluster import Cluster
from pgha.errors import ConfigError
from pgha.postgres.parameters import RENAMED, catalogue, versions
from pgha.releases import RELEASES
from pgha.settings import extensions
from pgha.settings.hosts import group_problems, host_data_problems
from pgha.settings.schema import RENAMED_SETTINGS, all_settings, cluster_settings, host_data
from pgha.settings.topology import host_entries, nodes_from_groups
from pgha.validators import is_port


def _check_types(data: dict[str, Any], schema: dict, problems: list[str]) -> None:
    for key in sorted(schema):
        is_valid, expected = schema[key]
        if key not in data:
            problems.append(f"group_data: setting {key!r} is missing: expected {expected}")
        elif not is_valid(data[key]):
            problems.append(f"group_data: {key} = {data[key]!r}: expected {expected}")


def _check_unknown_keys(data: dict[str, Any], problems: list[str]) -> None:
    settings, known_host_data = all_settings(), host_data()
    for key in data:
        if key in settings or key in known_host_data or key.startswith(("ssh_", "_")):
            continue
        if key in RENAMED_SETTINGS:
            problems.append(f"group_data: setting {key!r} was renamed: use {RENAMED_SETTINGS[key]}")
            continue
        setting = difflib.get_close_matches(key, list(settings), n=1, cutoff=0.8)
        pg_names = _pg_parameter_names(data.get("postgresql_version"))
        if setting:
            hint = setting[0]
        elif key in pg_names:
            hint = f"postgresql_parameters[{key!r}] (PostgreSQL parameters belong in that mapping)"
        else:
            close = difflib.get_close_matches(key, pg_names + list(RENAMED), n=1, cutoff=0.8)
            name = RENAMED.get(close[0], close[0]) if close else None
            hint = f"{name}, inside postgresql_parameters" if name else ""
        if hint:
            problems.append(f"group_data: unknown setting {key!r}: did you mean {hint}?")


def _pg_parameter_names(version: Any) -> list[str]:
    """The PostgreSQL parameters of ``version`` (of every catalogued version if unknown)."""
    chosen = [version] if version in versions() else versions()
    return sorted({name for v in chosen for name in catalogue(v)})


def _check_topology(cluster: Cluster, problems: list[str]) -> None:
    """Distinct addresses, names and ports."""
    nodes = cluster.nodes
    seen_addresses: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    for node in nodes:
        other = seen_addresses.setdefault(node.address, node.name)
        if other != node.name:
            problems.append(
                f"inventory: address {node.address} is used by both {other!r} and "
                f"{node.name!r}: expected a distinct address per host"
            )
        for name in node.all_names:
            owner = seen_names.setdefault(name, node.name)
            if owner != node.name:
                problems.append(
                    f"inventory: host name {name!r} is used by both {owner!r} and "
                    f"{node.name!r}: expected distinct names"
                )

    for node in nodes:
        by_port: dict[int, str] = {}
        for setting, port in components.ports_of(cluster, node).items():
            if port is None or not is_port(port):
                continue  # already reported by the type check
            if port in by_port:
                problems.append(
                    f"group_data: {setting} = {port} and {by_port[port]} = {port} both listen "
                    f"on host {node.name!r}: expected a distinct port per service"
                )
            by_port.setdefault(port, setting)


def _resolve_release(s: dict[str, Any], problems: list[str]) -> None:
    """postgresql_version None follows the release; another must be one the release ships."""
    if "postgresql_version" not in s or s.get("debian_release") not in RELEASES:
        return  # reported by the type check
    if not cluster_settings()["postgresql_version"][0](s["postgresql_version"]):
        return
    shipped = RELEASES[s["debian_release"]]
    version = s["postgresql_version"]
    if version is None:
        s["postgresql_version"] = shipped.default_postgresql
    elif version not in shipped.postgresql:
        problems.append(
            f"group_data: postgresql_version = {version!r}: Debian {shipped.name} ships PostgreSQL "
            f"{', '.join(map(str, shipped.postgresql))}: expected one of those, or None to follow "
            "debian_release"
        )


def check(groups: dict[str, Any], data: dict[str, Any], extension_data: dict[str, dict] | None = None,
          group_names=()) -> Cluster:
    """Check the inventory groups (host data as written), the cluster's settings and, for
    each registered extension whose group has hosts (the lab), its settings as that group's
    host sees them (``extension_data``: group -> data, default ``data``); return the
    topology or raise ConfigError with every problem."""
    problems: list[str] = []
    _check_types(data, cluster_settings(), problems)
    present = [e for e in extensions.EXTENSIONS.values() if host_entries(groups.get(e.group, []))]
    settings = dict(data)
    for extension in present:
        own = (extension_data or {}).get(extension.group, data)
        _check_types(own, extension.settings, problems)
        settings.update({k: own[k] for k in extension.settings if k in own})
    _check_unknown_keys(data, problems)
    problems += host_data_problems(groups)
    problems += group_problems(group_names)
    cluster = Cluster(settings=settings, groups=nodes_from_groups(groups, problems))
    _resolve_release(cluster.settings, problems)
    _check_topology(cluster, problems)
    problems += components.problems(cluster)
    for extension in present:
        if extension.problems:
            problems += extension.problems(cluster)
    if problems:
        raise ConfigError(problems)
    return cluster
