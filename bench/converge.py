"""Where a converge's time goes: pyinfra's own floor against a no-op deploy, interleaved.

Usage:
  .venv/bin/python bench/converge.py [--inventory inventory.py] [--rounds 5] [--deploy deploys/all.py]
      [--output bench/results/converge.json]

Each round runs the floor (`pyinfra -y INVENTORY exec -- true`: load the inventory, connect
to every host, one command each) and then the deploy, which must change nothing (the
benchmark stops if it does). It prints every time, the medians and their ratio, and, from
the median deploy run, the slowest operations and the facts pyinfra fetched (each operation
timed from its start line to the next, printed with -v: the facts appear as they load).
A benchmark prints figures: no test asserts a time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYINFRA = ROOT / ".venv" / "bin" / "pyinfra"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
GRAND_TOTAL = re.compile(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)")
PHASES = {"Loading inventory": "inventory", "Connecting to hosts": "connect",
          "Preparing operation files": "prepare", "Beginning operation run": "execute",
          "Results:": "results"}


def timed_run(command: list[str]) -> tuple[float, list[tuple[float, str]]]:
    """Run ``command``; (seconds, [(seconds since start, line)]) of its merged output."""
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    lines = [(time.monotonic() - started, ANSI.sub("", line.rstrip("\n"))) for line in proc.stdout]
    if proc.wait() != 0:
        sys.exit(f"{' '.join(command)} failed:\n" + "\n".join(line for _, line in lines[-40:]))
    return time.monotonic() - started, lines


def phases(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds spent in each of pyinfra's phases (from its `-->` lines)."""
    marks = [(t, name) for t, line in lines for key, name in PHASES.items() if f"--> {key}" in line]
    marks.append((total, "end"))
    spent: Counter = Counter()
    for (start, name), (end, _) in zip(marks, marks[1:]):
        spent[name] += end - start
    return dict(spent)


def operations(lines: list[tuple[float, str]], total: float) -> list[dict]:
    """Each operation: its name, seconds until the next one starts, the facts loaded meanwhile."""
    found: list[dict] = []
    for t, line in lines:
        if "--> Starting operation:" in line:
            found.append({"name": line.split("--> Starting operation:", 1)[1].strip(), "start": t, "facts": []})
        elif "Loaded fact" in line and found:
            found[-1]["facts"].append(line.split("Loaded fact", 1)[1].strip().split(" (")[0])
        elif "--> Results:" in line and found:
            total = t
    for current, following in zip(found, found[1:] + [{"start": total}]):
        current["seconds"] = round(following["start"] - current["start"], 3)
    return found


def prepare_facts(lines: list[tuple[float, str]]) -> Counter:
    """Facts loaded while pyinfra prepared the operations (the deploy files' own lookups)."""
    counts: Counter = Counter()
    preparing = False
    for _, line in lines:
        if "--> Preparing operation files" in line:
            preparing = True
        elif "--> Beginning operation run" in line or "--> Skipping change detection" in line:
            preparing = False
        elif preparing and "Loaded fact" in line:
            counts[line.split("Loaded fact", 1)[1].strip().split(" (")[0]] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory.py")
    parser.add_argument("--deploy", default="deploys/all.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "converge.json"))
    args = parser.parse_args()
    floor_times, deploy_runs = [], []
    for round_number in range(1, args.rounds + 1):
        floor, _ = timed_run([str(PYINFRA), "-y", args.inventory, "exec", "--", "true"])
        seconds, lines = timed_run([str(PYINFRA), "-y", "-v", args.inventory, args.deploy])
        total = GRAND_TOTAL.search("\n".join(line for _, line in lines))
        if total is None or total.group(2) != "-":
            sys.exit(f"round {round_number}: the deploy changed something: {total.group(0) if total else 'no results'}")
        floor_times.append(floor)
        deploy_runs.append((seconds, lines, int(total.group(1))))
        print(f"round {round_number}: floor {floor:.2f} s, no-op deploy {seconds:.2f} s "
              f"({total.group(1)} operations, none changed)", flush=True)
    floor_median = statistics.median(floor_times)
    deploy_median = statistics.median(run[0] for run in deploy_runs)
    median_run = sorted(deploy_runs, key=lambda run: run[0])[len(deploy_runs) // 2]
    spent = phases(median_run[1], median_run[0])
    ops = operations(median_run[1], median_run[0])
    print(f"\nfloor (pyinfra exec -- true): median {floor_median:.2f} s of {args.rounds}")
    print(f"no-op {args.deploy}: median {deploy_median:.2f} s, {median_run[2]} host operations")
    print(f"ratio: {deploy_median / floor_median:.1f}x the floor")
    print("phases of the median run: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in spent.items()))
    print(f"\nslowest operations ({len(ops)} in all, {sum(len(o['facts']) for o in ops)} facts loaded while executing):")
    for op in sorted(ops, key=lambda o: -o["seconds"])[: args.top]:
        facts = Counter(op["facts"])
        asked = f"  [{', '.join(f'{k} x{v}' for k, v in facts.items())}]" if facts else ""
        print(f"  {op['seconds']:6.3f} s  {op['name']}{asked}")
    prepared = prepare_facts(median_run[1])
    print(f"\nfacts loaded while preparing: {sum(prepared.values())}"
          + (": " + ", ".join(f"{k} x{v}" for k, v in prepared.most_common()) if prepared else ""))
    Path(args.output).write_text(json.dumps({
        "inventory": args.inventory, "deploy": args.deploy, "rounds": args.rounds,
        "floor_seconds": [round(t, 3) for t in floor_times],
        "deploy_seconds": [round(run[0], 3) for run in deploy_runs],
        "floor_median": round(floor_median, 3), "deploy_median": round(deploy_median, 3),
        "ratio": round(deploy_median / floor_median, 2), "host_operations": median_run[2],
        "phases": {k: round(v, 3) for k, v in spent.items()},
        "slowest": [{"name": o["name"], "seconds": o["seconds"]} for o in sorted(ops, key=lambda o: -o["seconds"])[:30]],
        "facts_while_preparing": dict(prepared),
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
