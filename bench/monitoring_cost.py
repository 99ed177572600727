"""What the monitoring costs the nodes: CPU and memory of every exporter and of Prometheus,
Alertmanager and the blackbox exporter, measured on the lab over a window.

Usage:
  .venv/bin/python bench/monitoring_cost.py [--inventory inventory.py] [--window 60]
      [--output bench/results/monitoring_cost.json]

Each daemon's main process is read twice, ``--window`` seconds apart, inside its container
(lxc-attach: /proc/PID/stat's user and system time, /proc/PID/status's resident memory; the
containers' systemd keeps no CPU accounting). CPU is the share of one core over the window.
The scrape interval is the inventory's monitoring_scrape_interval (printed). A benchmark
prints figures: no test asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha.monitor import exporters, server  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402
from pghalab.drills.faults import attach  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
READ = ("for unit in {units}; do pid=$(systemctl show -p MainPID --value $unit); "
        "if [ \"$pid\" -gt 0 ] 2>/dev/null; then echo $unit $(cut -d' ' -f14,15 /proc/$pid/stat) "
        "$(awk '/^VmRSS/ {{print $2}}' /proc/$pid/status); fi; done")


def sample(node, units: list[str]) -> dict[str, tuple[float, int]]:
    """unit -> (CPU seconds so far, resident KiB)."""
    out = attach(node, "sh", "-c", READ.format(units=" ".join(units))).stdout
    found = {}
    for line in out.splitlines():
        unit, user, system, rss = line.split()
        found[unit] = ((int(user) + int(system)) / TICKS, int(rss))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory.py")
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "monitoring_cost.json"))
    args = parser.parse_args()
    cluster = load_cluster(args.inventory)
    units = {n.name: [d.unit for d in exporters.daemons(cluster, n) + server.daemons(cluster, n)]
             for n in cluster.nodes}
    print(f"scrape interval {cluster.settings['monitoring_scrape_interval']}, window {args.window:.0f} s", flush=True)
    before = {n.name: sample(n, units[n.name]) for n in cluster.nodes}
    started = time.monotonic()
    time.sleep(args.window)
    after = {n.name: sample(n, units[n.name]) for n in cluster.nodes}
    elapsed = time.monotonic() - started
    rows = []
    for node in cluster.nodes:
        for unit in units[node.name]:
            if unit in before[node.name] and unit in after[node.name]:
                cpu = (after[node.name][unit][0] - before[node.name][unit][0]) / elapsed * 100
                rows.append({"node": node.name, "unit": unit, "cpu_percent": round(cpu, 2),
                             "rss_mib": round(after[node.name][unit][1] / 1024, 1)})
    print(f"{'node':<13} {'daemon':<32} {'CPU % of a core':>15} {'memory MiB':>11}")
    for row in rows:
        print(f"{row['node']:<13} {row['unit']:<32} {row['cpu_percent']:>15.2f} {row['rss_mib']:>11.1f}")
    Path(args.output).write_text(json.dumps({"scrape_interval": cluster.settings["monitoring_scrape_interval"],
                                             "window_seconds": round(elapsed, 1), "daemons": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
