"""The drills: each chooses its target, injects a fault, waits for (and checks) its effect,
and heals it. ``run_drill`` (runner.py) runs them with the writer and the monitor around.

A drill's ``notes`` (``Context.notes``) are what the tests assert and the benchmark reports.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pgha import client
from pgha.errors import DrillError
from pgha.patroni import rest
from pgha.waiting import wait_for
from pghalab.drills.faults import attach, container, cut_off, etcd_leader_first, local_is_primary, reconnect, run
from pghalab.drills.monitor import Monitor
from pghalab.drills.state import dynamic_config, sync_standbys
from pghalab.drills.writer import Writer


@dataclass
class Context:
    cluster: Any
    writer: Writer
    monitor: Monitor
    old_leader: dict
    timeline: int | None
    target: Any = None  # the node the fault hits (pgha.cluster.Node)
    etcd_targets: list = field(default_factory=list)
    t_inject: float = 0.0
    t_heal: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def s(self) -> dict:
        return self.cluster.settings

    def node_named(self, patroni_name: str):
        return next(n for n in self.cluster.patroni if n.patroni_name == patroni_name)

    def preferred_replica(self) -> str:
        """The synchronous standby if any, else the first other member by name."""
        others = sorted(n.patroni_name for n in self.cluster.patroni if n.patroni_name != self.old_leader["name"])
        return (sync_standbys(self.cluster) or others)[0]

    @property
    def failover_timeout(self) -> float:
        s = self.s
        return s["patroni_ttl"] + s["patroni_loop_wait"] + 2 * s["patroni_retry_timeout"] + 30

    def wait_new_leader_writing(self, timeout: float | None = None) -> bool:
        """Until /cluster names a leader other than the old one and a write is acknowledged
        after that; notes the time as ``new_leader_writes_at``."""
        timeout = timeout or self.failover_timeout
        started = time.monotonic()

        def new_leader_writes():
            seen = time.monotonic()
            leader = rest.leader(self.cluster)
            if not leader or leader["name"] == self.old_leader["name"]:
                return None
            remaining = timeout - (time.monotonic() - started)
            if not wait_for(lambda: self.writer.last_ack() > seen, min(5, max(0.1, remaining)), 0.05):
                return None
            return leader

        leader = wait_for(new_leader_writes, timeout, 0.2)
        if not leader:
            return False
        self.notes["new_leader"] = leader["name"]
        self.notes["new_leader_writes_at"] = round(self.writer.last_ack() - self.t_inject, 2)
        return True


class Drill:
    name = "drill"
    description = ""
    affected = "leader"  # whose return to streaming is measured: "leader", "target" or None
    failover = True  # a new leader is expected

    def choose(self, ctx: Context) -> None:
        ctx.target = ctx.node_named(ctx.old_leader["name"])

    def inject(self, ctx: Context) -> None:
        raise NotImplementedError

    def during(self, ctx: Context) -> None:
        """Wait for the fault's effect (and check what must hold while it lasts)."""
        ctx.notes["failover_seen"] = ctx.wait_new_leader_writing()

    def heal(self, ctx: Context) -> None:
        pass

    def __repr__(self) -> str:
        return self.name


class LeaderKilled(Drill):
    name = "leader-killed"
    description = "leader container killed (lxc-stop -k); heal: lxc-start"

    def inject(self, ctx):
        run(["lxc-stop", "-k", "-n", container(ctx.target)])

    def heal(self, ctx):
        run(["lxc-start", "-n", container(ctx.target)])


class LeaderPatroniStopped(Drill):
    name = "leader-patroni-stopped"
    description = "leader's Patroni stopped gracefully (systemctl stop patroni); heal: start"

    def inject(self, ctx):
        attach(ctx.target, "systemctl", "stop", "patroni", timeout=90)

    def heal(self, ctx):
        attach(ctx.target, "systemctl", "start", "patroni")


class ReplicaKilled(Drill):
    name = "replica-killed"
    description = "a replica container killed (the synchronous standby if any); heal: lxc-start"
    affected = "target"
    failover = False

    def choose(self, ctx):
        ctx.target = ctx.node_named(ctx.preferred_replica())

    def inject(self, ctx):
        run(["lxc-stop", "-k", "-n", container(ctx.target)])

    def during(self, ctx):
        # until Patroni drops the member (its key expires) or ttl + loop_wait, writes going on
        hold = ctx.s["patroni_ttl"] + ctx.s["patroni_loop_wait"]
        name = ctx.target.patroni_name
        gone = wait_for(lambda: name not in {m["name"] for m in rest.members(ctx.cluster)}, hold, 0.5)
        ctx.notes["member_dropped"] = bool(gone)
        ctx.notes["writes_continued"] = wait_for(lambda: ctx.writer.last_ack() > time.monotonic() - 1, 20, 0.2)

    def heal(self, ctx):
        run(["lxc-start", "-n", container(ctx.target)])


_WORDS = {1: "one", 2: "two", 3: "three"}


class EtcdMembersDown(Drill):
    """``count`` etcd members stopped, the raft leader first; heal: started again.

    The counts are those of the lab's three etcd members: 1 leaves a quorum (etcd-one-down:
    the Patroni leader must stay leader, no other member may become writable), 2 loses it
    (etcd-quorum-lost: without failsafe mode no member may accept writes until quorum is
    back; with it, the leader, reaching every member, stays the only writable one past its
    lock's ttl). ``choose`` refuses a count that does not do what the drill's name says on
    the cluster's etcd.
    """

    failover = False  # with quorum lost, the same or another member leads when it returns

    def __init__(self, count: int):
        self.count = count
        self.quorum_lost = count > 1
        if self.quorum_lost:
            self.name = "etcd-quorum-lost"
            self.description = (f"{_WORDS.get(count, count)} etcd members stopped (quorum lost): "
                                "no member may accept writes (failsafe mode: the leader goes on); "
                                "back with quorum")
            self.affected = "leader"
        else:
            self.name = "etcd-one-down"
            self.description = "one etcd member stopped (the raft leader); the Patroni leader must stay leader"
            self.affected = None

    def choose(self, ctx):
        ctx.etcd_targets = etcd_members_to_stop(ctx, self.name, self.count, self.quorum_lost)
        if self.quorum_lost:
            super().choose(ctx)
            ctx.notes["failsafe"] = failsafe_mode(ctx.cluster)
        else:
            ctx.target = None

    def inject(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "stop", "etcd")

    def during(self, ctx):
        if self.quorum_lost:
            self._quorum_lost(ctx)
        else:
            self._quorum_kept(ctx)

    def heal(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "start", "etcd")

    @staticmethod
    def _quorum_kept(ctx):
        # long enough for the leader to renew its lock at least twice through the others
        time.sleep(2 * ctx.s["patroni_loop_wait"] + 2)
        leader = rest.leader(ctx.cluster)
        ctx.notes["leader_during"] = leader["name"] if leader else None
        ctx.notes["other_primaries"] = sorted(
            ctx.monitor.primaries_between(ctx.t_inject, time.monotonic()) - {ctx.old_leader["name"]}
        )

    @staticmethod
    def _quorum_lost(ctx):
        if ctx.notes["failsafe"]:
            leader_goes_on(ctx)
            return
        monitor = ctx.monitor

        def no_primary():
            now = time.monotonic()
            time.sleep(monitor.interval * 2)
            return monitor.sampled_since(now) and not monitor.primaries_between(now, time.monotonic())

        demoted = wait_for(no_primary, ctx.failover_timeout, 0.2)
        t_demoted = time.monotonic()
        ctx.notes["demoted"] = bool(demoted)
        ctx.notes["demoted_after"] = round(t_demoted - ctx.t_inject, 2) if demoted else None
        time.sleep(max(5.0, float(ctx.s["patroni_loop_wait"])))
        t_end = time.monotonic()
        # nothing writable while quorum is lost (after the leader noticed it)
        ctx.notes["primaries_while_lost"] = sorted(monitor.primaries_between(t_demoted, t_end))
        ctx.notes["acks_while_lost"] = ctx.writer.acks_between(t_demoted, t_end)
        ctx.notes["lost_window"] = (t_demoted, t_end)


def leader_goes_on(ctx):
    """Failsafe mode, the leader without the DCS: past its lock's ttl (when the others would
    race for it), it is the only writable member and writes are still acknowledged."""
    s = ctx.s
    time.sleep(s["patroni_ttl"] + s["patroni_loop_wait"] + 5)
    t_end = time.monotonic()
    ctx.notes["primaries_while_lost"] = sorted(ctx.monitor.primaries_between(ctx.t_inject, t_end))
    ctx.notes["acks_after_ttl"] = ctx.writer.acks_between(ctx.t_inject + s["patroni_ttl"], t_end)
    ctx.notes["lost_window"] = (ctx.t_inject, t_end)


def failsafe_mode(cluster) -> bool:
    """Whether the DCS's configuration, as Patroni serves it, has failsafe mode on."""
    return bool((dynamic_config(cluster) or {}).get("failsafe_mode"))


def etcd_members_to_stop(ctx, drill: str, count: int, quorum_lost: bool) -> list:
    """The ``count`` etcd members a drill stops, the raft leader first, once it is sure that
    stopping them loses (or keeps) the quorum as the drill says."""
    members = len(ctx.cluster.etcd)
    lost = members - count < members // 2 + 1
    if count > members or lost != quorum_lost:
        raise DrillError(f"{drill}: stopping {count} of {members} etcd members "
                         f"{'loses' if lost else 'keeps'} the quorum")
    return etcd_leader_first(ctx.cluster)[:count]


class EtcdQuorumLostLeaderCut(Drill):
    """The case failsafe mode must not cover: etcd's quorum lost, then the leader cut off from
    the other members. It can no longer reach them all, so it must stop accepting writes;
    no other member may take them (they have no DCS either)."""

    name = "etcd-quorum-lost-leader-cut"
    description = ("two etcd members stopped (quorum lost), then the leader cut off from the network: "
                   "it must stop accepting writes, and no other member take them; heal: veth up, etcd started")

    def choose(self, ctx):
        super().choose(ctx)
        ctx.etcd_targets = etcd_members_to_stop(ctx, self.name, 2, True)
        ctx.notes["failsafe"] = failsafe_mode(ctx.cluster)

    def inject(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "stop", "etcd")
        # one HA loop without the DCS: failsafe mode keeps the leader, or it has demoted
        time.sleep(ctx.s["patroni_loop_wait"] + 2)
        ctx.notes["leader_writable_before_cut"] = local_is_primary(ctx.cluster, ctx.target)
        ctx.notes["veth"] = cut_off(ctx.target)
        ctx.notes["t_cut"] = time.monotonic()

    def during(self, ctx):
        t_cut = ctx.notes.pop("t_cut")
        demoted = wait_for(lambda: local_is_primary(ctx.cluster, ctx.target) is not True, ctx.failover_timeout, 0.3)
        ctx.notes["isolated_demoted"] = bool(demoted)
        ctx.notes["demoted_after_cut"] = round(time.monotonic() - t_cut, 2) if demoted else None
        time.sleep(ctx.s["patroni_loop_wait"])
        others = ctx.monitor.primaries_between(t_cut, time.monotonic()) - {ctx.old_leader["name"]}
        ctx.notes["other_primaries"] = sorted(others)

    def heal(self, ctx):
        reconnect(ctx.notes["veth"])
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "start", "etcd")


class LeaderIsolated(Drill):
    name = "leader-network-cut"
    description = "leader cut off from the network (host side veth down); heal: veth up"

    def inject(self, ctx):
        ctx.notes["veth"] = cut_off(ctx.target)

    def during(self, ctx):
        # the isolated old leader must stop accepting writes: asked inside the container
        # (lxc-attach) every ~0.5 s, in parallel with the wait for the new leader
        demoted: dict = {}

        def watch():
            if wait_for(lambda: local_is_primary(ctx.cluster, ctx.target) is not True, ctx.failover_timeout, 0.3):
                demoted["at"] = time.monotonic()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ctx.notes["failover_seen"] = ctx.wait_new_leader_writing()
        watcher.join(ctx.failover_timeout + 30)
        ctx.notes["isolated_demoted"] = "at" in demoted
        ctx.notes["isolated_demoted_after"] = round(demoted["at"] - ctx.t_inject, 2) if demoted else None
        # when the new leader was first seen writable (the watcher cannot reach the old one)
        new = ctx.notes.get("new_leader")
        starts = [a for a, _ in ctx.monitor.primary_periods().get(new, []) if a >= ctx.t_inject]
        ctx.notes["new_primary_after"] = round(starts[0] - ctx.t_inject, 2) if starts else None

    def heal(self, ctx):
        reconnect(ctx.notes["veth"])


class LeaderHaproxyStopped(Drill):
    name = "leader-haproxy-stopped"
    description = ("HAProxy stopped on the leader's node: its Patroni loses the DCS (local etcd "
                   "proxy) and demotes (with failsafe mode it leads on: it reaches every member); heal: start")

    def choose(self, ctx):
        super().choose(ctx)
        ctx.notes["failsafe"] = failsafe_mode(ctx.cluster)

    def during(self, ctx):
        if ctx.notes["failsafe"]:
            leader_goes_on(ctx)
        else:
            super().during(ctx)

    def inject(self, ctx):
        attach(ctx.target, "systemctl", "stop", "haproxy")

    def heal(self, ctx):
        attach(ctx.target, "systemctl", "start", "haproxy")


class Switchover(Drill):
    name = "switchover"
    description = "planned switchover (POST /switchover) to a replica (the synchronous standby if any)"

    def __init__(self, inventory: str | Path | None = None):
        # with an inventory, through the CLI: `pgha switchover --to NAME --inventory PATH`;
        # without, client.switchover directly
        self.inventory = inventory

    def choose(self, ctx):
        super().choose(ctx)
        ctx.notes["candidate"] = ctx.preferred_replica()

    def inject(self, ctx):
        if self.inventory:
            proc = run([str(Path(sys.executable).parent / "pgha"), "switchover", "--to", ctx.notes["candidate"],
                        "--inventory", str(self.inventory)], timeout=120, check=False)
            ctx.notes["cli_rc"] = proc.returncode
            ctx.notes["cli_output"] = (proc.stdout + proc.stderr).strip()
        else:
            ctx.notes["switchover"] = client.switchover(ctx.cluster, ctx.notes["candidate"])


# name -> a new drill of that name
DRILLS: dict[str, Callable[[], Drill]] = {
    "leader-killed": LeaderKilled,
    "leader-patroni-stopped": LeaderPatroniStopped,
    "replica-killed": ReplicaKilled,
    "etcd-one-down": partial(EtcdMembersDown, 1),
    "etcd-quorum-lost": partial(EtcdMembersDown, 2),
    "etcd-quorum-lost-leader-cut": EtcdQuorumLostLeaderCut,
    "leader-network-cut": LeaderIsolated,
    "leader-haproxy-stopped": LeaderHaproxyStopped,
    "switchover": Switchover,
}
