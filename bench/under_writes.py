"""What a command costs the cluster's clients: writes through HAProxy's read-write port and
the split-brain watcher run while the command runs, then the figures are printed.

Usage:
  .venv/bin/python bench/under_writes.py [--inventory inventory.py] [--sslmode prefer]
      [--label NAME] [--output bench/results/NAME.json] -- COMMAND [ARGS...]

Examples: a deploy migrating a cluster deployed before TLS (`--sslmode prefer`: the writer
and the watcher must reach it before its TLS is on; its table pgha_drill.writes is made
beforehand with the previous version's pgha.drills.setup_table), a secret rotated by the
deploy:
  .venv/bin/python bench/under_writes.py --label rotation -- \
      .venv/bin/pyinfra -y inventory.py deploys/all.py

Prints: the longest gap between two acknowledged writes while the command ran (with when it
happened), the writes acknowledged and refused, the leaders seen, whether two nodes were
ever writable primaries at once, and the acknowledged rows missing from the final leader.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha import drills  # noqa: E402
from pgha.errors import DrillError  # noqa: E402
from pgha.patroni import rest  # noqa: E402
from pgha.settings.loader import DEFAULT_INVENTORY, load_cluster  # noqa: E402


def run(cluster, command: list[str], sslmode: str | None, label: str) -> dict:
    if sslmode is None:
        drills.setup_table(cluster)  # else a cluster before TLS: its table made beforehand
    monitor = drills.Monitor(cluster, sslmode=sslmode).start()
    writer = drills.Writer(cluster, label=label, sslmode=sslmode)
    writer.start()
    time.sleep(2)  # the writer's rhythm before the command starts
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    ended = time.monotonic()
    time.sleep(2)
    writer.stop()
    monitor.stop()
    gap = writer.longest_gap(started, ended)
    leader = rest.leader(cluster)
    missing = drills.missing_ids(cluster, writer, leader["host"]) if leader else None
    errors = Counter(message for t, message in writer.errors if started <= t <= ended)
    return {
        "label": label,
        "command": " ".join(command),
        "exit_code": result.returncode,
        "command_seconds": round(ended - started, 1),
        "longest_gap_seconds": round(gap["seconds"], 3),
        "gap_started_after_seconds": round(gap["from"] - started, 1),
        "writes_acknowledged": writer.acks_between(started, ended),
        "writes_refused": sum(errors.values()),
        "refusals": dict(errors.most_common(5)),
        "primaries_seen": sorted(monitor.primaries_between(started, ended)),
        "two_primaries_at_once": bool(monitor.two_primaries()),
        "acknowledged_rows_missing": None if missing is None else len(missing),
        "final_leader": leader["name"] if leader else None,
        "output_tail": result.stdout.splitlines()[-12:] + result.stderr.splitlines()[-5:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", default=str(DEFAULT_INVENTORY))
    parser.add_argument("--sslmode", default=None,
                        help="libpq sslmode of the writer and the watcher (default: verify-full)")
    parser.add_argument("--label", default="command")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: expected `-- COMMAND [ARGS...]`")
    try:
        figures = run(load_cluster(args.inventory), command, args.sslmode, args.label)
    except DrillError as error:
        print(f"under_writes: {error}", file=sys.stderr)
        return 1
    print("\n".join(figures.pop("output_tail")))
    print(json.dumps(figures, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
