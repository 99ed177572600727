"""What an action costs the cluster's clients: the writer (through HAProxy's read-write
port) and the split-brain watcher run while it runs. Used by bench/under_writes.py (a
migration, a rotation: any command) and the secret rotation test."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from pgha.patroni import rest
from pghalab.drills.monitor import Monitor
from pghalab.drills.writer import Writer, missing_ids, setup_table


def measure(cluster, action: Callable[[], object], label: str = "action",
            sslmode: str | None = None) -> tuple[object, dict]:
    """(what ``action()`` returned, the figures): the longest gap between two acknowledged
    writes while it ran, writes acknowledged and refused, the primaries seen, whether two
    were writable at once, acknowledged rows missing from the final leader (None when the
    leader cannot be read with the cluster's credentials). ``sslmode`` other than
    verify-full only for a cluster deployed before TLS, whose table was made beforehand."""
    if sslmode is None:
        setup_table(cluster)
    monitor = Monitor(cluster, sslmode=sslmode).start()
    writer = Writer(cluster, label=label, sslmode=sslmode)
    writer.start()
    time.sleep(2)  # the writer's rhythm before the action starts
    started = time.monotonic()
    try:
        result = action()
    finally:
        ended = time.monotonic()
        time.sleep(2)
        writer.stop()
        monitor.stop()
    gap = writer.longest_gap(started, ended)
    leader = rest.leader(cluster)
    missing = missing_ids(cluster, writer, leader["host"]) if leader else None
    refusals = Counter(message for t, message in writer.errors if started <= t <= ended)
    return result, {
        "label": label,
        "action_seconds": round(ended - started, 1),
        "longest_gap_seconds": round(gap["seconds"], 3),
        "gap_started_after_seconds": round(gap["from"] - started, 1),
        "writes_acknowledged": writer.acks_between(started, ended),
        "writes_refused": sum(refusals.values()),
        "refusals": dict(refusals.most_common(5)),
        "primaries_seen": sorted(monitor.primaries_between(started, ended)),
        "two_primaries_at_once": bool(monitor.two_primaries()),
        "acknowledged_rows_missing": None if missing is None else len(missing),
        "final_leader": leader["name"] if leader else None,
    }
