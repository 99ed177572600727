"""Rolling package updates (`pgha upgrade`): the deploy's own packages updated one node at a
time while the cluster serves, from the control machine.

Refused before anything changes when the cluster is unhealthy (not one leader with every
replica streaming), paused, when a replica lags more than patroni_maximum_lag_on_failover,
when an etcd member is unhealthy, or when a node cannot be reached. Then, one node at a
time, each waiting for the cluster to be whole again before the next:

1. the etcd members (etcd restarted, every member healthy again: quorum is kept);
2. the Patroni replicas: out of the read-only port's rotation on every HAProxy, packages
   installed (policy-rc.d keeps Debian from restarting anything), Patroni restarted (it
   restarts PostgreSQL on the new binaries), streaming again, back in rotation;
3. a switchover to an updated replica (every PgBouncer paused, as `pgha switchover`), then
   the former leader as a replica;
4. the other nodes (the backup and monitoring hosts).

A node's other daemons (HAProxy reloaded, PgBouncer, pgBackRest's TLS server, the
exporters restarted) follow the components whose packages updated (pgha.components).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pgha import client, components, drift, remote
from pgha.cluster import Cluster, Node
from pgha.common.operations import install_command
from pgha.errors import MaintenanceError, RemoteError
from pgha.etcd import values as etcd_values
from pgha.etcd.facts import EtcdHealth
from pgha.haproxy import values as haproxy_values
from pgha.maintenance import best_replica, paused, streaming
from pgha.patroni import rest
from pgha.patroni import values as patroni_values
from pgha.waiting import wait_for

LIST_COMMAND = f"DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && {drift.UPGRADABLE_COMMAND}"


@dataclass
class Step:
    node: Node
    kind: str  # "etcd", "replica", "leader" (switched over first) or "other"
    updates: list[tuple[str, str, str]]  # (package, installed, available)
    units: dict[str, str] = field(default_factory=dict)  # unit -> "restart" or "reload"

    @property
    def packages(self) -> list[str]:
        return [name for name, _, _ in self.updates]


def available(cluster: Cluster) -> dict[str, list[tuple[str, str, str]]]:
    """The updates of each node's own packages (its components'), its package lists refreshed
    first; every node at once."""
    outputs = remote.run_on_each(cluster.nodes, lambda node: LIST_COMMAND, timeout=300)
    found = {}
    for node in cluster.nodes:
        ours = set(components.packages_of(cluster, node))
        found[node.name] = [u for u in drift.upgradable(outputs[node.name].splitlines()) if u[0] in ours]
    return found


def plan(cluster: Cluster, updates: dict[str, list[tuple[str, str, str]]], leader: str | None) -> list[Step]:
    """The nodes with updates, in the order they are done: etcd members, Patroni replicas, the
    leader (``leader``: its Patroni name), the others."""
    steps = []
    for node in cluster.nodes:
        if not updates.get(node.name):
            continue
        units = components.units_to_refresh(cluster, node, {name for name, _, _ in updates[node.name]})
        if "patroni" in node.groups:
            kind = "leader" if node.patroni_name == leader else "replica"
        else:
            kind = "etcd" if "etcd" in node.groups else "other"
        steps.append(Step(node, kind, updates[node.name], units))
    order = {"etcd": 0, "replica": 1, "leader": 2, "other": 3}
    return sorted(steps, key=lambda step: order[step.kind])


def refusal(health: dict, is_paused: bool | None, maximum_lag: int, etcd_health: dict[str, bool],
            etcd_members: int) -> str | None:
    """Why nothing may be updated now, or None."""
    if health["problems"]:
        return "the cluster is not healthy: " + "; ".join(health["problems"])
    if is_paused:
        return "the cluster is in maintenance mode (a switchover is refused while paused): `pgha resume` first"
    lagging = [f"{m['name']} ({rest.format_bytes(m['lag'])})" for m in health["members"]
               if m["role"] == "replica" and isinstance(m["lag"], int) and m["lag"] > maximum_lag]
    if lagging:
        return (f"replicas lag more than patroni_maximum_lag_on_failover ({rest.format_bytes(maximum_lag)}): "
                f"{', '.join(lagging)}")
    sick = sorted(endpoint for endpoint, healthy in etcd_health.items() if not healthy)
    if sick or len(etcd_health) < etcd_members:
        return f"etcd is not healthy: {len(etcd_health) - len(sick)} of {etcd_members} members answer healthy"
    return None


def _etcd_health(cluster: Cluster, via: Node) -> dict[str, bool]:
    fact = EtcdHealth()
    command = fact.command(etcd_values.local_endpoint(cluster), **etcd_values.ROOT_LOGIN)
    return fact.process(remote.run(via, command, timeout=60).splitlines())


def _rotation(cluster: Cluster, member: str, direction: str) -> None:
    """``member`` out of (or back into) the read-only rotation of every node's HAProxy."""
    remote.run_on_each(cluster.patroni, lambda node: f"{haproxy_values.HOLD_SCRIPT} {direction} {member}", timeout=30)


def _refresh(node: Node, units: dict[str, str], skip: str | None = None) -> None:
    for unit, action in units.items():
        if unit != skip:
            remote.run(node, f"systemctl {action} {unit}", timeout=180)


def _wait(predicate, timeout: float, what: str) -> None:
    if not wait_for(predicate, timeout, interval=0.5):
        raise MaintenanceError(f"{what} after {timeout:.0f}s: the remaining nodes are not updated")


def _update_member(cluster: Cluster, step: Step, timeout: float) -> None:
    node, name = step.node, step.node.patroni_name
    restarts = patroni_values.UNIT in step.units
    if restarts:
        _rotation(cluster, name, "out")
    try:
        remote.run(node, install_command(step.packages, only_upgrade=True), timeout=900)
        if restarts:
            remote.run(node, f"systemctl restart {patroni_values.UNIT}", timeout=180)
            _wait(lambda: streaming(cluster, name), timeout, f"{name} does not stream from the leader")
        _refresh(node, step.units, skip=patroni_values.UNIT)
        if etcd_values.UNIT in step.units:  # an etcd member on a Patroni node
            _etcd_whole(cluster, node, timeout)
    finally:
        if restarts:
            _rotation(cluster, name, "in")


def _update_etcd(cluster: Cluster, step: Step, timeout: float) -> None:
    remote.run(step.node, install_command(step.packages, only_upgrade=True), timeout=900)
    _refresh(step.node, step.units)
    _etcd_whole(cluster, step.node, timeout)


def _etcd_whole(cluster: Cluster, node: Node, timeout: float) -> None:
    expected = len(cluster.etcd)
    _wait(lambda: (h := _etcd_health(cluster, node)) and len(h) == expected and all(h.values()), timeout,
          f"etcd is not healthy again after {node.name} restarted")


def upgrade(cluster: Cluster, dry_run: bool = False, timeout: float = 120, say=print) -> list[dict]:
    """Every node's updates, one node at a time (see the module); one {"node", "kind",
    "packages", "seconds", "switchover"} a node done (or planned, with ``dry_run``)."""
    try:
        updates = available(cluster)
    except RemoteError as error:
        raise MaintenanceError(f"nothing updated: {error}") from None
    health = rest.health(cluster)
    leader = (health["leader"] or {}).get("name")
    steps = plan(cluster, updates, leader)
    if not steps:
        say("every node runs the newest of its packages: nothing to update")
        return []
    problem = refusal(health, paused(cluster), cluster.settings["patroni_maximum_lag_on_failover"],
                      _etcd_health(cluster, cluster.etcd[0]), len(cluster.etcd))
    if problem:
        raise MaintenanceError(f"nothing updated: {problem}")
    done = []
    for step in steps:
        listed = ", ".join(f"{p} {old} -> {new}" for p, old, new in step.updates)
        row: dict[str, Any] = {"node": step.node.name, "kind": step.kind, "packages": listed, "seconds": None, "switchover": None}
        done.append(row)
        if dry_run:
            refreshed = ", ".join(f"{action} {unit}" for unit, action in step.units.items()) or "no daemon"
            say(f"{step.node.name} ({step.kind}): {listed}; then {refreshed}")
            continue
        started = time.monotonic()
        if step.kind == "leader" and patroni_values.UNIT in step.units:
            candidate = best_replica(rest.members(cluster), step.node.patroni_name)
            if candidate is None:
                raise MaintenanceError(f"{step.node.patroni_name} leads and no replica runs: nothing to switch over to")
            say(f"{step.node.patroni_name} leads: switching over to {candidate} (PgBouncer paused)")
            row["switchover"] = client.switchover(cluster, candidate, progress=say)
        say(f"updating {step.node.name} ({step.kind}): {listed} ...")
        if step.kind == "etcd":
            _update_etcd(cluster, step, timeout)
        elif step.kind in ("replica", "leader"):
            _update_member(cluster, step, timeout)
        else:
            remote.run(step.node, install_command(step.packages, only_upgrade=True), timeout=900)
            _refresh(step.node, step.units)
        row["seconds"] = round(time.monotonic() - started, 1)
        say(f"  {step.node.name} updated in {row['seconds']}s")
    return done
