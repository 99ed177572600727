"""The soak's faults: the drills (scenarios.DRILLS) and the ones only the soak causes, each
held for ``hold`` seconds (the soak draws it) before it is healed. Their ``during`` waits
for nothing in particular: what must hold is checked after the heal, by the soak.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pgha.backup import values as backup_values
from pgha.postgres import data_dir
from pgha.settings.loader import inventory_path
from pghalab import pyinfra_run
from pghalab.drills.faults import attach, container, drop_traffic, restore_traffic, run
from pghalab.drills.libpq import try_query
from pghalab.drills.scenarios import DRILLS, Drill, EtcdMembersDown, LeaderKilled, ReplicaKilled
from pghalab.drills.state import dynamic_config


class HeldFault(Drill):
    """A fault held ``hold`` seconds (at least the leader lock's ttl + 5 s when
    ``past_ttl``), whatever happens meanwhile."""

    failover = False
    past_ttl = False

    def __init__(self, hold: float = 10.0):
        self.hold = hold

    def during(self, ctx):
        minimum = ctx.s["patroni_ttl"] + 5 if self.past_ttl else 0
        time.sleep(max(self.hold, minimum))

    def problem(self, ctx) -> str | None:
        """What went wrong during the fault that the soak's checks after it cannot see."""
        return None


class LeaderProcessFrozen(HeldFault):
    """One of the leader's processes stopped (SIGSTOP) past the ttl; heal: SIGCONT.
    ``process``: "postgres" (the postmaster) or "patroni"."""

    past_ttl = True

    def __init__(self, hold: float = 10.0, process: str = "postgres"):
        super().__init__(hold)
        self.process = process
        self.name = f"leader-{process}-frozen"
        self.description = f"the leader's {process} main process stopped (SIGSTOP) past the ttl; heal: SIGCONT"

    def pid_command(self, ctx) -> list[str]:
        if self.process == "postgres":
            return ["head", "-1", f"{data_dir(ctx.s)}/postmaster.pid"]
        return ["systemctl", "show", "-p", "MainPID", "--value", self.process]

    def inject(self, ctx):
        ctx.notes["pid"] = attach(ctx.target, *self.pid_command(ctx)).stdout.strip()
        attach(ctx.target, "kill", "-STOP", ctx.notes["pid"])

    def heal(self, ctx):
        attach(ctx.target, "kill", "-CONT", ctx.notes["pid"])


class RepositoryDown(HeldFault):
    name = "repository-down"
    description = "the pgBackRest repository host's container killed; heal: lxc-start"
    affected = None

    def choose(self, ctx):
        ctx.target = ctx.cluster.backup[0]

    def inject(self, ctx):
        run(["lxc-stop", "-k", "-n", container(ctx.target)])

    def heal(self, ctx):
        run(["lxc-start", "-n", container(ctx.target)])
        # its TLS server back before the checks ask for archiving
        attach(ctx.target, "systemctl", "start", backup_values.SERVER_UNIT, timeout=60, check=False)


class ReplicaHaproxyKilled(HeldFault):
    name = "replica-haproxy-killed"
    description = "HAProxy killed (SIGKILL) on a replica's node; heal: systemctl start"
    affected = None

    choose = ReplicaKilled.choose

    def inject(self, ctx):
        attach(ctx.target, "systemctl", "kill", "-s", "KILL", "haproxy")

    def heal(self, ctx):
        attach(ctx.target, "systemctl", "start", "haproxy")


class LeaderCutOneWay(HeldFault):
    """The leader cut off from one side only, by a table of its own in the leader's
    nftables (both directions to those addresses): from the replicas (it still reaches
    etcd, so it keeps its lock) or from etcd (it still reaches the replicas)."""

    past_ttl = True  # shorter, Patroni would not notice

    def __init__(self, hold: float = 10.0, side: str = "replicas"):
        super().__init__(hold)
        self.side = side
        self.name = f"leader-cut-from-{side}"
        self.description = f"the leader's traffic to and from the {side} dropped (nftables); heal: table deleted"

    def addresses(self, ctx) -> list[str]:
        if self.side == "etcd":
            return [n.address for n in ctx.cluster.etcd]
        return [n.address for n in ctx.cluster.patroni if n.patroni_name != ctx.old_leader["name"]]

    def inject(self, ctx):
        drop_traffic(ctx.target, self.addresses(ctx))

    def heal(self, ctx):
        restore_traffic(ctx.target)


class DeployDuring(HeldFault):
    """Another fault, and the whole deploy (deploys/all.py, the inventory of $PGHA_INVENTORY)
    started at once while it lasts, as an operator would to "fix" it. The deploy may stop
    (a member unreachable, the final check failing), but with its message and no traceback,
    and it restarts no PostgreSQL of a member the fault did not hit. Healed as the other
    fault is; the soak's checks follow."""

    def __init__(self, hold: float, inner: Drill):
        super().__init__(hold)
        self.inner = inner
        self.name = f"deploy-during-{inner.name}"
        self.description = f"deploys/all.py run during: {inner.description}"
        self.affected = inner.affected

    def choose(self, ctx):
        self.inner.choose(ctx)

    def inject(self, ctx):
        hit = ctx.target.name if ctx.target else None
        self.spared = [n for n in ctx.cluster.patroni if n.name != hit]
        ctx.notes["started_before"] = _postmaster_starts(ctx.cluster, self.spared)
        # the mode the soak runs in (bench/soak.py --mode), not group_data's
        synchronous = bool((dynamic_config(ctx.cluster) or {}).get("synchronous_mode"))
        self.deploy_args = ["--data", f"patroni_synchronous_mode={synchronous}"]
        self.inner.inject(ctx)

    def during(self, ctx):
        began = time.monotonic()
        code, output = pyinfra_run.deploy(inventory_path(None), "deploys/all.py", *self.deploy_args,
                                          timeout=900)
        errors = [line.strip() for line in output.splitlines() if "error" in line.lower()][-3:]
        ctx.notes.update({"deploy_exit": code, "deploy_s": round(time.monotonic() - began, 1),
                          "deploy_traceback": "Traceback" in output, "deploy_errors": errors})
        started_after = _postmaster_starts(ctx.cluster, self.spared)
        ctx.notes["restarted_by_the_deploy"] = sorted(
            name for name, start in started_after.items() if start and start != ctx.notes["started_before"].get(name))
        time.sleep(max(0.0, self.hold - (time.monotonic() - began)))

    def heal(self, ctx):
        self.inner.heal(ctx)

    def problem(self, ctx) -> str | None:
        """What the deploy did wrong, or None."""
        if ctx.notes.get("deploy_traceback"):
            return "the deploy run during the fault ended with a traceback"
        if ctx.notes.get("restarted_by_the_deploy"):
            return f"the deploy restarted PostgreSQL on {ctx.notes['restarted_by_the_deploy']}"
        return None


def _postmaster_starts(cluster, nodes) -> dict[str, str | None]:
    """Each node's PostgreSQL start time, None when it does not answer."""
    out = {}
    for node in nodes:
        rows = try_query(cluster, node.address, "select pg_postmaster_start_time()::text")
        out[node.name] = rows[0][0] if rows else None
    return out


# the soak's faults: name -> a new fault held ``hold`` seconds
SOAK_FAULTS: dict[str, Callable[[float], Drill]] = {
    **{name: (lambda hold, make=make: make()) for name, make in DRILLS.items() if name != "switchover"},
    "leader-postgres-frozen": lambda hold: LeaderProcessFrozen(hold, "postgres"),
    "leader-patroni-frozen": lambda hold: LeaderProcessFrozen(hold, "patroni"),
    "repository-down": RepositoryDown,
    "replica-haproxy-killed": ReplicaHaproxyKilled,
    "leader-cut-from-replicas": lambda hold: LeaderCutOneWay(hold, "replicas"),
    "leader-cut-from-etcd": lambda hold: LeaderCutOneWay(hold, "etcd"),
    "deploy-during-leader-killed": lambda hold: DeployDuring(hold, LeaderKilled()),
    "deploy-during-replica-killed": lambda hold: DeployDuring(hold, ReplicaKilled()),
    "deploy-during-etcd-one-down": lambda hold: DeployDuring(hold, EtcdMembersDown(1)),
}
