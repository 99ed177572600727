"""``run_drill``: one drill from a healthy cluster back to a healthy cluster, with the writer
and the monitor running throughout, and the figures it returns."""

from __future__ import annotations

import sys
import time
from typing import Any

from pgha.errors import DrillError
from pgha.waiting import wait_for
from pghalab.drills.monitor import Monitor
from pghalab.drills.scenarios import DRILLS, Context, Drill
from pghalab.drills.state import dynamic_config, wait_healthy
from pghalab.drills.writer import Writer, missing_ids, setup_table


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_drill(cluster, drill: Drill | str, warmup: float = 3.0, settle: float = 2.0,
              heal_timeout: float = 180) -> dict:
    """Run one drill with the writer and the monitor; return its figures:
    name, rto_s (longest write gap), lost (acknowledged rows missing), rejoin_s (seconds from
    the fault until the affected node streams again), two_primaries, new_leader, timeline..."""
    drill = DRILLS[drill]() if isinstance(drill, str) else drill
    before = wait_healthy(cluster, timeout=heal_timeout)
    if not before["ok"]:
        raise DrillError(f"{drill.name}: the cluster is not healthy before the drill: {before['problem']}")
    setup_table(cluster)
    old_leader = next(m for m in before["members"] if m["role"] == "leader")
    monitor = Monitor(cluster).start()
    writer = Writer(cluster, label=drill.name)
    ctx = Context(cluster, writer, monitor, old_leader, before["timeline"])
    result: dict[str, Any] = {"drill": drill.name, "description": drill.description,
                              "old_leader": old_leader["name"], "timeline_before": before["timeline"]}
    try:
        writer.start()
        if not wait_for(lambda: len(writer.acks) >= 5, 30, 0.1):
            raise DrillError(f"{drill.name}: the writer cannot write before the drill: {writer.errors[-1:]}")
        time.sleep(warmup)
        drill.choose(ctx)
        affected = {"leader": old_leader["name"], "target": ctx.target.patroni_name if ctx.target else None,
                    None: None}[drill.affected]
        result["target"] = (ctx.target.name if ctx.target else None) or [n.name for n in ctx.etcd_targets]
        log(f"{drill.name}: inject ({drill.description}); leader {old_leader['name']}, target {result['target']}")
        ctx.t_inject = time.monotonic()
        drill.inject(ctx)
        result["inject_s"] = round(time.monotonic() - ctx.t_inject, 2)
        drill.during(ctx)
        log(f"{drill.name}: heal after {time.monotonic() - ctx.t_inject:.1f}s; {ctx.notes}")
        ctx.t_heal = time.monotonic()
        drill.heal(ctx)
        after = wait_healthy(cluster, timeout=heal_timeout, watch=affected)
        t_healthy = time.monotonic()
        # a few more writes on the final leader, then the figures
        resumed = wait_for(lambda: writer.last_ack() > t_healthy, 30, 0.1)
        time.sleep(settle)
    finally:
        writer.stop()
        monitor.stop()
    result.update(figures(ctx, after, affected, bool(resumed)))
    log(f"{drill.name}: rto {result['rto_s']}s, lost {result['lost']}, rejoin {result['rejoin_s']}s, "
        f"two primaries {result['two_primaries']}, leader {old_leader['name']} -> {result['new_leader']} "
        f"TL {result['timeline']}")
    return result


def figures(ctx: Context, after: dict, affected: str | None, resumed: bool) -> dict:
    """What a finished drill measured: ``after`` is the final ``wait_healthy`` state,
    ``affected`` the member whose return to streaming is timed, ``resumed`` whether a write
    was acknowledged once the cluster was healthy again."""
    cluster, writer, monitor = ctx.cluster, ctx.writer, ctx.monitor
    gap = writer.longest_gap(ctx.t_inject, writer.stopped_at)
    final_leader = after["leader"]
    final_host = next((n.address for n in cluster.patroni if n.patroni_name == final_leader), None)
    missing = missing_ids(cluster, writer, final_host) if final_host else None
    streams_at = after.get("watch_streaming_at") if affected and affected != final_leader else None
    overlaps = monitor.two_primaries()

    def since_inject(t: float) -> float:
        return round(t - ctx.t_inject, 2)

    return {
        "end_state_ok": after["ok"],
        "end_state_problem": after["problem"],
        "new_leader": final_leader,
        "leader_changed": final_leader != ctx.old_leader["name"],
        "timeline": after["timeline"],
        "timelines": {m["name"]: m["timeline"] for m in after["members"]},
        "rto_s": round(gap["seconds"], 2),
        "rto_gap": (since_inject(gap["from"]), since_inject(gap["to"])),
        "writes_resumed": resumed and gap["resumed"],
        "acked": len(writer.acks),
        "write_errors": len(writer.errors),
        "lost": None if missing is None else len(missing),
        "lost_ids": (missing or [])[:10],
        "affected": affected,
        "rejoin_s": since_inject(streams_at) if streams_at else None,
        "rejoin_after_heal_s": round(streams_at - ctx.t_heal, 2) if streams_at else None,
        "heal_at_s": since_inject(ctx.t_heal),
        "two_primaries": bool(overlaps),
        "two_primaries_detail": [
            {"nodes": o["nodes"], "from": since_inject(o["from"]), "to": since_inject(o["to"])} for o in overlaps
        ],
        "primary_periods": {
            name: [(since_inject(a), since_inject(b)) for a, b in runs]
            for name, runs in monitor.primary_periods().items()
        },
        "synchronous_mode": bool((dynamic_config(cluster) or {}).get("synchronous_mode")),
        "notes": {k: v for k, v in ctx.notes.items() if k != "lost_window"},
    }
