"""The inventory's own checks: host data (known keys, their types), group names, and
settings that every host of the cluster must see alike."""

from __future__ import annotations

import difflib
from typing import Any

from pgha.settings.schema import HOST_DATA, LAB_SETTINGS, SETTINGS, ssh_data_keys
from pgha.settings.topology import GROUPS, LAB_GROUP, host_entries

KNOWN_GROUPS = (*GROUPS, LAB_GROUP, "all")


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f": did you mean {close[0]!r}?" if close else ""


def host_data_problems(groups: dict[str, Any]) -> list[str]:
    """Each host's own data: known keys only, each of the right type."""
    problems: list[str] = []
    ssh_keys = ssh_data_keys()
    known = set(HOST_DATA) | ssh_keys
    seen: set[str] = set()
    for group in (*GROUPS, LAB_GROUP):
        for name, data in host_entries(groups.get(group, [])):
            if name in seen or not isinstance(data, dict):
                continue
            seen.add(name)
            for key, value in data.items():
                if key.startswith("_"):
                    continue  # pyinfra's own arguments (_sudo, ...)
                if key in SETTINGS:
                    problems.append(
                        f"inventory: host {name!r} sets {key!r} in its host data: expected it in "
                        "group_data (a setting of the whole cluster, not of one host)"
                    )
                elif key not in known:
                    expected = "host data pgha knows (address, dns_name, patroni_name, aliases, lxc_container, tls_cert_file, tls_key_file) or pyinfra's ssh_* keys"
                    problems.append(
                        f"inventory: host {name!r} has unknown host data {key!r}"
                        f"{_did_you_mean(key, known)} (expected {expected})"
                    )
                elif key in HOST_DATA and not HOST_DATA[key][0](value):
                    problems.append(
                        f"inventory: host {name!r} has {key} = {value!r}: expected {HOST_DATA[key][1]}"
                    )
            targets = {data.get("address"), data.get("dns_name")} - {None}
            if group != LAB_GROUP and targets and "ssh_hostname" not in data and name not in targets:
                problems.append(
                    f"inventory: host {name!r} has address {data.get('address')!r} but no ssh_hostname: "
                    f"pyinfra would connect to {name!r} (its inventory name): expected ssh_hostname "
                    "set to its address or DNS name (pgha.hosts.host() sets it)"
                )
    return problems


def group_problems(group_names) -> list[str]:
    """Groups the inventory or a group_data file defines that pgha does not know."""
    return [
        f"inventory: unknown group {name!r}{_did_you_mean(name, KNOWN_GROUPS)} "
        f"(expected the groups {', '.join(repr(g) for g in KNOWN_GROUPS[:3])})"
        for name in group_names
        if name not in KNOWN_GROUPS
    ]


def cluster_data(effective: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The settings every cluster host sees (``effective``: host name -> its merged data),
    and a problem for each setting that differs between hosts."""
    if not effective:
        return {}, []
    problems = []
    for key in sorted(set(SETTINGS) - LAB_SETTINGS):
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
