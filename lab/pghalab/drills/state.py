"""The cluster's state before and after a drill: the verdict of ``rest.health`` (one leader,
every other member streaming), plus what the drills need on top of it.

- the timeline from the leader's current WAL file name (/cluster's can lag a promotion);
- in synchronous mode, the synchronous standby Patroni needs before it can fail over;
- ``streaming``: the members streaming from the leader, to time a node's return.
"""

from __future__ import annotations

import time

from pgha.patroni import rest
from pgha.waiting import wait_for
from pghalab.drills.libpq import try_query


def dynamic_config(cluster) -> dict | None:
    """``GET /config`` (the DCS configuration) from the first member that answers."""
    config = rest.get_json(cluster, "config")
    return config if isinstance(config, dict) else None


def sync_standbys(cluster, members: list[dict] | None = None) -> list[str]:
    """The members /cluster names synchronous standbys (``members``: an answer already read)."""
    members = rest.members(cluster) if members is None else members
    return [m["name"] for m in members if m["raw_role"] == "sync_standby"]


def wal_timeline(cluster, address: str) -> int | None:
    """The timeline of the current WAL file on the primary at ``address`` (None: unreadable)."""
    wal = try_query(cluster, address, "select pg_walfile_name(pg_current_wal_lsn())", timeout=3)
    return int(wal[0][0][:8], 16) if wal else None


def sync_problems(cluster, members: list[dict]) -> tuple[list[str], list[str] | None]:
    """In synchronous mode Patroni only promotes a synchronous standby named in the DCS: a
    cluster whose leader has not picked one yet (its next HA loop) cannot fail over.
    Returns (problems, the synchronous standbys, None outside synchronous mode)."""
    config = dynamic_config(cluster) or {}
    if not config.get("synchronous_mode"):
        return [], None
    wanted = min(int(config.get("synchronous_node_count", 1)), len(cluster.patroni) - 1)
    sync = sync_standbys(cluster, members)
    if len(sync) < wanted:
        return [f"synchronous mode: {len(sync)} synchronous standby(s) {sync}, expected {wanted}"], sync
    return [], sync


def cluster_state(cluster) -> dict:
    """{"ok", "leader", "timeline", "streaming": [names], "members", "problems", "problem"}:
    ok when ``rest.health`` finds one leader and every other member streaming from it and,
    in synchronous mode, the leader has its synchronous standby(s) (``sync_standbys``)."""
    health = rest.health(cluster)
    leader = health["leader"]
    problems = list(health["problems"])
    state = {
        "ok": False,
        "leader": leader["name"] if leader else None,
        "timeline": leader["timeline"] if leader else None,
        "streaming": sorted(name for name, st in health["replication"].items() if st == "streaming"),
        "members": health["members"],
    }
    if leader:
        state["timeline"] = wal_timeline(cluster, leader["host"]) or state["timeline"]
    if not problems:
        more, sync = sync_problems(cluster, health["members"])
        problems += more
        if sync is not None:
            state["sync_standbys"] = sync
    state.update(ok=not problems, problems=problems, problem="; ".join(problems))
    return state


def wait_healthy(cluster, timeout: float = 120, interval: float = 0.5, watch: str | None = None) -> dict:
    """``cluster_state`` once it is ok, or the last one after ``timeout``. With ``watch``,
    also the monotonic time when that member was first seen streaming
    (``watch_streaming_at``, else None)."""
    last: dict = {}
    seen_at = None

    def healthy() -> bool:
        nonlocal seen_at
        last["state"] = cluster_state(cluster)
        if watch and seen_at is None and watch in last["state"]["streaming"]:
            seen_at = time.monotonic()
        return last["state"]["ok"]

    wait_for(healthy, timeout, interval)
    return {**last["state"], "watch_streaming_at": seen_at}
