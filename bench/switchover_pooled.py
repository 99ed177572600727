"""Switchovers as a client holding one connection sees them: through PgBouncer with every
pooler paused (`pgha switchover`), and through HAProxy's 5432 directly (the same writer,
reconnecting on error), alternated round by round.

Usage:
  .venv/bin/python bench/switchover_pooled.py [--inventory inventory.py] [--rounds 10]
      [--interval 0.02] [--output bench/results/switchover_pooled.json]

Each round: the cluster healthy, a writer (one insert every --interval seconds, autocommit)
started, `client.switchover` (the code of `pgha switchover`), one second more, the writer
stopped. Printed per path: the errors the client saw, and the longest gap between
acknowledged writes (min, median, 90th percentile, max) over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha import client  # noqa: E402
from pgha.patroni import rest  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402
from pgha.waiting import wait_for  # noqa: E402
from pghalab.drills.writer import Writer, setup_table  # noqa: E402

PATHS = {"pooled, paused": ("pgbouncer_port", True), "direct 5432": ("haproxy_rw_port", False)}


def one_round(cluster, port_setting: str, pause: bool, interval: float) -> dict:
    def ready() -> bool:  # healthy, and every replica streaming as the switchover asks it
        replicas = [m for m in rest.members(cluster) if m["role"] == "replica" and m["state"] in ("running", "streaming")]
        return not rest.health(cluster)["problems"] and len(replicas) == len(cluster.patroni) - 1

    if not wait_for(ready, 120, interval=1):
        raise SystemExit(f"the cluster is not healthy: {rest.health(cluster)['problems']}")
    writer = Writer(cluster, label="bench-switchover", interval=interval, port_setting=port_setting)
    writer.start()
    try:
        wait_for(lambda: len(writer.acks) > 10, 30, interval=0.1)
        started = time.monotonic()
        result = client.switchover(cluster, pause=pause)
        time.sleep(1)
    finally:
        writer.stop()
    return {"from": result["from"], "to": result["to"], "switchover_seconds": result["seconds"],
            "paused_seconds": result["paused"], "errors": len(writer.errors),
            "first_error": writer.errors[0][1] if writer.errors else None,
            "longest_gap": round(writer.longest_gap(started)["seconds"], 3)}


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"min": ordered[0], "median": round(statistics.median(ordered), 3),
            "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))], "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=str(ROOT / "inventory.py"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "switchover_pooled.json"))
    args = parser.parse_args()
    cluster = load_cluster(args.inventory)
    setup_table(cluster)
    runs: dict[str, list[dict]] = {path: [] for path in PATHS}
    for number in range(1, args.rounds + 1):
        for path, (port_setting, pause) in PATHS.items():
            run = one_round(cluster, port_setting, pause, args.interval)
            runs[path].append(run)
            print(f"round {number}/{args.rounds} {path:15} {run['from']} -> {run['to']}: "
                  f"longest gap {run['longest_gap']:.2f}s, {run['errors']} errors", flush=True)
    summary = {path: {"rounds": len(r), "errors": sum(x["errors"] for x in r),
                      "rounds_with_errors": sum(1 for x in r if x["errors"]),
                      "longest_gap": spread([x["longest_gap"] for x in r])} for path, r in runs.items()}
    print("\npath            rounds  errors (rounds with any)  longest gap min / median / p90 / max")
    for path, s in summary.items():
        g = s["longest_gap"]
        print(f"{path:15} {s['rounds']:6}  {s['errors']:6} ({s['rounds_with_errors']})"
              f"{'':14}{g['min']:.2f} / {g['median']:.2f} / {g['p90']:.2f} / {g['max']:.2f} s")
    Path(args.output).write_text(json.dumps({"interval": args.interval, "summary": summary, "runs": runs},
                                            indent=2) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
