"""The checks across settings and topology. `check(groups, data)` returns the checked
Cluster or raises ConfigError listing every problem; each names the setting, the bad value
and what is expected.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from pgha.errors import ConfigError
from pgha.settings.hosts import group_problems, host_data_problems
from pgha.settings.schema import (
    HOST_DATA_KEYS,
    LAB_SETTINGS,
    RENAMED_SETTINGS,
    SETTINGS,
    is_int,
    is_port,
)
from pgha.backup.values import problems as backup_problems
from pgha.lab.values import network_problems as lab_network_problems
from pgha.postgres.parameters import RENAMED, catalogue, parameter_problems, versions
from pgha.releases import RELEASES
from pgha.settings.topology import LAB_GROUP, Cluster, host_entries, nodes_from_groups

logger = logging.getLogger("pgha")


def _check_types(data: dict[str, Any], keys, problems: list[str]) -> None:
    for key in sorted(keys):
        is_valid, expected = SETTINGS[key]
        if key not in data:
            problems.append(f"group_data: setting {key!r} is missing: expected {expected}")
        elif not is_valid(data[key]):
            problems.append(f"group_data: {key} = {data[key]!r}: expected {expected}")


def _check_unknown_keys(data: dict[str, Any], problems: list[str]) -> None:
    for key in data:
        if key in SETTINGS or key in HOST_DATA_KEYS or key.startswith(("ssh_", "_")):
            continue
        if key in RENAMED_SETTINGS:
            problems.append(f"group_data: setting {key!r} was renamed: use {RENAMED_SETTINGS[key]}")
            continue
        setting = difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.8)
        pg_names = _pg_parameter_names(data.get("postgresql_version"))
        if setting:
            hint = setting[0]
        elif key in pg_names:
            hint = f"postgresql_parameters[{key!r}] (PostgreSQL parameters belong in that mapping)"
        else:
            close = difflib.get_close_matches(key, pg_names + list(RENAMED), n=1, cutoff=0.8)
            name = RENAMED.get(close[0], close[0]) if close else None
            hint = f"{name}, inside postgresql_parameters" if name else None
        if hint:
            problems.append(f"group_data: unknown setting {key!r}: did you mean {hint}?")


def _pg_parameter_names(version: Any) -> list[str]:
    """The PostgreSQL parameters of ``version`` (of every catalogued version if unknown)."""
    chosen = [version] if version in versions() else versions()
    return sorted({name for v in chosen for name in catalogue(v)})


def _check_pg_parameters(cluster: Cluster, problems: list[str]) -> None:
    """Each value checked against PostgreSQL's own catalogue for the target version, and
    the combinations replication needs for this many members."""
    s = cluster.settings
    parameters, version = s.get("postgresql_parameters"), s.get("postgresql_version")
    if not (SETTINGS["postgresql_parameters"][0](parameters) and SETTINGS["postgresql_version"][0](version)):
        return  # reported by the type check
    problems.extend(parameter_problems(
        parameters,
        version,
        patroni_members=len(cluster.patroni),
        synchronous_mode=s.get("patroni_synchronous_mode") is True,
        synchronous_node_count=s.get("patroni_synchronous_node_count"),
    ))


def _check_topology(cluster: Cluster, problems: list[str]) -> None:
    s = cluster.settings
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

    sync_count = s.get("patroni_synchronous_node_count")
    if s.get("patroni_synchronous_mode") is True and is_int(1)(sync_count):
        if sync_count > len(cluster.patroni) - 1:
            problems.append(
                f"group_data: patroni_synchronous_node_count = {sync_count} with "
                f"{len(cluster.patroni)} Patroni members: expected at most "
                f"{len(cluster.patroni) - 1} (the members other than the leader)"
            )
    if len(cluster.patroni) < 2:
        problems.append(
            f"inventory: group 'patroni' has {len(cluster.patroni)} member(s): "
            "expected at least 2 for high availability"
        )
    etcd_count = len(cluster.etcd)
    if etcd_count < 2:
        problems.append(
            f"inventory: group 'etcd' has {etcd_count} member(s): expected 3 or 5 "
            "(an odd number of at least 3)"
        )
    elif etcd_count % 2 == 0:
        if s.get("etcd_allow_even_members") is True:
            logger.warning(
                "group 'etcd' has %d members: an even count tolerates no more failures "
                "than %d members (allowed by etcd_allow_even_members)",
                etcd_count,
                etcd_count - 1,
            )
        else:
            problems.append(
                f"inventory: group 'etcd' has {etcd_count} members: expected an odd number "
                "(set etcd_allow_even_members = True to allow it, e.g. while scaling out)"
            )

    for node in nodes:
        by_port: dict[int, str] = {}
        for setting, port in cluster.ports_of(node).items():
            if not is_port(port):
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
    if not SETTINGS["postgresql_version"][0](s["postgresql_version"]):
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


def _check_timings(s: dict[str, Any], problems: list[str]) -> None:
    keys = ("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout")
    if not all(is_int(0)(s.get(k)) for k in keys):
        return
    shipped = RELEASES.get(s.get("debian_release"))
    for key, minimum in (shipped.patroni_minimums.items() if shipped else ()):
        if s[key] < minimum:
            patroni = ".".join(map(str, shipped.patroni))
            problems.append(
                f"group_data: {key} = {s[key]}: expected at least {minimum} with Patroni {patroni} "
                f"(Debian {shipped.name}): since 3.2 Patroni silently raises a lower value to "
                f"{minimum}, so the value set here would not be the one in force"
            )
    ttl, loop_wait, retry_timeout = (s[k] for k in keys)
    if loop_wait + 2 * retry_timeout > ttl:
        problems.append(
            f"group_data: patroni_loop_wait + 2 * patroni_retry_timeout = "
            f"{loop_wait} + 2 * {retry_timeout} = {loop_wait + 2 * retry_timeout} is more than "
            f"patroni_ttl = {ttl}: expected loop_wait + 2 * retry_timeout <= ttl "
            "(else a leader can lose its lock while still retrying)"
        )


def _check_users(s: dict[str, Any], problems: list[str]) -> None:
    users = {key: s.get(key) for key in ("patroni_superuser", "patroni_replication_user", "patroni_admin_user")}
    seen: dict[Any, str] = {}
    for key, user in users.items():
        if user is None:
            continue  # reported as missing
        if user in seen:
            problems.append(
                f"group_data: {key} = {user!r} is also {seen[user]}: expected distinct roles "
                "(each has its own password and rights)"
            )
        seen.setdefault(user, key)


def check(groups: dict[str, Any], data: dict[str, Any], lab_data: dict[str, Any] | None = None,
          group_names=()) -> Cluster:
    """Check the inventory groups (host data as written), the cluster's settings and, when
    the inventory has a lab, the lab's settings (``lab_data``, default ``data``); return
    the topology or raise ConfigError with every problem."""
    problems: list[str] = []
    has_lab = bool(host_entries(groups.get(LAB_GROUP, [])))
    lab = (lab_data if lab_data is not None else data) if has_lab else {}
    _check_types(data, set(SETTINGS) - LAB_SETTINGS, problems)
    if has_lab:
        _check_types(lab, LAB_SETTINGS, problems)
    _check_unknown_keys(data, problems)
    problems += host_data_problems(groups)
    problems += group_problems(group_names)
    settings = {**data, **{k: lab[k] for k in LAB_SETTINGS if k in lab}}
    cluster = Cluster(settings=settings, **nodes_from_groups(groups, problems))
    _resolve_release(cluster.settings, problems)
    _check_topology(cluster, problems)
    _check_users(cluster.settings, problems)
    _check_pg_parameters(cluster, problems)
    if has_lab:
        problems.extend(lab_network_problems(cluster))
    _check_timings(cluster.settings, problems)
    problems.extend(backup_problems(cluster))
    if problems:
        raise ConfigError(problems)
    return cluster
