"""Patroni's checks across settings and topology (the types are the schema's): the members,
the timings, the roles, synchronous replication, PostgreSQL's parameters. Each problem names
the setting, the value and what is expected."""

from __future__ import annotations

from pgha.cluster import Cluster
from pgha.patroni.settings import SETTINGS
from pgha.postgres.parameters import parameter_problems
from pgha.releases import RELEASES
from pgha.validators import is_int


def _pg_parameters(cluster: Cluster) -> list[str]:
    """Each value checked against PostgreSQL's own catalogue for the target version, and
    the combinations replication needs for this many members."""
    s = cluster.settings
    parameters, version = s.get("postgresql_parameters"), s.get("postgresql_version")
    if not (SETTINGS["postgresql_parameters"][0](parameters) and SETTINGS["postgresql_version"][0](version)):
        return []  # reported by the type check
    return parameter_problems(
        parameters,
        version,
        patroni_members=len(cluster.patroni),
        synchronous_mode=s.get("patroni_synchronous_mode") is True,
        synchronous_node_count=s.get("patroni_synchronous_node_count") or 1,
    )


def _members(cluster: Cluster) -> list[str]:
    s = cluster.settings
    found = []
    sync_count = s.get("patroni_synchronous_node_count")
    others = len(cluster.patroni) - 1
    if s.get("patroni_synchronous_mode") is True and is_int(1)(sync_count) and int(sync_count or 0) > others:
        found.append(
            f"group_data: patroni_synchronous_node_count = {sync_count} with "
            f"{len(cluster.patroni)} Patroni members: expected at most "
            f"{others} (the members other than the leader)"
        )
    if len(cluster.patroni) < 2:
        found.append(
            f"inventory: group 'patroni' has {len(cluster.patroni)} member(s): "
            "expected at least 2 for high availability"
        )
    return found


def _timings(s) -> list[str]:
    keys = ("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout")
    if not all(is_int(0)(s.get(k)) for k in keys):
        return []
    found = []
    shipped = RELEASES.get(s.get("debian_release"))
    if shipped is None:
        return []  # reported by the type check
    for key, minimum in shipped.patroni_minimums.items():
        if s[key] < minimum:
            patroni = ".".join(map(str, shipped.patroni))
            found.append(
                f"group_data: {key} = {s[key]}: expected at least {minimum} with Patroni {patroni} "
                f"(Debian {shipped.name}): since 3.2 Patroni silently raises a lower value to "
                f"{minimum}, so the value set here would not be the one in force"
            )
    ttl, loop_wait, retry_timeout = (s[k] for k in keys)
    if loop_wait + 2 * retry_timeout > ttl:
        found.append(
            f"group_data: patroni_loop_wait + 2 * patroni_retry_timeout = "
            f"{loop_wait} + 2 * {retry_timeout} = {loop_wait + 2 * retry_timeout} is more than "
            f"patroni_ttl = {ttl}: expected loop_wait + 2 * retry_timeout <= ttl "
            "(else a leader can lose its lock while still retrying)"
        )
    return found


def _users(s) -> list[str]:
    users = {key: s.get(key) for key in ("patroni_superuser", "patroni_replication_user", "patroni_admin_user")}
    seen: dict = {}
    found = []
    for key, user in users.items():
        if user is None:
            continue  # reported as missing
        if user in seen:
            found.append(
                f"group_data: {key} = {user!r} is also {seen[user]}: expected distinct roles "
                "(each has its own password and rights)"
            )
        seen.setdefault(user, key)
    return found


def problems(cluster: Cluster) -> list[str]:
    return _members(cluster) + _users(cluster.settings) + _pg_parameters(cluster) + _timings(cluster.settings)
