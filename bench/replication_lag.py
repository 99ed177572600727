"""Watch the replicas' lag (pghalab.drills.lag) while something else runs on the cluster,
such as the asynchronous soak: what a failover could lose, sampled twice a second.

Usage:
  .venv/bin/python bench/replication_lag.py [--inventory inventory.py] [--interval 0.5]
      [--seconds N] --output bench/results/lag-NAME.json

Runs until --seconds have passed, or until SIGINT or SIGTERM, then writes each member's
largest lag, and each change of leader with the new leader's lag just before it, against
patroni_maximum_lag_on_failover. Read-only: it asks each member's REST API only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha.settings.loader import load_cluster  # noqa: E402
from pghalab.drills.lag import LagWatch  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", default=str(ROOT / "inventory.py"))
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.interval <= 0:
        parser.error(f"--interval {args.interval}: expected a number of seconds above 0")
    cluster = load_cluster(Path(args.inventory).resolve())
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    started = time.time()
    watch = LagWatch(cluster, args.interval).start()
    print(f"replication lag: sampling every {args.interval} s into {args.output}", flush=True)
    done.wait(args.seconds)
    watch.stop()
    found = watch.summary()
    found.update(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), seconds=round(time.time() - started),
                 maximum_lag_on_failover=cluster.settings["patroni_maximum_lag_on_failover"])
    for change in found["leader_changes"]:
        change["seen_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(change["seen_at"]))
    Path(args.output).write_text(json.dumps(found, indent=1) + "\n")
    print(f"replication lag: {found['samples']} samples, largest per member {found['max_lag_bytes']}, "
          f"{len(found['leader_changes'])} leader changes, maximum_lag_on_failover "
          f"{found['maximum_lag_on_failover']} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
