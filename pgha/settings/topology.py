"""The cluster's nodes, from the inventory groups (pgha.components.GROUPS): host data read
into pgha.cluster.Node, one Node per host whatever its groups."""

from __future__ import annotations

from typing import Any

from pgha.cluster import Node
from pgha.components import GROUPS
from pgha.settings import extensions
from pgha.validators import is_ipv4


def host_entries(group: Any) -> list[tuple[str, dict]]:
    hosts = group[0] if isinstance(group, tuple) else group
    return [h if isinstance(h, tuple) else (h, {}) for h in hosts]


def _new_node(name: str, address: str, data: dict) -> Node:
    return Node(
        name=name,
        address=address,
        dns_name=data.get("dns_name"),
        tls_cert_file=data.get("tls_cert_file"),
        tls_key_file=data.get("tls_key_file"),
        ssh={k: v for k, v in data.items() if k.startswith("ssh_")},
        extra={k: data[k] for k in extensions.host_data() if k in data},
    )


def nodes_from_groups(groups: dict[str, Any], problems: list[str]) -> dict[str, list[Node]]:
    """Each group's nodes, by group name (GROUPS)."""
    by_name: dict[str, Node] = {}
    members: dict[str, list[Node]] = {group: [] for group in GROUPS}
    for group in GROUPS:
        for name, data in host_entries(groups.get(group, [])):
            address = data.get("address") or data.get("ssh_hostname")
            if not isinstance(address, str) or not is_ipv4(address):
                problems.append(
                    f"inventory: host {name!r} has address {address!r}: expected an IPv4 address"
                )
                continue
            node = by_name.setdefault(name, _new_node(name, address, data))
            if node.address != address:
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
    return members
