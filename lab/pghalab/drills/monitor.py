"""The split-brain watcher: every Patroni node's PostgreSQL asked ``pg_is_in_recovery()``
(superuser over TCP, 0.5 s deadline, every ~200 ms), every sample kept, and whether two
reachable nodes were ever writable primaries at the same time.

With ``write=True`` (the soak) each node is asked to commit a row instead: a node counts as
writable only while its commits are acknowledged within the deadline, which is what a
client would see. An old primary that still says it is not in recovery but whose
synchronous commits wait for a standby that left it accepts no write: only the write probe
tells the two apart.
"""

from __future__ import annotations

import threading
import time

import psycopg2

from pghalab.drills.libpq import async_connect, async_query, superuser_dsn
from pghalab.drills.writer import DRILL_SCHEMA

PROBE_TABLE = f"{DRILL_SCHEMA}.probe"
READ_ONLY_TRANSACTION = "25006"  # SQLSTATE read_only_sql_transaction: a replica's answer to a write


class Monitor:
    """One thread per Patroni node asking its PostgreSQL ``pg_is_in_recovery()`` every
    ``interval`` s (deadline ``timeout`` s). ``samples[name]`` = [(time, state)] with state
    "primary", "replica" or None (unreachable: counts for nothing)."""

    def __init__(self, cluster, interval: float = 0.2, timeout: float = 0.5, sslmode: str | None = None,
                 write: bool = False):
        self.cluster = cluster
        self.sslmode = sslmode
        self.write = write
        self.interval = interval
        self.timeout = timeout
        self.samples: dict[str, list[tuple[float, str | None]]] = {n.patroni_name: [] for n in cluster.patroni}
        self._stop_event = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(n,), daemon=True, name=f"monitor-{n.patroni_name}")
            for n in cluster.patroni
        ]

    def start(self) -> Monitor:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()
        for t in self._threads:
            t.join(5)

    def _poll(self, node) -> None:
        dsn = superuser_dsn(self.cluster, node.address, self.sslmode)
        conn = None
        samples = self.samples[node.patroni_name]
        while not self._stop_event.is_set():
            began = time.monotonic()
            state = None
            try:
                if conn is None:
                    conn = async_connect(dsn, self.timeout)
                state = self._probe(conn, node.patroni_name)
            except psycopg2.Error as error:
                if self.write and error.pgcode == READ_ONLY_TRANSACTION:
                    state = "replica"  # autocommit: the connection is good for the next probe
                else:
                    conn = _closed(conn)
            except (TimeoutError, OSError, IndexError):
                conn = _closed(conn)
            samples.append((time.monotonic(), state))
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - began)))
        _closed(conn)

    def _probe(self, conn, member: str) -> str:
        if self.write:
            async_query(conn, f"insert into {PROBE_TABLE} (member) values ('{member}')", self.timeout)
            return "primary"
        rows = async_query(conn, "select pg_is_in_recovery()", self.timeout)
        return "replica" if rows[0][0] else "primary"

    # --- figures ---

    def primary_periods(self) -> dict[str, list[tuple[float, float]]]:
        """Per node, the periods it was seen accepting writes: from the first to the last
        sample of each uninterrupted run of "primary" samples."""
        periods: dict[str, list[tuple[float, float]]] = {}
        for name, samples in self.samples.items():
            runs, start, last = [], None, None
            for t, state in list(samples):
                if state == "primary":
                    start = t if start is None else start
                    last = t
                elif start is not None:
                    runs.append((start, last))
                    start = None
            if start is not None:
                runs.append((start, last))
            periods[name] = runs
        return periods

    def two_primaries(self) -> list[dict]:
        """Every overlap of two nodes' primary periods: two writable primaries at once."""
        periods = self.primary_periods()
        names = sorted(periods)
        overlaps = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for a0, a1 in periods[a]:
                    for b0, b1 in periods[b]:
                        if max(a0, b0) <= min(a1, b1):
                            overlaps.append({"nodes": (a, b), "from": max(a0, b0), "to": min(a1, b1)})
        return overlaps

    def primaries_between(self, start: float, end: float) -> set[str]:
        return {
            name for name, samples in self.samples.items()
            for t, state in list(samples) if start <= t <= end and state == "primary"
        }

    def sampled_since(self, start: float) -> bool:
        return all(any(t >= start for t, _ in list(s)) for s in self.samples.values())


def _closed(conn) -> None:
    if conn is not None:
        try:
            conn.close()
        except psycopg2.Error:
            pass
