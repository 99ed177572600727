"""The cluster as the deploys, the tools and the tests see it: its nodes by inventory group
and its checked settings (pgha.settings.loader builds it). Plain data: the bottom of the
house, imported by every component."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class Node:
    name: str  # inventory name (in the lab also the LXC container's)
    address: str
    groups: set[str] = field(default_factory=set)
    patroni_name: str = ""  # its name in Patroni (a Patroni member only)
    aliases: list[str] = field(default_factory=list)
    dns_name: str | None = None
    ssh: dict[str, Any] = field(default_factory=dict)  # the host's ssh_* data (how pyinfra connects)
    # the host's certificate and key on the control machine, when tls_ca_file is set
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # host data of a registered extension (pgha.settings.extensions: the lab's lxc_container)
    extra: dict[str, Any] = field(default_factory=dict)

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
    # the nodes of each inventory group (pgha.components.GROUPS): cluster.etcd, cluster.patroni...
    groups: dict[str, list[Node]] = field(default_factory=dict)
    # the checked secrets file (pgha.secrets), loaded once by pgha.settings.loader
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # each node's TLS files on the control machine (pgha.pki.authority.HostFiles), by name
    tls: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getattr__(self, group: str) -> list[Node]:
        """``cluster.etcd``, ``cluster.patroni``, ``cluster.backup``: a group's nodes (every
        registered group is in ``groups``, empty when the inventory has no host in it)."""
        groups = self.__dict__.get("groups", {})
        if group not in groups:
            raise AttributeError(f"Cluster has no attribute or group {group!r}")
        return groups[group]

    def with_groups(self, **groups: list[Node]) -> Cluster:
        """A copy with these groups' nodes replaced (in another order, other host data)."""
        return replace(self, groups={**self.groups, **groups})

    @property
    def nodes(self) -> list[Node]:
        seen: dict[str, Node] = {}
        for members in self.groups.values():
            for node in members:
                seen.setdefault(node.name, node)
        return list(seen.values())

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if name in (node.name, node.patroni_name):
                return node
        raise KeyError(name)

    @property
    def is_test_cluster(self) -> bool:
        """Whether its data may be lost (the destructive drills refuse any other)."""
        return self.settings.get("test_cluster") is True
