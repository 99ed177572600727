"""bench/throughput.py's targets (what is measured, against which direct port, in which order each round), pgbench's
figures read from its output, and the report (medians, ratios round by round, the markdown
table and the JSON)."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

DATABASE = "pgbench"


@dataclass(frozen=True)
class Target:
    name: str
    role: str  # "leader" or "replica": the node whose address is used
    port_setting: str
    modes: tuple[str, ...]
    baseline: str | None  # the direct target of the same server
    about: str
    pool_suffix: str = ""  # through PgBouncer: the pool's suffix of the database (_ro: read-only)


TARGETS = [
    Target("leader-5434", "leader", "postgresql_port", ("select", "tpcb"), None, "leader, PostgreSQL direct"),
    Target("leader-5432", "leader", "haproxy_rw_port", ("select", "tpcb"), "leader-5434",
           "leader node's HAProxy rw (local hop)"),
    Target("other-5432", "replica", "haproxy_rw_port", ("select", "tpcb"), "leader-5434",
           "replica node's HAProxy rw -> leader (network hop)"),
    Target("replica-5434", "replica", "postgresql_port", ("select",), None, "one replica, PostgreSQL direct"),
    Target("replicas-5433", "replica", "haproxy_ro_port", ("select",), "replica-5434",
           "replica node's HAProxy ro, round-robin over replicas"),
    Target("leader-6432", "leader", "pgbouncer_port", ("select", "tpcb"), "leader-5434",
           "leader node's PgBouncer -> its HAProxy rw -> leader"),
    Target("other-6432", "replica", "pgbouncer_port", ("select", "tpcb"), "leader-5434",
           "replica node's PgBouncer -> its HAProxy rw -> leader (network hop)"),
    Target("replicas-6432", "replica", "pgbouncer_port", ("select",), "replica-5434",
           "replica node's PgBouncer, pool pgbench_ro -> its HAProxy ro", pool_suffix="_ro"),
]
# the pooled targets need the benchmark's database among pgbouncer_databases
POOLED = tuple(t.name for t in TARGETS if t.port_setting == "pgbouncer_port")
BY_NAME = {t.name: t for t in TARGETS}


def plan_of(modes: list[str], names: list[str]) -> list[tuple[str, str]]:
    return [(m, n) for m in modes for n in names if m in BY_NAME[n].modes]


def rotated(plan: list, round_index: int) -> list:
    """One round's order: mode by mode (as in plan), each mode's targets rotated by the
    round's index (a cyclic rotation of the whole plan would keep the target that follows
    the writes the same in every round)."""
    out = []
    for mode in dict.fromkeys(m for m, _ in plan):
        block = [p for p in plan if p[0] == mode]
        k = round_index % len(block)
        out += block[k:] + block[:k]
    return out


TPS = re.compile(r"^tps = ([0-9.]+)", re.M)
LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


def parse_pgbench(output: str) -> dict:
    """tps, average latency (ms) and failed transactions of pgbench's summary."""
    tps = TPS.search(output)
    latency = LATENCY.search(output)
    failed = FAILED.search(output)
    return {
        "tps": float(tps.group(1)) if tps else None,
        "latency_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
    }


def last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output)"


# --- the cluster --------------------------------------------------------------------------


# --- the report ---------------------------------------------------------------------------


def summarize(runs: list[dict], plan: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for mode, name in plan:
        mine = [r for r in runs if r["mode"] == mode and r["target"] == name]
        tps = [r["tps"] for r in mine if r.get("tps") is not None and not r.get("error")]
        lat = [r["latency_ms"] for r in mine if r.get("latency_ms") is not None and not r.get("error")]
        rows.append({
            "mode": mode, "target": name,
            "median_tps": statistics.median(tps) if tps else None,
            "min_tps": min(tps) if tps else None, "max_tps": max(tps) if tps else None,
            "median_latency_ms": statistics.median(lat) if lat else None,
            "per_round": [r.get("tps") for r in mine],
            "failed_runs": sum(1 for r in mine if r.get("error")),
            "failed_transactions": sum(r.get("failed", 0) or 0 for r in mine),
        })
    by_key = {(r["mode"], r["target"]): r for r in rows}
    for row in rows:
        base = BY_NAME[row["target"]].baseline
        other = by_key.get((row["mode"], base)) if base else None
        if not other:
            continue
        # the ratio round by round: the pair ran within the same round, minutes apart at
        # most, so a burst of load from elsewhere hits both; their median is the figure
        # (the ratio of the two medians can pair a quiet run with a loaded one)
        pairs = [(a, b) for a, b in zip(row["per_round"], other["per_round"]) if a and b]
        row["round_ratios"] = [a / b for a, b in pairs]
        row["baseline"] = base
        if row["round_ratios"]:
            row["ratio"] = statistics.median(row["round_ratios"])
        if other["median_tps"] and row["median_tps"] is not None:
            row["ratio_of_medians"] = row["median_tps"] / other["median_tps"]
    return rows


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def table(rows: list[dict], endpoints_: dict) -> list[str]:
    lines = ["| mode | target | path | median tps | min-max tps | median latency (ms) | vs direct "
             "| min-max of round ratios | failed runs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = endpoints_[r["target"]]
        ratio = f"{r['ratio']:.2f}x of {r['baseline']}" if r.get("ratio") is not None else "(direct)"
        spread = (f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"
                  if r.get("round_ratios") else "-")
        lines.append(f"| {r['mode']} | {r['target']} | {e.target.about}: {e.node} {e.address}:{e.port} | "
                     f"{fmt(r['median_tps'])} | {fmt(r['min_tps'])}-{fmt(r['max_tps'])} | "
                     f"{fmt(r['median_latency_ms'], 2)} | {ratio} | {spread} | {r['failed_runs']} |")
    return lines


def ratio_lines(rows: list[dict]) -> list[str]:
    mode_names = {"select": "select-only", "tpcb": "TPC-B"}
    return [f"{mode_names[r['mode']]} via {r['target']} / {r['baseline']} = {r['ratio']:.2f}x"
            for r in rows if r.get("ratio") is not None]


def write_report(path: Path, meta: dict, rows: list[dict], runs: list[dict], endpoints_: dict) -> None:
    out = [
        "# Throughput: PostgreSQL direct against the HAProxy hop",
        "",
        f"Measured by `bench/throughput.py` on {meta['date']} ({meta['host']}, {meta['cores']} cores, "
        f"load average {meta['load_before']} before, {meta.get('load_after', '-')} after), inventory "
        f"`{meta['inventory']}`, {meta.get('elapsed', 0):.0f} s. pgbench {meta['pgbench_version']} on the "
        f"control machine; server {meta['server_version']}; database `{DATABASE}` scale {meta['scale']} "
        f"({meta['database']}). {meta['rounds']} rounds x {meta['seconds']} s per run, {meta['clients']} "
        f"clients, {meta['jobs']} threads, "
        + ("a new connection per transaction (-C)" if meta["connect"] else "persistent connections")
        + (f", protocol {meta['protocol']}" if meta.get("protocol") else "")
        + f". Leader {meta['leader']}"
        + (f" (after: {meta['leader_after']})" if meta.get("leader_after") != meta["leader"] else "")
        + ".",
        "",
        "Runs interleaved: each round runs every (mode, target) once, mode by mode, each mode's "
        "targets rotated by one each round; a VACUUM of the pgbench tables (replicas caught up) "
        "before select-only runs that follow TPC-B's writes. 'vs direct' = the median over the rounds of (tps / tps of the same "
        "server's PostgreSQL port in the same round); its spread shows the machine's noise.",
        "",
        *table(rows, endpoints_),
        "",
        *[f"- {line}" for line in ratio_lines(rows)],
        "",
    ]
    errors = [r["error"] for r in runs if r.get("error")]
    if errors:
        out += ["Failed runs:", "", *[f"- {e}" for e in errors], ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=1) + "\n")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"
