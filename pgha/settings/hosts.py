"""The inventory's own checks: host data (known keys, their types), group names, and
settings that every host of the cluster must see alike."""

from __future__ import annotations

import difflib
from typing import Any

from pgha.components import GROUPS
from pgha.remote import REFUSED as REFUSED_SSH
from pgha.settings import extensions
from pgha.settings.schema import all_settings, cluster_settings, host_data, ssh_data_keys
from pgha.settings.topology import host_entries


def known_groups() -> tuple[str, ...]:
    return (*GROUPS, *extensions.groups(), "all")


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f": did you mean {close[0]!r}?" if close else ""


def host_data_problems(groups: dict[str, Any]) -> list[str]:
    """Each host's own data: known keys only, each of the right type."""
    problems: list[str] = []
    ssh_keys = ssh_data_keys()
    schema = host_data()
    settings = all_settings()
    known = set(schema) | ssh_keys
    seen: set[str] = set()
    extension_groups = extensions.groups()
    for group in (*GROUPS, *extension_groups):
        for name, data in host_entries(groups.get(group, [])):
            if name in seen or not isinstance(data, dict):
                continue
            seen.add(name)
            for key, value in data.items():
                if key.startswith("_"):
                    continue  # pyinfra's own arguments (_sudo, ...)
                if key in REFUSED_SSH:
                    problems.append(
                        f"inventory: host {name!r} sets {key}: pgha's commands over SSH (pgha backup, "
                        f"restore, reinit, status) cannot be given {REFUSED_SSH[key]}"
                    )
                elif key in settings:
                    problems.append(
                        f"inventory: host {name!r} sets {key!r} in its host data: expected it in "
                        "group_data (a setting of the whole cluster, not of one host)"
                    )
                elif key not in known:
                    expected = f"host data pgha knows ({', '.join(schema)}) or pyinfra's ssh_* keys"
                    problems.append(
                        f"inventory: host {name!r} has unknown host data {key!r}"
                        f"{_did_you_mean(key, known)} (expected {expected})"
                    )
                elif key in schema and not schema[key][0](value):
                    problems.append(
                        f"inventory: host {name!r} has {key} = {value!r}: expected {schema[key][1]}"
                    )
            targets = {data.get("address"), data.get("dns_name")} - {None}
            if group not in extension_groups and targets and "ssh_hostname" not in data and name not in targets:
                problems.append(
                    f"inventory: host {name!r} has address {data.get('address')!r} but no ssh_hostname: "
                    f"pyinfra would connect to {name!r} (its inventory name): expected ssh_hostname "
                    "set to its address or DNS name (pgha.hosts.host() sets it)"
                )
    return problems


def duplicate_names(groups: dict[str, Any]) -> list[str]:
    """Host names as the inventory file writes them, before pyinfra keeps one host per name
    (a second host of the same name would vanish without a word)."""
    problems: list[str] = []
    seen: dict[str, tuple[str, Any]] = {}
    for group, entries in groups.items():
        if group == "all":
            continue
        in_group: set[str] = set()
        for name, data in host_entries(entries):
            where = data.get("address") or data.get("ssh_hostname") if isinstance(data, dict) else None
            if name in in_group:
                problems.append(f"inventory: host {name!r} is listed twice in group {group!r}: pyinfra would keep one "
                                "and drop the other: expected each host once, each with a name of its own")
            elif name in seen and seen[name][1] != where:
                problems.append(f"inventory: host name {name!r} is given to {seen[name][1]!r} (group {seen[name][0]!r}) "
                                f"and to {where!r} (group {group!r}): pyinfra would keep one: expected a name of "
                                "its own for each host")
            in_group.add(name)
            seen.setdefault(name, (group, where))
    return problems


def group_problems(group_names) -> list[str]:
    """Groups the inventory or a group_data file defines that pgha does not know."""
    known = known_groups()
    return [
        f"inventory: unknown group {name!r}{_did_you_mean(name, known)} "
        f"(expected the groups {', '.join(repr(g) for g in GROUPS)})"
        for name in group_names
        if name not in known
    ]


def cluster_data(effective: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The settings every cluster host sees (``effective``: host name -> its merged data),
    and a problem for each setting that differs between hosts."""
    if not effective:
        return {}, []
    problems = []
    for key in sorted(cluster_settings()):
        values: dict[str, list[str]] = {}
        for host, data in effective.items():
            values.setdefault(repr(data.get(key, "<unset>")), []).append(host)
        if len(values) > 1:
            seen = "; ".join(f"{value} on {', '.join(hosts)}" for value, hosts in values.items())
            problems.append(
                f"group_data: {key} differs between hosts ({seen}): expected one value for the "
                "whole cluster (set it in group_data/all.py, not in a group's file)"
            )
    return dict(next(iter(effective.values()))), problems
