"""What a converge asks of a Patroni node about HAProxy, read in its snapshot."""

from __future__ import annotations

from pgha import SCRIPTS_DIR
from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan
from pgha.firewall import values as firewall_values
from pgha.haproxy import values


def observed(cluster: Cluster, node: Node) -> Plan:
    return Plan(
        paths=("/etc/haproxy", SCRIPTS_DIR, values.RELOAD_DROPIN.rsplit("/", 1)[0], *firewall_values.paths(["haproxy"])),
        units=(values.UNIT, *firewall_values.units(["haproxy"])),
        packages=tuple(values.PACKAGES),
    )
