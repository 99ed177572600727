"""The replicas' lag watcher: every member's own GET /patroni asked at once every
``interval`` s, and each replica's bytes behind the leader's WAL position at that moment
(``rest.live_lag``). What asynchronous replication can lose at a failover is what the
promoted replica had not received: its last lag while the old leader still answered.
Patroni refuses to promote a replica lagging more than ``maximum_lag_on_failover`` bytes
behind the leader's last position in the DCS, which is as old as the leader's last loop.
"""

from __future__ import annotations

import bisect
import threading
import time

from pgha.patroni import rest


def leader_and_lags(own: dict[str, dict | None]) -> tuple[str, dict[str, int]] | None:
    """(leader, {replica: bytes behind}) from the members' own statuses asked at one moment;
    None unless exactly one running member says it leads."""
    leaders = [name for name, status in own.items()
               if status and rest.normalize_role(status.get("role")) == "leader" and status.get("state") == "running"]
    if len(leaders) != 1:
        return None
    lead = leaders[0]
    lags = {name: rest.live_lag(own[lead], status) for name, status in own.items() if name != lead and status}
    return lead, {name: lag for name, lag in lags.items() if lag is not None}


def leader_changes(samples: list[tuple[float, str, dict[str, int]]], window: float = 10.0) -> list[dict]:
    """Each change of leader in ``samples`` [(time, leader, lags)]: when it was first seen,
    from whom to whom, the new leader's lag in the old leader's last sample, and its largest
    lag over the ``window`` s before that sample."""
    changes = []
    for index in range(1, len(samples)):
        at_before, before, _ = samples[index - 1]
        at, after, _ = samples[index]
        if before == after:
            continue
        # the old leader's samples of the window, newest first
        lags = []
        for at_earlier, leader, earlier_lags in reversed(samples[:index]):
            if at_earlier < at_before - window:
                break
            if leader == before and after in earlier_lags:
                lags.append(earlier_lags[after])
        changes.append({"seen_at": at, "old_leader": before, "new_leader": after,
                        "last_lag_bytes": lags[0] if lags else None, "max_lag_bytes": max(lags) if lags else None,
                        "last_sample_age_s": round(at - at_before, 1)})
    return changes


class LagWatch:
    """A thread sampling ``leader_and_lags`` every ``interval`` s; ``samples`` =
    [(wall-clock time, leader, {replica: bytes})], kept while one member leads."""

    def __init__(self, cluster, interval: float = 0.5, timeout: float = 1.0):
        self.cluster = cluster
        self.interval = interval
        self.timeout = timeout
        self.samples: list[tuple[float, str, dict[str, int]]] = []
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="lag-watch")

    def start(self) -> LagWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()
        self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop_event.is_set():
            began = time.monotonic()
            found = leader_and_lags(rest.own_statuses(self.cluster, self.timeout))
            if found:
                self.samples.append((time.time(), *found))
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def changes_since(self, wall_time: float, window: float = 10.0) -> list[dict]:
        """The changes of leader first seen at or after ``wall_time`` (``leader_changes`` of
        the samples it needs only)."""
        samples = list(self.samples)
        first = bisect.bisect_left([s[0] for s in samples], wall_time)
        start = samples[max(0, first - 1)][0] - window if samples else wall_time  # the last one before, too
        recent = [s for s in samples if s[0] >= start]
        return [c for c in leader_changes(recent, window) if c["seen_at"] >= wall_time]

    def summary(self) -> dict:
        """The largest lag of each member while a replica, and every change of leader."""
        largest: dict[str, int] = {}
        for _, _, lags in self.samples:
            for name, lag in lags.items():
                largest[name] = max(largest.get(name, 0), lag)
        return {"samples": len(self.samples), "max_lag_bytes": largest, "leader_changes": leader_changes(self.samples)}
