"""The fault soak: ``count`` faults in an order drawn from ``seed`` (the same seed draws the
same run), each held for a drawn time, healed, then checked, while the bank's clients
(pghalab.drills.bank) transfer amounts through the pooler and through HAProxy's 5432.

After every fault, once the cluster is healthy again: on the leader, the bank's rules and
the acknowledged transfers (none lost), the transfers of unknown outcome counted; on every
other member, the bank's rules on its own snapshot; archiving ok; and over the whole fault,
whether two members accepted writes at once (the drills' monitor, committing a row straight
to each member's PostgreSQL every 200 ms) and the longest time without any acknowledged
transfer (write unavailability).

Losses: in synchronous mode no fault may lose an acknowledged transfer. In asynchronous mode
a fault may lose what the replica it promoted had not received, so a loss is within bounds
when the fault moved the leadership and the promoted replica's lag just before (the lag
watcher, pghalab.drills.lag) was within ``patroni_maximum_lag_on_failover``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from pgha.backup.facts import ARCHIVER_QUERY
from pgha.waiting import wait_for
from pghalab.drills.bank import Bank, longest_gap, read_bank, setup_bank, verdict
from pghalab.drills.lag import LagWatch
from pghalab.drills.libpq import try_query
from pghalab.drills.monitor import Monitor
from pghalab.drills.runner import log
from pghalab.drills.scenarios import Context
from pghalab.drills.soak_faults import SOAK_FAULTS, HeldFault
from pghalab.drills.state import wait_healthy

HOLD_SECONDS = (2.0, 15.0)
ACCOUNTS = 100


def schedule(seed: int, count: int, names: list[str], hold: tuple[float, float] = HOLD_SECONDS) -> list[tuple[str, float]]:
    """The run ``seed`` draws: (fault, hold seconds) ``count`` times."""
    rng = random.Random(seed)
    return [(rng.choice(names), round(rng.uniform(*hold), 1)) for _ in range(count)]


def archiving_ok(cluster, address: str, timeout: float = 90) -> bool:
    """The leader's pg_stat_archiver shows no failure newer than its last success."""
    def ok():
        rows = try_query(cluster, address, ARCHIVER_QUERY, timeout=5)
        return bool(rows) and rows[0][5] is False
    return bool(wait_for(ok, timeout, 2))


def check_members(cluster, state: dict, bank: Bank) -> dict:
    """The bank's rules on every member that answers; on the leader, the acknowledged
    transfers (read after the acknowledgements they are compared with)."""
    acknowledged, unknown = bank.acknowledged(), bank.unknown()
    out: dict = {"members": {}}
    for node in cluster.patroni:
        leader = node.patroni_name == state["leader"]
        snapshot = read_bank(cluster, node.address, ids=leader)
        if "error" in snapshot:
            out["members"][node.patroni_name] = {"ok": False, "problem": f"did not answer: {snapshot['error']}"}
            continue
        found = verdict(snapshot["accounts"], ACCOUNTS, snapshot["transfers"], acknowledged, unknown) if leader \
            else verdict(snapshot["accounts"], ACCOUNTS)
        out["members"][node.patroni_name] = found
        if leader:
            out.update({k: found[k] for k in ("lost", "lost_ids", "unknown_committed", "unknown_not_committed")})
    out["ok"] = all(m["ok"] for m in out["members"].values())
    return out


def loss_ok(lost: int | None, promoted_lags: list[int | None], max_loss_lag: int | None) -> bool:
    """Whether a fault's lost transfers keep the promise: none (synchronous mode,
    ``max_loss_lag`` None), or, in asynchronous mode, only after promotions of replicas whose
    lag just before was known and within ``max_loss_lag`` bytes."""
    if not lost:
        return lost == 0
    return max_loss_lag is not None and bool(promoted_lags) and all(
        lag is not None and lag <= max_loss_lag for lag in promoted_lags)


def run_fault(cluster, bank: Bank, monitor: Monitor, lag_watch: LagWatch, name: str, hold: float,
              heal_timeout: float) -> dict:
    """One fault from a healthy cluster: inject, hold, heal, wait until healthy, check."""
    before = wait_healthy(cluster, timeout=heal_timeout)
    if not before["ok"]:
        return {"fault": name, "ok": False, "problem": f"not healthy before: {before['problem']}"}
    leader = next(m for m in before["members"] if m["role"] == "leader")
    fault = SOAK_FAULTS[name](hold)
    ctx = Context(cluster, bank, monitor, leader, before["timeline"])
    fault.choose(ctx)
    target = ctx.target.name if ctx.target else [n.name for n in ctx.etcd_targets]
    ctx.t_inject, wall_inject = time.monotonic(), time.time()
    injected_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # to find it in the journals
    try:
        fault.inject(ctx)
        fault.during(ctx)
        if not isinstance(fault, HeldFault):
            time.sleep(hold)  # a drill's fault, held on after its effect
    finally:
        ctx.t_heal = time.monotonic()
        fault.heal(ctx)
    after = wait_healthy(cluster, timeout=heal_timeout)
    t_healthy = time.monotonic()
    wait_for(lambda: bank.last_ack() > t_healthy, 30, 0.1)  # writes go on
    result = {
        "fault": name, "injected_at": injected_at, "hold_s": hold, "old_leader": leader["name"], "target": target,
        "new_leader": after["leader"], "healed": after["ok"], "problem": after["problem"],
        "heal_s": round(t_healthy - ctx.t_heal, 1),
        "unavailable_s": longest_gap(bank.ack_times(), ctx.t_inject, time.monotonic()),
        "two_writable": sorted(o["nodes"] for o in monitor.two_primaries() if o["to"] >= ctx.t_inject),
        "notes": {k: v for k, v in ctx.notes.items() if k != "lost_window"},
        "fault_problem": fault.problem(ctx) if isinstance(fault, HeldFault) else None,
        # each replica promoted by this fault: its lag just before, which asynchronous mode can lose
        "promoted_lag_bytes": [c["last_lag_bytes"] for c in lag_watch.changes_since(wall_inject)],
    }
    if after["ok"]:
        result["archiving_ok"] = archiving_ok(cluster, next(n.address for n in cluster.patroni
                                                              if n.patroni_name == after["leader"]))
        result.update(check_members(cluster, after, bank))
    result["ok"] = bool(after["ok"] and result.get("ok") and result["archiving_ok"] and not result["two_writable"]
                        and not result["fault_problem"])
    return result


def run_soak(cluster, seed: int, count: int, names: list[str], clients: int = 8, heal_timeout: float = 180,
             report: Callable[[dict], None] | None = None, plan: list[tuple[str, float]] | None = None,
             max_loss_lag: int | None = None) -> dict:
    """The whole run; ``report`` gets each fault's result as it ends (the bank's clients
    still running). ``plan``: these (fault, hold) instead of the ones ``seed`` draws.
    ``max_loss_lag``: asynchronous mode's bound (``loss_ok``); None: nothing may be lost."""
    plan = plan or schedule(seed, count, names)
    count = len(plan)
    setup_bank(cluster, ACCOUNTS)
    monitor = Monitor(cluster, write=True).start()
    lag_watch = LagWatch(cluster).start()
    bank = Bank(cluster, seed, clients).start()
    results: list[dict] = []
    lost_before: set[str] = set()
    unknown_before = {"unknown_committed": 0, "unknown_not_committed": 0}
    started = time.monotonic()
    try:
        wait_for(lambda: bank.last_ack() > 0, 30, 0.1)
        for index, (name, hold) in enumerate(plan, 1):
            log(f"soak {index}/{count}: {name} held {hold}s")
            try:
                result = run_fault(cluster, bank, monitor, lag_watch, name, hold, heal_timeout)
            except Exception as error:  # noqa: BLE001 - a fault that broke the run is a finding
                result = {"fault": name, "ok": False, "problem": f"{type(error).__name__}: {error}"}
            result["index"] = index
            # what this fault lost (the leader's check counts every acknowledged transfer)
            missing = set(result.pop("lost_ids", []))
            result["lost"] = len(missing - lost_before) if "lost" in result else None
            result["lost_ids"] = sorted(missing - lost_before)[:10]
            lost_before |= missing
            if result.get("lost") is not None:
                result["loss_ok"] = loss_ok(result["lost"], result.get("promoted_lag_bytes", []), max_loss_lag)
                result["ok"] = bool(result["ok"] and result["loss_ok"])
            for key in ("unknown_committed", "unknown_not_committed"):  # this fault's, not the run's
                if key in result:
                    result[key], unknown_before[key] = result[key] - unknown_before[key], result[key]
            results.append(result)
            if report:
                report(result)
            if not result.get("healed", False):
                break  # the next fault would start from a broken cluster
    finally:
        bank.stop()
        monitor.stop()
        lag_watch.stop()
    return {"seed": seed, "count": count, "faults": results, "seconds": round(time.monotonic() - started),
            "acknowledged": len(bank.acknowledged()), "unknown": len(bank.unknown()), "errors": bank.errors(),
            "max_loss_lag": max_loss_lag, "replication_lag": lag_watch.summary(), "summary": summary(results)}


def summary(results: list[dict]) -> dict:
    """Per fault type: how many, how many failed a check, write unavailability (median, p95, max)."""
    by_type: dict[str, list[dict]] = {}
    for r in results:
        by_type.setdefault(r["fault"], []).append(r)
    out = {}
    for name, rows in sorted(by_type.items()):
        gaps = sorted(r["unavailable_s"] for r in rows if "unavailable_s" in r)
        out[name] = {
            "count": len(rows), "failed": sum(1 for r in rows if not r.get("ok")),
            "lost": sum(r.get("lost") or 0 for r in rows),
            "promoted_lag_max_bytes": max((lag for r in rows for lag in r.get("promoted_lag_bytes") or []
                                           if lag is not None), default=None),
            "unavailable_median_s": round(statistics.median(gaps), 2) if gaps else None,
            "unavailable_p95_s": gaps[min(len(gaps) - 1, round(0.95 * (len(gaps) - 1)))] if gaps else None,
            "unavailable_max_s": gaps[-1] if gaps else None,
        }
    return out
