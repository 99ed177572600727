"""What a command costs the cluster's clients: writes through HAProxy's read-write port and
the split-brain watcher run while the command runs, then the figures are printed.

Usage:
  .venv/bin/python bench/under_writes.py [--inventory inventory.py] [--sslmode prefer]
      [--label NAME] [--output bench/results/NAME.json] -- COMMAND [ARGS...]

Examples: a deploy migrating a cluster deployed before TLS (`--sslmode prefer`: the writer
and the watcher must reach it before its TLS is on; its table pgha_drill.writes is made
beforehand with the previous version's pghalab.drills.setup_table), a secret rotated by the
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha.errors import DrillError  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402
from pghalab.drills import under_writes  # noqa: E402
from pghalab.values import LAB_INVENTORY  # noqa: E402


def run(cluster, command: list[str], sslmode: str | None, label: str) -> dict:
    result, figures = under_writes.measure(
        cluster, lambda: subprocess.run(command, cwd=ROOT, capture_output=True, text=True), label, sslmode
    )
    return {
        **figures,
        "command": " ".join(command),
        "exit_code": result.returncode,
        "output_tail": result.stdout.splitlines()[-12:] + result.stderr.splitlines()[-5:],
        "output": result.stdout + result.stderr,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", default=str(LAB_INVENTORY))
    parser.add_argument("--sslmode", default=None,
                        help="libpq sslmode of the writer and the watcher (default: verify-full)")
    parser.add_argument("--label", default="command")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--log", default=None, help="write the command's whole output to this file")
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
    output = figures.pop("output")
    if args.log:
        Path(args.log).write_text(output, encoding="utf-8")
    print(json.dumps(figures, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
