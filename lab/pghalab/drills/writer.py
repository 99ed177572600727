"""The client the drills measure: a thread writing through HAProxy's read-write port.

RTO = the longest gap between two acknowledged writes in the drill window
(``Writer.longest_gap``); RPO = acknowledged ids missing from the final leader's table
(``missing_ids``).
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import closing

import psycopg2

from pgha import client
from pgha.errors import DrillError, WaitTimeout
from pgha.patroni import rest
from pgha.waiting import poll
from pghalab.drills.libpq import error_line, superuser_dsn, try_query

DRILL_SCHEMA = "pgha_drill"
WRITES_TABLE = f"{DRILL_SCHEMA}.writes"

# Dead connections are noticed by TCP (a leader cut off, a container killed) within ~2 s;
# a commit waiting for a synchronous standby is not cut short (statement_timeout would turn
# it into a locally committed, "acknowledged" write with a warning).
WRITER_CONNECTION_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 2000,
    "application_name": "pgha-drill-writer",
}


def setup_table(cluster, timeout: float = 60) -> None:
    """Schema owned by the admin user (PUBLIC cannot create in `public` on PG 15), and the table,
    created through the leader; retried every second until ``timeout``."""
    s = cluster.settings

    def create() -> tuple[bool, str]:
        leader = rest.leader(cluster)
        if leader is None:
            return False, "no leader"
        try:
            with closing(psycopg2.connect(superuser_dsn(cluster, leader["host"]), connect_timeout=3)) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"create schema if not exists {DRILL_SCHEMA} authorization {s['patroni_admin_user']}")
            with closing(psycopg2.connect(client.dsn(cluster, connect_timeout=3))) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(
                        f"create table if not exists {WRITES_TABLE} "
                        "(id text primary key, at timestamptz not null default now())"
                    )
        except psycopg2.Error as error:
            return False, str(error).strip()
        return True, "created"

    try:
        poll(create, timeout, interval=1)
    except WaitTimeout as error:
        raise DrillError(f"cannot create {WRITES_TABLE}: {error}") from error


class Writer(threading.Thread):
    """Inserts a row with a unique id every ``interval`` seconds through HAProxy's
    read-write port (``port_setting``: or PgBouncer's), reconnecting after ``retry`` seconds on any error. ``acks`` holds
    (monotonic time, id) of every acknowledged commit, ``errors`` (time, message)."""

    def __init__(self, cluster, label: str = "drill", interval: float = 0.05, retry: float = 0.1,
                 sslmode: str | None = None, port_setting: str = "haproxy_rw_port"):
        super().__init__(daemon=True, name=f"writer-{label}")
        self.cluster = cluster
        self.prefix = f"{label}-{uuid.uuid4().hex[:8]}"
        self.interval = interval
        self.retry = retry
        self.acks: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str]] = []
        self.attempts = 0
        self._stop_event = threading.Event()
        # the multi-host DSN of client.dsn, with the first host rotated after each failure:
        # libpq tries the hosts in order, and a dead first host costs connect_timeout (at
        # least 2 s in libpq) on every reconnection
        nodes = list(cluster.patroni)
        self._dsns = [
            client.dsn(
                cluster.with_groups(patroni=nodes[i:] + nodes[:i]),
                port_setting,
                **WRITER_CONNECTION_OPTIONS,
                **({"sslmode": sslmode} if sslmode else {}),
            )
            for i in range(len(nodes))
        ]
        self._first = 0
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def run(self) -> None:
        self.started_at = time.monotonic()
        conn = None
        seq = 0
        while not self._stop_event.is_set():
            if conn is None:
                try:
                    conn = psycopg2.connect(self._dsns[self._first])
                    conn.autocommit = True
                except psycopg2.Error as error:
                    self._failed(error)
                    conn = None
                    continue
            seq += 1
            row_id = f"{self.prefix}-{seq:07d}"
            self.attempts += 1
            try:
                with conn.cursor() as cur:
                    cur.execute(f"insert into {WRITES_TABLE} (id) values (%s)", (row_id,))
                self.acks.append((time.monotonic(), row_id))
            except psycopg2.Error as error:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                self._failed(error)
                continue
            self._stop_event.wait(self.interval)
        if conn is not None:
            conn.close()
        self.stopped_at = time.monotonic()

    def _failed(self, error: Exception) -> None:
        self.errors.append((time.monotonic(), error_line(error)))
        self._first = (self._first + 1) % len(self._dsns)
        self._stop_event.wait(self.retry)

    def stop(self, timeout: float = 30) -> None:
        self._stop_event.set()
        self.join(timeout)

    # --- figures ---

    def last_ack(self) -> float:
        return self.acks[-1][0] if self.acks else 0.0

    def acks_between(self, start: float, end: float) -> int:
        return sum(1 for t, _ in self.acks if start <= t <= end)

    def longest_gap(self, start: float, end: float | None = None) -> dict:
        """The longest interval without an acknowledged write that overlaps [start, end]
        (end: when the writer stopped): the RTO as the client saw it."""
        end = end if end is not None else (self.stopped_at or time.monotonic())
        times = [t for t, _ in self.acks]
        before = [t for t in times if t < start]
        prev = before[-1] if before else start
        best = {"seconds": 0.0, "from": prev, "to": prev, "resumed": True}
        for t in times:
            if t < start:
                continue
            if t - prev > best["seconds"]:
                best = {"seconds": t - prev, "from": prev, "to": t, "resumed": True}
            prev = t
            if t > end:
                break
        if end - prev > best["seconds"]:
            best = {"seconds": end - prev, "from": prev, "to": end, "resumed": False}
        return best


def missing_ids(cluster, writer: Writer, leader_address: str) -> list[str] | None:
    """Acknowledged ids of ``writer`` absent from the table on the leader (None: unreadable)."""
    rows = try_query(
        cluster, leader_address,
        f"select id from {WRITES_TABLE} where id like '{writer.prefix}-%'", timeout=10,
    )
    if rows is None:
        return None
    present = {r[0] for r in rows}
    return [i for _, i in writer.acks if i not in present]
