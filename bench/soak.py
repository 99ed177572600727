"""The fault soak (lab/pghalab/soak.py): N faults drawn from a seed under 8 bank clients,
the invariants checked after each, in one replication mode.

Usage:
  .venv/bin/python bench/soak.py [--inventory inventory.py] [--faults 100] [--seed N]
      [--mode async|sync] [--only leader-killed,repository-down,...] [--clients 8]
      [--output bench/results]

The seed is printed first (drawn when not given): the same seed replays the same faults in
the same order with the same hold times. `--mode` applies patroni_synchronous_mode with
deploys/patroni.py and group_data's settings are restored at the end. Each fault's result
is printed as it ends; the raw results go to OUTPUT/soak-MODE-SEED.json, and a table per
fault type is printed at the end. Exit status 1 when any fault failed a check. In async mode
a fault may lose acknowledged transfers only by promoting a replica whose lag just before was
within patroni_maximum_lag_on_failover (lab/pghalab/soak.py's loss_ok); in sync mode, none.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from choices import comma_list  # noqa: E402
from ha_drills import MODES, apply  # noqa: E402

from pgha.settings.loader import INVENTORY_VARIABLE, load_cluster  # noqa: E402
from pgha.waiting import wait_for  # noqa: E402
from pghalab import soak  # noqa: E402
from pghalab.drills.soak_faults import SOAK_FAULTS  # noqa: E402
from pghalab.drills.state import dynamic_config, sync_standbys  # noqa: E402


def line(result: dict) -> str:
    keys = ("index", "fault", "hold_s", "target", "old_leader", "new_leader", "unavailable_s", "heal_s", "lost",
            "promoted_lag_bytes", "loss_ok", "unknown_committed", "unknown_not_committed", "archiving_ok",
            "two_writable", "fault_problem", "ok", "problem")
    return json.dumps({k: result.get(k) for k in keys if result.get(k) not in (None, "", [])})


def table(summary: dict) -> list[str]:
    lines = ["| fault | runs | failed a check | acknowledged lost | promoted replica's lag, max (bytes) "
             "| unavailable median / p95 / max (s) |", "|---|---|---|---|---|---|"]
    for name, row in summary.items():
        lag = "-" if row["promoted_lag_max_bytes"] is None else row["promoted_lag_max_bytes"]
        lines.append(f"| {name} | {row['count']} | {row['failed']} | {row['lost']} | {lag} | "
                     f"{row['unavailable_median_s']} / {row['unavailable_p95_s']} / {row['unavailable_max_s']} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", default=str(ROOT / "inventory.py"))
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--mode", choices=sorted(MODES), default="sync")
    parser.add_argument("--only", default=",".join(sorted(SOAK_FAULTS)))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    args.only = comma_list(parser, args.only, sorted(SOAK_FAULTS), "fault")
    if args.faults < 1 or args.clients < 1:
        parser.error(f"--faults {args.faults} --clients {args.clients}: expected at least 1 of each")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    print(f"soak: seed {seed}, {args.faults} faults, mode {args.mode}, faults drawn from {', '.join(args.only)}",
          flush=True)
    inventory = Path(args.inventory).resolve()
    os.environ[INVENTORY_VARIABLE] = str(inventory)  # the deploy run during a fault (deploy-during-*)
    apply(inventory, None, MODES[args.mode])
    try:
        cluster = load_cluster(inventory)
        if MODES[args.mode] and not wait_for(lambda: sync_standbys(cluster), 60, 0.5):
            raise SystemExit(f"no synchronous standby after enabling synchronous mode: {dynamic_config(cluster)}")
        max_loss_lag = None if MODES[args.mode] else cluster.settings["patroni_maximum_lag_on_failover"]
        outcome = soak.run_soak(cluster, seed, args.faults, args.only, clients=args.clients,
                                report=lambda r: print(line(r), flush=True), max_loss_lag=max_loss_lag)
    finally:
        apply(inventory, None, None)  # group_data's settings
    outcome["mode"] = args.mode
    output = Path(args.output) / f"soak-{args.mode}-{seed}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(outcome, indent=1, default=str) + "\n")
    failed = [r for r in outcome["faults"] if not r.get("ok")]
    print("\n".join(table(outcome["summary"])))
    print(f"soak: seed {seed}, mode {args.mode}: {len(outcome['faults'])} faults in {outcome['seconds']} s, "
          f"{outcome['acknowledged']} transfers acknowledged, {outcome['unknown']} of unknown outcome, "
          f"{sum(r.get('lost') or 0 for r in outcome['faults'])} acknowledged lost, "
          f"{len(failed)} faults failed a check; raw results in {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
