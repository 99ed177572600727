"""The soak's workload: clients moving amounts between accounts, Jepsen's bank.

Each transfer is one transaction: a row in ``TRANSFERS`` (its id, the two accounts, the
amount) and the two balance updates (in account order: no deadlock between clients). A
client records every transfer whose COMMIT returned (acknowledged) and every one whose
COMMIT raised (outcome unknown: the server may or may not have committed it); an error
before COMMIT means the transaction is rolled back.

The rules that cannot be argued with (``verdict``): the total of the balances never
changes; every account's balance is its initial one plus what the transfers log says came
in minus what went out (so no transfer is applied twice or in part); every acknowledged
transfer is in the log (none lost).
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import closing

import psycopg2

from pgha import client
from pghalab.drills.libpq import error_line, superuser_dsn
from pghalab.drills.monitor import PROBE_TABLE
from pghalab.drills.writer import DRILL_SCHEMA, WRITER_CONNECTION_OPTIONS, setup_table

ACCOUNTS = f"{DRILL_SCHEMA}.accounts"
TRANSFERS = f"{DRILL_SCHEMA}.transfers"
INITIAL_BALANCE = 1000
# per account: its balance and what the log says it should be; the log is read once per
# direction (a correlated sum per account read it 200 times and passed a 10 s statement
# timeout past a million transfers)
CONSISTENCY_QUERY = (
    f"select a.id, a.balance, {INITIAL_BALANCE} + coalesce(i.amount, 0) - coalesce(o.amount, 0) "
    f"from {ACCOUNTS} a "
    f"left join (select dst, sum(amount) amount from {TRANSFERS} group by dst) i on i.dst = a.id "
    f"left join (select src, sum(amount) amount from {TRANSFERS} group by src) o on o.src = a.id "
    "order by a.id"
)


def setup_bank(cluster, accounts: int = 100) -> None:
    """The two tables (and the write probe's) made anew through the leader, every account at
    INITIAL_BALANCE."""
    setup_table(cluster)  # the schema (and the drills' table), retried until a leader answers
    with closing(psycopg2.connect(client.dsn(cluster, connect_timeout=5))) as conn, conn.cursor() as cur:
        cur.execute(f"drop table if exists {TRANSFERS}, {ACCOUNTS}")
        cur.execute(f"create table {ACCOUNTS} (id int primary key, balance bigint not null)")
        cur.execute(f"create table {TRANSFERS} (id text primary key, src int not null, dst int not null, "
                    "amount int not null, at timestamptz not null default now())")
        cur.execute(f"insert into {ACCOUNTS} select g, {INITIAL_BALANCE} from generate_series(1, %s) g", (accounts,))
        # the split-brain watcher's rows (pghalab.drills.monitor, write=True)
        cur.execute(f"drop table if exists {PROBE_TABLE}")
        cur.execute(f"create table {PROBE_TABLE} (member text not null, at timestamptz not null default now())")
        conn.commit()


class BankClient(threading.Thread):
    """One client: a transfer every ``interval`` seconds through ``port_setting`` (HAProxy's
    5432 or PgBouncer's pool), reconnecting after ``retry`` seconds on any error."""

    def __init__(self, cluster, index: int, seed: int, accounts: int = 100, port_setting: str = "haproxy_rw_port",
                 interval: float = 0.02, retry: float = 0.1):
        super().__init__(daemon=True, name=f"bank-{index}")
        self.prefix = f"c{index}"
        self.port_setting = port_setting
        self.accounts = accounts
        self.interval, self.retry = interval, retry
        self.random = random.Random(seed * 1000 + index)
        self.dsn = client.dsn(cluster, port_setting, **WRITER_CONNECTION_OPTIONS)
        self.acks: list[tuple[float, str]] = []
        self.unknown: list[str] = []
        self.errors: list[tuple[float, str]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn, seq = None, 0
        while not self._stop_event.is_set():
            if conn is None:
                try:
                    conn = psycopg2.connect(self.dsn)
                except psycopg2.Error as error:
                    self._failed(error)
                    continue
            seq += 1
            transfer = f"{self.prefix}-{seq}"
            src, dst = self.random.sample(range(1, self.accounts + 1), 2)
            amount = self.random.randint(1, 50)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"insert into {TRANSFERS} (id, src, dst, amount) values (%s, %s, %s, %s)",
                                (transfer, src, dst, amount))
                    for account, delta in sorted([(src, -amount), (dst, amount)]):
                        cur.execute(f"update {ACCOUNTS} set balance = balance + %s where id = %s", (delta, account))
            except psycopg2.Error as error:  # before COMMIT: rolled back
                conn = self._drop(conn, error)
                continue
            try:
                conn.commit()
            except psycopg2.Error as error:
                self.unknown.append(transfer)
                conn = self._drop(conn, error)
                continue
            self.acks.append((time.monotonic(), transfer))
            self._stop_event.wait(self.interval)
        if conn is not None:
            conn.close()

    def _drop(self, conn, error: Exception) -> None:
        try:
            conn.close()
        except psycopg2.Error:
            pass
        self._failed(error)
        return None

    def _failed(self, error: Exception) -> None:
        self.errors.append((time.monotonic(), error_line(error)))
        self._stop_event.wait(self.retry)

    def stop(self) -> None:
        self._stop_event.set()


class Bank:
    """``clients`` BankClients, half through PgBouncer (when the cluster has it), half
    through HAProxy's 5432; the drills see it as their writer (``last_ack``,
    ``acks_between``)."""

    def __init__(self, cluster, seed: int, clients: int = 8, accounts: int = 100, pooled: bool = True):
        ports = ["pgbouncer_port", "haproxy_rw_port"] if pooled else ["haproxy_rw_port"]
        self.clients = [BankClient(cluster, i, seed, accounts, ports[i % len(ports)]) for i in range(clients)]

    def start(self) -> Bank:
        for c in self.clients:
            c.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        for c in self.clients:
            c.stop()
        for c in self.clients:
            c.join(timeout)

    def ack_times(self) -> list[float]:
        return sorted(t for c in self.clients for t, _ in list(c.acks))

    def last_ack(self) -> float:
        return max((c.acks[-1][0] for c in self.clients if c.acks), default=0.0)

    def acks_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.ack_times() if start <= t <= end)

    def acknowledged(self) -> set[str]:
        return {i for c in self.clients for _, i in list(c.acks)}

    def unknown(self) -> set[str]:
        return {i for c in self.clients for i in list(c.unknown)}

    def errors(self) -> int:
        return sum(len(c.errors) for c in self.clients)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time within [start, end] without an acknowledged transfer (any client)."""
    inside = [t for t in times if start <= t <= end]
    before = [t for t in times if t < start]
    points = [before[-1] if before else start, *inside, end]
    return round(max(b - a for a, b in zip(points, points[1:], strict=False)), 2)


def read_bank(cluster, address: str, ids: bool = False, timeout: float = 60) -> dict:
    """What one member holds: {"accounts": [(id, balance, expected)], "transfers": set of
    ids (with ``ids``)}, read as the superuser straight from its PostgreSQL; {"error": the
    first line of the error} when it does not answer."""
    try:
        conn = psycopg2.connect(superuser_dsn(cluster, address), connect_timeout=10,
                                options=f"-c statement_timeout={int(timeout * 1000)}")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)  # one snapshot for both
        with closing(conn), conn.cursor() as cur:
            cur.execute(CONSISTENCY_QUERY)
            accounts = cur.fetchall()
            found = None
            if ids:
                cur.execute(f"select id from {TRANSFERS}")
                found = {r[0] for r in cur.fetchall()}
            conn.rollback()
    except psycopg2.Error as error:
        return {"error": error_line(error)}
    return {"accounts": accounts, "transfers": found}


def verdict(accounts: list[tuple], accounts_count: int, transfers: set[str] | None = None,
            acknowledged: set[str] = frozenset(), unknown: set[str] = frozenset()) -> dict:
    """The rules on one member's snapshot (``ok``: the total and every account's balance
    against the log). ``accounts``: (id, balance, expected from the log) rows; ``transfers``:
    the log's ids (the leader's), to count what was lost: whether a loss breaks a promise
    depends on the replication mode (the soak's ``loss_ok``)."""
    total = sum(balance for _, balance, _ in accounts)
    out = {
        "total": total,
        "total_ok": total == accounts_count * INITIAL_BALANCE and len(accounts) == accounts_count,
        "inconsistent_accounts": [a for a, balance, expected in accounts if balance != expected],
    }
    if transfers is not None:
        lost = sorted(acknowledged - transfers)
        out.update(lost=len(lost), lost_ids=lost,
                   unknown_committed=len(unknown & transfers), unknown_not_committed=len(unknown - transfers))
    out["ok"] = out["total_ok"] and not out["inconsistent_accounts"]
    return out
