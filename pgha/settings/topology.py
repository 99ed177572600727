"""The cluster's topology: its nodes (from the inventory groups) and its checked settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgha.settings.schema import is_ipv4

# The inventory groups that make the cluster (`backup`: the pgBackRest repository host, at
# most one; none means no archiving and no backups), and the lab's builder (not part of it)
GROUPS = ("etcd", "patroni", "backup")
LAB_GROUP = "lxc_hosts"


@dataclass
class Node:
    name: str  # inventory name, also the LXC container name in the lab
    address: str
    groups: set[str] = field(default_factory=set)
    patroni_name: str | None = None
    aliases: list[str] = field(default_factory=list)
    lxc_container: str | None = None
    dns_name: str | None = None
    ssh: dict[str, Any] = field(default_factory=dict)  # the host's ssh_* data (how pyinfra connects)
    # the host's certificate and key on the control machine, when tls_ca_file is set
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @property
    def connect_name(self) -> str:
        """How clients reach the node: its DNS name if it has one, else its address."""
        return self.dns_name or self.address

    @property
    def all_names(self) -> list[str]:
        names = [self.name]
        if self.dns_name:
            names.append(self.dns_name)
        if self.patroni_name:
            names.append(self.patroni_name)
        names.extend(self.aliases)
        return list(dict.fromkeys(names))


@dataclass
class Cluster:
    settings: dict[str, Any]
    etcd: list[Node]
    patroni: list[Node]
    backup: list[Node] = field(default_factory=list)
    # the checked secrets file (pgha.secrets), loaded once by pgha.settings.loader
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # each node's TLS files on the control machine (pgha.pki.authority.HostFiles), by name
    tls: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def nodes(self) -> list[Node]:
        seen: dict[str, Node] = {}
        for node in self.etcd + self.patroni + self.backup:
            seen.setdefault(node.name, node)
        return list(seen.values())

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if name in (node.name, node.patroni_name):
                return node
        raise KeyError(name)

    @property
    def is_test_cluster(self) -> bool:
        """Whether its data may be lost (the destructive drills): a lab, or test_cluster."""
        return self.settings.get("test_cluster") is True or any(n.lxc_container for n in self.nodes)

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
        if "backup" in node.groups or ("patroni" in node.groups and self.backup):
            names += ["pgbackrest_tls_port"]
        return {name: self.settings.get(name) for name in names}


def host_entries(group: Any) -> list[tuple[str, dict]]:
    hosts = group[0] if isinstance(group, tuple) else group
    return [h if isinstance(h, tuple) else (h, {}) for h in hosts]


def nodes_from_groups(groups: dict[str, Any], problems: list[str]) -> dict[str, list[Node]]:
    """Each group's nodes, by group name (GROUPS)."""
    by_name: dict[str, Node] = {}
    members: dict[str, list[Node]] = {group: [] for group in GROUPS}
    for group in GROUPS:
        for name, data in host_entries(groups.get(group, [])):
            address = data.get("address") or data.get("ssh_hostname")
            if not is_ipv4(address):
                problems.append(
                    f"inventory: host {name!r} has address {address!r}: expected an IPv4 address"
                )
                continue
            node = by_name.get(name)
            if node is None:
                node = Node(
                    name=name,
                    address=address,
                    lxc_container=data.get("lxc_container"),
                    dns_name=data.get("dns_name"),
                    tls_cert_file=data.get("tls_cert_file"),
                    tls_key_file=data.get("tls_key_file"),
                    ssh={k: v for k, v in data.items() if k.startswith("ssh_")},
                )
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
    return members
