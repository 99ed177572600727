"""The cluster's settings: their types, the checks across them, and the topology.

group_data/all.py holds every value; this module only knows what each setting must look
like. `check(groups, data)` is run by inventory.py (before pyinfra connects to any host)
and again by every deploy file (so `--data` overrides are checked too). Each error names
the setting, the bad value and what is expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:  # pyinfra prints its own errors without a traceback
    from pyinfra.api.exceptions import PyinfraError as _ErrorBase
except ImportError:  # pragma: no cover - pyinfra is a dependency
    _ErrorBase = Exception

logger = logging.getLogger("pgha")


class ConfigError(_ErrorBase):
    """One or more settings are invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid pgha configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


# --- the type of each group_data setting -------------------------------------------------

DURATION = re.compile(r"^\d+(ms|s|m|h)?$")


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _is_int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_ipv4(value: Any) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return False
    return True


def _is_network(value: Any) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError):
        return False
    return True


def _is_ipv4_network(value: Any) -> bool:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except (ValueError, TypeError):
        return False
    return True


def _is_list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (list, tuple)) and all(check(x) for x in v)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value) is not None


PORT = (_is_port, "an integer port number from 1 to 65535")
SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lab_bridge": (_is_name, "a network interface name"),
    "lab_subnet": (_is_ipv4_network, "an IPv4 network such as 10.0.3.0/24"),
    "lab_gateway": (_is_ipv4, "an IPv4 address inside lab_subnet"),
    "lab_dhcp_range": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_ipv4(a) for a in v),
        "a [first, last] pair of IPv4 addresses",
    ),
    "lab_release": (_is_name, "a Debian release name such as bookworm"),
    "lab_base_container": (_is_name, "a container name"),
    "lab_base_packages": (_is_list_of(_is_name), "a list of Debian package names"),
    "client_networks": (_is_list_of(_is_network), "a list of networks such as 10.0.3.0/24"),
    "etcd_client_port": PORT,
    "etcd_peer_port": PORT,
    "haproxy_etcd_port": PORT,
    "postgresql_port": PORT,
    "patroni_restapi_port": PORT,
    "haproxy_rw_port": PORT,
    "haproxy_ro_port": PORT,
    "haproxy_stats_port": PORT,
    "etcd_client_networks": (_is_list_of(_is_network), "a list of networks such as 10.0.3.1/32"),
    "etcd_cluster_token": (_is_name, "a token of letters, digits, '-', '_' or '.'"),
    "etcd_allow_even_members": (lambda v: isinstance(v, bool), "true or false"),
    "etcd_allow_member_removal": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_scope": (_is_name, "a cluster name of letters, digits, '-', '_' or '.'"),
    "postgresql_version": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 13 <= v <= 18,
        "a PostgreSQL major version from 13 to 18",
    ),
    "patroni_ttl": (_is_int(5), "an integer number of seconds, at least 5"),
    "patroni_loop_wait": (_is_int(1), "an integer number of seconds, at least 1"),
    "patroni_retry_timeout": (_is_int(1), "an integer number of seconds, at least 1"),
    "patroni_maximum_lag_on_failover": (_is_int(0), "a number of bytes, 0 or more"),
    "patroni_synchronous_mode": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_synchronous_mode_strict": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_synchronous_node_count": (_is_int(1), "an integer, at least 1"),
    "patroni_restapi_username": (_is_name, "a user name"),
    "patroni_superuser": (_is_name, "a PostgreSQL role name"),
    "patroni_replication_user": (_is_name, "a PostgreSQL role name"),
    "patroni_admin_user": (_is_name, "a PostgreSQL role name"),
    "patroni_dcs_via_local_proxy": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_switchover_on_stop": (lambda v: isinstance(v, bool), "true or false"),
    "postgresql_parameters": (
        lambda v: isinstance(v, dict)
        and all(isinstance(k, str) for k in v)
        and all(isinstance(x, (str, int, float, bool)) for x in v.values()),
        "a mapping of PostgreSQL parameter names to strings or numbers",
    ),
    "haproxy_stats_user": (_is_name, "a user name"),
    "haproxy_check_inter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 2s or 500ms",
    ),
    "haproxy_check_fastinter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 1s or 250ms",
    ),
    "haproxy_check_downinter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 500ms or 1s",
    ),
    "haproxy_check_rise": (_is_int(1), "an integer, at least 1"),
    "haproxy_check_fall": (_is_int(1), "an integer, at least 1"),
}

# Keys pyinfra itself, the inventory or the lab helpers put in host data.
HOST_DATA_KEYS = {
    "address",
    "lxc_container",
    "patroni_name",
    "aliases",
}

# PostgreSQL parameters that typos are compared against, and the seed's known mistakes.
KNOWN_PG_PARAMETERS = {
    "wal_level", "hot_standby", "wal_keep_size", "max_wal_senders", "max_replication_slots",
    "checkpoint_timeout", "password_encryption", "max_connections", "shared_buffers",
    "work_mem", "maintenance_work_mem", "effective_cache_size", "wal_log_hints",
    "archive_mode", "archive_command", "synchronous_commit", "synchronous_standby_names",
    "hot_standby_feedback", "max_worker_processes", "wal_compression", "max_wal_size",
    "min_wal_size", "log_min_duration_statement", "track_commit_timestamp",
    "shared_preload_libraries", "listen_addresses", "port", "logging_collector",
    "log_destination", "random_page_cost", "default_statistics_target",
    "max_locks_per_transaction", "max_prepared_transactions", "wal_sender_timeout",
    "wal_receiver_timeout", "checkpoint_completion_target",
}
RENAMED_PG_PARAMETERS = {
    "wal_keep_segments": "wal_keep_size (wal_keep_segments was removed in PostgreSQL 13)",
}


def _typo_hint(key: str, known: set[str] | dict) -> str | None:
    if key in RENAMED_PG_PARAMETERS:
        return RENAMED_PG_PARAMETERS[key]
    matches = difflib.get_close_matches(key, list(known) + list(RENAMED_PG_PARAMETERS), n=1, cutoff=0.8)
    if not matches:
        return None
    return RENAMED_PG_PARAMETERS.get(matches[0], matches[0])


# --- the topology -------------------------------------------------------------------------


@dataclass
class Node:
    name: str  # inventory name, also the LXC container name in the lab
    address: str
    groups: set[str] = field(default_factory=set)
    patroni_name: str | None = None
    aliases: list[str] = field(default_factory=list)
    lxc_container: str | None = None

    @property
    def all_names(self) -> list[str]:
        names = [self.name]
        if self.patroni_name:
            names.append(self.patroni_name)
        names.extend(self.aliases)
        return list(dict.fromkeys(names))


@dataclass
class Cluster:
    settings: dict[str, Any]
    etcd: list[Node]
    patroni: list[Node]

    @property
    def nodes(self) -> list[Node]:
        seen: dict[str, Node] = {}
        for node in self.etcd + self.patroni:
            seen.setdefault(node.name, node)
        return list(seen.values())

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if name in (node.name, node.patroni_name):
                return node
        raise KeyError(name)

    def ports_of(self, node: Node) -> dict[str, int]:
        """Every port a node listens on, by setting name."""
        names = []
        if "etcd" in node.groups:
            names += ["etcd_client_port", "etcd_peer_port"]
        if "patroni" in node.groups:
            names += [
                "postgresql_port",
                "patroni_restapi_port",
                "haproxy_rw_port",
                "haproxy_ro_port",
                "haproxy_stats_port",
                "haproxy_etcd_port",
            ]
        return {name: self.settings.get(name) for name in names}


def _host_entries(group: Any) -> list[tuple[str, dict]]:
    hosts = group[0] if isinstance(group, tuple) else group
    return [h if isinstance(h, tuple) else (h, {}) for h in hosts]


def _nodes_from_groups(groups: dict[str, Any], problems: list[str]) -> tuple[list[Node], list[Node]]:
    by_name: dict[str, Node] = {}
    members: dict[str, list[Node]] = {"etcd": [], "patroni": []}
    for group in ("etcd", "patroni"):
        for name, data in _host_entries(groups.get(group, [])):
            address = data.get("address") or data.get("ssh_hostname")
            if not _is_ipv4(address):
                problems.append(
                    f"inventory: host {name!r} has address {address!r}: expected an IPv4 address"
                )
                continue
            node = by_name.get(name)
            if node is None:
                node = Node(name=name, address=address, lxc_container=data.get("lxc_container"))
                by_name[name] = node
            elif node.address != address:
                problems.append(
                    f"inventory: host {name!r} is listed twice with addresses "
                    f"{node.address!r} and {address!r}: expected one address per host"
                )
            if name in {n.name for n in members[group]}:
                problems.append(
                    f"inventory: host {name!r} is listed twice in group {group!r}: "
                    "expected each host once per group"
                )
                continue
            node.groups.add(group)
            if group == "patroni":
                node.patroni_name = data.get("patroni_name") or name
                node.aliases = list(data.get("aliases", []))
            members[group].append(node)
    return members["etcd"], members["patroni"]


# --- the checks ---------------------------------------------------------------------------


def _check_types(data: dict[str, Any], problems: list[str]) -> None:
    for key, (is_valid, expected) in SETTINGS.items():
        if key not in data:
            problems.append(f"group_data: setting {key!r} is missing: expected {expected}")
        elif not is_valid(data[key]):
            problems.append(f"group_data: {key} = {data[key]!r}: expected {expected}")


def _check_unknown_keys(data: dict[str, Any], problems: list[str]) -> None:
    for key in data:
        if key in SETTINGS or key in HOST_DATA_KEYS or key.startswith(("ssh_", "_")):
            continue
        setting = difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.8)
        if setting:
            hint = setting[0]
        elif key in KNOWN_PG_PARAMETERS:
            hint = f"postgresql_parameters[{key!r}] (PostgreSQL parameters belong in that mapping)"
        else:
            parameter = _typo_hint(key, KNOWN_PG_PARAMETERS)
            hint = f"{parameter}, inside postgresql_parameters" if parameter else None
        if hint:
            problems.append(f"group_data: unknown setting {key!r}: did you mean {hint}?")
    parameters = data.get("postgresql_parameters")
    if isinstance(parameters, dict):
        for key in parameters:
            if key in KNOWN_PG_PARAMETERS:
                continue
            hint = _typo_hint(key, KNOWN_PG_PARAMETERS)
            if hint:
                problems.append(
                    f"group_data: postgresql_parameters has unknown parameter {key!r}: "
                    f"did you mean {hint}?"
                )


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
    if s.get("patroni_synchronous_mode") is True and _is_int(1)(sync_count):
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
            if not _is_port(port):
                continue  # already reported by the type check
            if port in by_port:
                problems.append(
                    f"group_data: {setting} = {port} and {by_port[port]} = {port} both listen "
                    f"on host {node.name!r}: expected a distinct port per service"
                )
            by_port.setdefault(port, setting)


def _check_lab(cluster: Cluster, problems: list[str]) -> None:
    s = cluster.settings
    if not (_is_ipv4_network(s.get("lab_subnet")) and _is_ipv4(s.get("lab_gateway"))):
        return  # reported by the type check
    subnet = ipaddress.ip_network(s["lab_subnet"])
    gateway = ipaddress.ip_address(s["lab_gateway"])
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        problems.append(
            f"group_data: lab_gateway = {s['lab_gateway']!r}: expected a host address "
            f"inside lab_subnet {s['lab_subnet']}"
        )
    dhcp = None
    if SETTINGS["lab_dhcp_range"][0](s.get("lab_dhcp_range")):
        first, last = (ipaddress.ip_address(a) for a in s["lab_dhcp_range"])
        if first > last or first not in subnet or last not in subnet:
            problems.append(
                f"group_data: lab_dhcp_range = {list(s['lab_dhcp_range'])!r}: expected "
                f"[first, last] with first <= last, both inside lab_subnet {subnet}"
            )
        else:
            dhcp = (first, last)
            if first <= gateway <= last:
                problems.append(
                    f"group_data: lab_dhcp_range = {list(s['lab_dhcp_range'])!r} covers "
                    f"lab_gateway {gateway}: expected a range that leaves it out"
                )
    for node in cluster.nodes:
        if not node.lxc_container:
            continue
        address = ipaddress.ip_address(node.address)
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}: expected a "
                f"host address inside lab_subnet {subnet}"
            )
        elif address == gateway:
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}, the bridge's "
                f"own address (lab_gateway): expected another address in {subnet}"
            )
        elif dhcp and dhcp[0] <= address <= dhcp[1]:
            problems.append(
                f"inventory: lab host {node.name!r} has address {node.address}, inside "
                f"lab_dhcp_range {dhcp[0]}-{dhcp[1]}: expected an address outside the DHCP range"
            )


def _check_timings(s: dict[str, Any], problems: list[str]) -> None:
    keys = ("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout")
    if not all(_is_int(0)(s.get(k)) for k in keys):
        return
    ttl, loop_wait, retry_timeout = (s[k] for k in keys)
    if loop_wait + 2 * retry_timeout > ttl:
        problems.append(
            f"group_data: patroni_loop_wait + 2 * patroni_retry_timeout = "
            f"{loop_wait} + 2 * {retry_timeout} = {loop_wait + 2 * retry_timeout} is more than "
            f"patroni_ttl = {ttl}: expected loop_wait + 2 * retry_timeout <= ttl "
            "(else a leader can lose its lock while still retrying)"
        )


def check(groups: dict[str, Any], data: dict[str, Any], with_secrets: bool = True) -> Cluster:
    """Check the inventory groups and the group data; return the topology or raise."""
    problems: list[str] = []
    _check_types(data, problems)
    _check_unknown_keys(data, problems)
    etcd, patroni = _nodes_from_groups(groups, problems)
    cluster = Cluster(settings=dict(data), etcd=etcd, patroni=patroni)
    _check_topology(cluster, problems)
    _check_lab(cluster, problems)
    _check_timings(data, problems)
    if with_secrets:
        from pgha import secrets

        problems.extend(secrets.problems())
    if problems:
        raise ConfigError(problems)
    return cluster


# --- loading ------------------------------------------------------------------------------


def load_group_data(directory: Path) -> dict[str, Any]:
    """Read group_data/all.py the way pyinfra does: its public, non-module globals."""
    import types

    path = Path(directory) / "all.py"
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("__") and not isinstance(v, types.ModuleType)
    }


def check_inventory_file(inventory_file: str, groups: dict[str, Any]) -> Cluster:
    """Called at the end of inventory.py: check everything before pyinfra connects."""
    from pgha import secrets

    secrets.ensure()
    data = load_group_data(Path(inventory_file).resolve().parent / "group_data")
    return check(groups, data)


def current() -> Cluster:
    """The checked topology of the running pyinfra deploy (includes --data overrides)."""
    from pyinfra import host, inventory

    groups = {
        group: [(h.name, dict(h.data.dict())) for h in inventory.get_group(group, [])]
        for group in ("etcd", "patroni")
    }
    return check(groups, dict(host.data.dict()))
