"""HA drills against a deployed cluster: inject a fault, heal it, and measure what a client saw.

Used by tests/integration/test_ha_drills.py (behaviour) and bench/ha_drills.py (timings).
Everything takes the cluster (pgha.settings.Cluster, e.g. ``load_cluster(inventory)``) as a
parameter. Faults are injected on this machine with LXC commands (the lab); the only network
traffic goes to the lab's container addresses.

- ``Writer``: a thread inserting one row every ~50 ms through HAProxy's read-write port (the
  multi-host DSN of ``client.dsn``), reconnecting on error; it records every acknowledged
  commit. RTO = the longest gap between two acknowledged writes in the drill window; RPO =
  acknowledged ids missing from the final leader's table.
- ``Monitor``: one thread per Patroni node polling ``select pg_is_in_recovery()`` on
  PostgreSQL itself (superuser over TCP, 0.5 s deadline, every ~200 ms); records every sample
  and whether two reachable nodes were ever writable primaries at the same time.
- ``DRILLS``: leader killed, leader's Patroni stopped, replica killed, one etcd member down,
  etcd quorum lost, leader cut off from the network, leader's HAProxy (its etcd proxy)
  stopped, planned switchover. ``run_drill(cluster, drill)`` runs one and returns its figures.
"""

from __future__ import annotations

import dataclasses
import runpy
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psycopg2
import psycopg2.extensions
import requests

from pgha import PROJECT_ROOT, client
from pgha import secrets as pgha_secrets

DRILL_SCHEMA = "pgha_drill"
WRITES_TABLE = f"{DRILL_SCHEMA}.writes"
SOCKET_DIR = "/var/run/postgresql"


class DrillError(Exception):
    pass


def load_cluster(inventory: str | Path = PROJECT_ROOT / "inventory.py"):
    """The checked topology an inventory file builds (its ``_cluster``)."""
    return runpy.run_path(str(Path(inventory).resolve()))["_cluster"]


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- PostgreSQL with a hard deadline ----------------------------------------------------------
# libpq's connect_timeout is whole seconds with a minimum of 2: the monitor needs 0.5 s, so it
# uses asynchronous connections and select() with its own deadline.


def _wait(conn, deadline: float) -> None:
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline exceeded")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)


def async_connect(dsn: str, timeout: float):
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(dsn, async_=True)
    try:
        _wait(conn, deadline)
    except BaseException:
        conn.close()
        raise
    return conn


def async_query(conn, sql: str, timeout: float) -> list[tuple]:
    deadline = time.monotonic() + timeout
    cur = conn.cursor()
    cur.execute(sql)
    _wait(conn, deadline)
    return cur.fetchall() if cur.description else []


def superuser_dsn(cluster, secrets: dict, address: str) -> str:
    s = cluster.settings
    return (
        f"host={address} port={s['postgresql_port']} user={s['patroni_superuser']} "
        f"password={secrets['superuser_password']} dbname=postgres application_name=pgha-drill"
    )


def try_query(cluster, secrets: dict, address: str, sql: str, timeout: float = 3.0) -> list[tuple] | None:
    """``sql`` as the superuser on one node's PostgreSQL, or None if it fails or is late."""
    conn = None
    try:
        conn = async_connect(superuser_dsn(cluster, secrets, address), timeout)
        return async_query(conn, sql, timeout)
    except (psycopg2.Error, TimeoutError, OSError):
        return None
    finally:
        if conn is not None:
            conn.close()


def setup_table(cluster, secrets: dict, timeout: float = 60) -> None:
    """Schema owned by the admin user (PUBLIC cannot create in `public` on PG 15), and the table,
    created through the leader."""
    s = cluster.settings
    deadline = time.monotonic() + timeout
    while True:
        leader = client.leader(cluster)
        try:
            if leader is None:
                raise DrillError("no leader")
            conn = psycopg2.connect(superuser_dsn(cluster, secrets, leader["host"]), connect_timeout=3)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"create schema if not exists {DRILL_SCHEMA} authorization {s['patroni_admin_user']}")
            conn.close()
            conn = psycopg2.connect(client.dsn(cluster, secrets, connect_timeout=3))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    f"create table if not exists {WRITES_TABLE} "
                    "(id text primary key, at timestamptz not null default now())"
                )
            conn.close()
            return
        except (psycopg2.Error, DrillError) as error:
            if time.monotonic() >= deadline:
                raise DrillError(f"cannot create {WRITES_TABLE}: {error}") from error
            time.sleep(1)


# --- the writer -------------------------------------------------------------------------------

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


class Writer(threading.Thread):
    """Inserts a row with a unique id every ``interval`` seconds through HAProxy's
    read-write port, reconnecting after ``retry`` seconds on any error. ``acks`` holds
    (monotonic time, id) of every acknowledged commit, ``errors`` (time, message)."""

    def __init__(self, cluster, secrets: dict, label: str = "drill", interval: float = 0.05,
                 retry: float = 0.1):
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
            client.dsn(dataclasses.replace(cluster, patroni=nodes[i:] + nodes[:i]), secrets,
                       **WRITER_CONNECTION_OPTIONS)
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
        self.errors.append((time.monotonic(), str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__))
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


def missing_ids(cluster, secrets: dict, writer: Writer, leader_address: str) -> list[str] | None:
    """Acknowledged ids of ``writer`` absent from the table on the leader (None: unreadable)."""
    rows = try_query(
        cluster, secrets, leader_address,
        f"select id from {WRITES_TABLE} where id like '{writer.prefix}-%'", timeout=10,
    )
    if rows is None:
        return None
    present = {r[0] for r in rows}
    return [i for _, i in writer.acks if i not in present]


# --- the split-brain watcher ------------------------------------------------------------------


class Monitor:
    """One thread per Patroni node asking its PostgreSQL ``pg_is_in_recovery()`` every
    ``interval`` s (deadline ``timeout`` s). ``samples[name]`` = [(time, state)] with state
    "primary", "replica" or None (unreachable: counts for nothing)."""

    def __init__(self, cluster, secrets: dict, interval: float = 0.2, timeout: float = 0.5):
        self.cluster = cluster
        self.secrets = secrets
        self.interval = interval
        self.timeout = timeout
        self.samples: dict[str, list[tuple[float, str | None]]] = {n.patroni_name: [] for n in cluster.patroni}
        self._stop_event = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(n,), daemon=True, name=f"monitor-{n.patroni_name}")
            for n in cluster.patroni
        ]

    def start(self) -> "Monitor":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()
        for t in self._threads:
            t.join(5)

    def _poll(self, node) -> None:
        dsn = superuser_dsn(self.cluster, self.secrets, node.address)
        conn = None
        samples = self.samples[node.patroni_name]
        while not self._stop_event.is_set():
            began = time.monotonic()
            state = None
            try:
                if conn is None:
                    conn = async_connect(dsn, self.timeout)
                rows = async_query(conn, "select pg_is_in_recovery()", self.timeout)
                state = "replica" if rows[0][0] else "primary"
            except (psycopg2.Error, TimeoutError, OSError, IndexError):
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass
                conn = None
            samples.append((time.monotonic(), state))
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

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

    def latest(self) -> dict[str, str | None]:
        return {name: (s[-1][1] if s else None) for name, s in self.samples.items()}

    def sampled_since(self, start: float) -> bool:
        return all(any(t >= start for t, _ in list(s)) for s in self.samples.values())


# --- the cluster's state ----------------------------------------------------------------------


def raw_members(cluster, timeout: float = 2) -> list[dict]:
    """``/cluster`` members as Patroni gives them (role 'sync_standby' kept)."""
    port = cluster.settings["patroni_restapi_port"]
    for node in cluster.patroni:
        try:
            return requests.get(f"http://{node.address}:{port}/cluster", timeout=timeout).json().get("members", [])
        except (requests.RequestException, ValueError):
            continue
    return []


def dynamic_config(cluster, timeout: float = 2) -> dict | None:
    """``GET /config`` (the DCS configuration) from the first member that answers."""
    port = cluster.settings["patroni_restapi_port"]
    for node in cluster.patroni:
        try:
            return requests.get(f"http://{node.address}:{port}/config", timeout=timeout).json()
        except (requests.RequestException, ValueError):
            continue
    return None


def sync_standbys(cluster) -> list[str]:
    return [m["name"] for m in raw_members(cluster) if m.get("role") == "sync_standby"]


def cluster_state(cluster, secrets: dict) -> dict:
    """{"ok", "leader", "timeline", "streaming": [names], "members", "problem"}: ok when
    exactly one leader and every other member streams from it (pg_stat_replication)."""
    members = client.members(cluster)
    leaders = [m for m in members if m["role"] == "leader"]
    state = {"ok": False, "leader": None, "timeline": None, "streaming": [], "members": members, "problem": ""}
    if len(leaders) != 1:
        state["problem"] = f"{len(leaders)} leaders in /cluster: {[(m['name'], m['role'], m['state']) for m in members]}"
        return state
    leader = leaders[0]
    state["leader"], state["timeline"] = leader["name"], leader["timeline"]
    rows = try_query(cluster, secrets, leader["host"],
                     "select application_name, state from pg_stat_replication", timeout=3)
    if rows is None:
        state["problem"] = f"pg_stat_replication unreadable on {leader['name']}"
        return state
    # the timeline from the leader's current WAL file name (/cluster's can lag a promotion)
    wal = try_query(cluster, secrets, leader["host"], "select pg_walfile_name(pg_current_wal_lsn())", timeout=3)
    if wal:
        state["timeline"] = int(wal[0][0][:8], 16)
    streaming = sorted(name for name, st in rows if st == "streaming")
    state["streaming"] = streaming
    others = sorted(n.patroni_name for n in cluster.patroni if n.patroni_name != leader["name"])
    if streaming != others or len(members) != len(cluster.patroni):
        state["problem"] = f"leader {leader['name']}, streaming {streaming}, expected {others}"
        return state
    # in synchronous mode Patroni only promotes a synchronous standby named in the DCS: a
    # cluster whose leader has not picked one yet (its next HA loop) cannot fail over
    config = dynamic_config(cluster) or {}
    if config.get("synchronous_mode"):
        wanted = min(int(config.get("synchronous_node_count", 1)), len(cluster.patroni) - 1)
        sync = sync_standbys(cluster)
        state["sync_standbys"] = sync
        if len(sync) < wanted:
            state["problem"] = f"synchronous mode: {len(sync)} synchronous standby(s) {sync}, expected {wanted}"
            return state
    state["ok"] = True
    return state


def wait_healthy(cluster, secrets: dict, timeout: float = 120, interval: float = 0.5,
                 watch: str | None = None, watch_since: float | None = None) -> dict:
    """Poll ``cluster_state`` until ok (or timeout). With ``watch``, also the monotonic time
    when that member was first seen streaming (``watch_streaming_at``)."""
    deadline = time.monotonic() + timeout
    seen_at = None
    while True:
        state = cluster_state(cluster, secrets)
        if watch and seen_at is None and watch in state["streaming"]:
            seen_at = time.monotonic()
        if state["ok"] or time.monotonic() >= deadline:
            state["watch_streaming_at"] = seen_at
            return state
        time.sleep(interval)


def wait_for(probe: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- LXC on this machine ----------------------------------------------------------------------


def run(args: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise DrillError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def container(node) -> str:
    return node.lxc_container or node.name


def attach(node, *command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return run(["lxc-attach", "-n", container(node), "--", *command], timeout=timeout, check=check)


def veth(node) -> str:
    """The host side of the container's network interface (`lxc-info`'s Link: line)."""
    for line in run(["lxc-info", "-n", container(node)]).stdout.splitlines():
        if line.strip().startswith("Link:"):
            return line.split(":", 1)[1].strip()
    raise DrillError(f"no Link: line in lxc-info -n {container(node)}")


def local_is_primary(cluster, node) -> bool | None:
    """pg_is_in_recovery() asked inside the container (works while it is cut off):
    True primary, False replica, None not running."""
    proc = attach(
        node, "runuser", "-u", cluster.settings["patroni_superuser"], "--", "psql", "-h", SOCKET_DIR,
        "-p", str(cluster.settings["postgresql_port"]), "-XtAc", "select pg_is_in_recovery()",
        timeout=15, check=False,
    )
    value = proc.stdout.strip()
    return {"f": True, "t": False}.get(value) if proc.returncode == 0 else None


def etcd_leader_first(cluster) -> list:
    """The etcd members, the raft leader first (as the members report it), else inventory order."""
    nodes = list(cluster.etcd)
    port = cluster.settings["etcd_client_port"]
    for node in nodes:
        try:
            status = requests.post(f"http://{node.address}:{port}/v3/maintenance/status", json={}, timeout=2).json()
            leader_id = status["leader"]
            members = requests.post(f"http://{node.address}:{port}/v3/cluster/member/list", json={}, timeout=2).json()
            name = next((m["name"] for m in members["members"] if m["ID"] == leader_id), None)
            if name:
                return sorted(nodes, key=lambda n: n.name != name)
        except (requests.RequestException, ValueError, KeyError):
            continue
    return nodes


# --- the drills -------------------------------------------------------------------------------


@dataclass
class Context:
    cluster: Any
    secrets: dict
    writer: Writer
    monitor: Monitor
    old_leader: dict
    timeline: int | None
    target: Any = None  # the node the fault hits (pgha.settings.Node)
    etcd_targets: list = field(default_factory=list)
    t_inject: float = 0.0
    t_heal: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def s(self) -> dict:
        return self.cluster.settings

    def node_named(self, patroni_name: str):
        return next(n for n in self.cluster.patroni if n.patroni_name == patroni_name)

    @property
    def failover_timeout(self) -> float:
        s = self.s
        return s["patroni_ttl"] + s["patroni_loop_wait"] + 2 * s["patroni_retry_timeout"] + 30

    def wait_new_leader_writing(self, timeout: float | None = None) -> bool:
        """Until /cluster names a leader other than the old one and a write is acknowledged
        after that; notes the time as ``new_leader_writes_at``."""
        deadline = time.monotonic() + (timeout or self.failover_timeout)
        while time.monotonic() < deadline:
            seen = time.monotonic()
            leader = client.leader(self.cluster)
            if leader and leader["name"] != self.old_leader["name"]:
                if wait_for(lambda: self.writer.last_ack() > seen, min(5, max(0.1, deadline - time.monotonic())), 0.05):
                    self.notes["new_leader"] = leader["name"]
                    self.notes["new_leader_writes_at"] = round(self.writer.last_ack() - self.t_inject, 2)
                    return True
            time.sleep(0.2)
        return False


class Drill:
    name = "drill"
    description = ""
    affected = "leader"  # whose return to streaming is measured: "leader", "target" or None
    failover = True  # a new leader is expected

    def choose(self, ctx: Context) -> None:
        ctx.target = ctx.node_named(ctx.old_leader["name"])

    def inject(self, ctx: Context) -> None:
        raise NotImplementedError

    def during(self, ctx: Context) -> None:
        """Wait for the fault's effect (and check what must hold while it lasts)."""
        ctx.notes["failover_seen"] = ctx.wait_new_leader_writing()

    def heal(self, ctx: Context) -> None:
        pass

    def __repr__(self) -> str:
        return self.name


class LeaderKilled(Drill):
    name = "leader-killed"
    description = "leader container killed (lxc-stop -k); heal: lxc-start"

    def inject(self, ctx):
        run(["lxc-stop", "-k", "-n", container(ctx.target)])

    def heal(self, ctx):
        run(["lxc-start", "-n", container(ctx.target)])


class LeaderPatroniStopped(Drill):
    name = "leader-patroni-stopped"
    description = "leader's Patroni stopped gracefully (systemctl stop patroni); heal: start"

    def inject(self, ctx):
        attach(ctx.target, "systemctl", "stop", "patroni", timeout=90)

    def heal(self, ctx):
        attach(ctx.target, "systemctl", "start", "patroni")


class ReplicaKilled(Drill):
    name = "replica-killed"
    description = "a replica container killed (the synchronous standby if any); heal: lxc-start"
    affected = "target"
    failover = False

    def choose(self, ctx):
        sync = sync_standbys(ctx.cluster)
        names = sync or sorted(n.patroni_name for n in ctx.cluster.patroni if n.patroni_name != ctx.old_leader["name"])
        ctx.target = ctx.node_named(names[0])

    def inject(self, ctx):
        run(["lxc-stop", "-k", "-n", container(ctx.target)])

    def during(self, ctx):
        # until Patroni drops the member (its key expires) or ttl + loop_wait, writes going on
        hold = ctx.s["patroni_ttl"] + ctx.s["patroni_loop_wait"]
        gone = wait_for(lambda: ctx.target.patroni_name not in {m["name"] for m in client.members(ctx.cluster)}, hold, 0.5)
        ctx.notes["member_dropped"] = bool(gone)
        ctx.notes["writes_continued"] = wait_for(lambda: ctx.writer.last_ack() > time.monotonic() - 1, 20, 0.2)

    def heal(self, ctx):
        run(["lxc-start", "-n", container(ctx.target)])


class EtcdOneDown(Drill):
    name = "etcd-one-down"
    description = "one etcd member stopped (the raft leader); the Patroni leader must stay leader"
    affected = None
    failover = False

    def choose(self, ctx):
        ctx.target = None
        ctx.etcd_targets = etcd_leader_first(ctx.cluster)[:1]

    def inject(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "stop", "etcd")

    def during(self, ctx):
        # long enough for the leader to renew its lock at least twice through the others
        hold = 2 * ctx.s["patroni_loop_wait"] + 2
        time.sleep(hold)
        leader = client.leader(ctx.cluster)
        ctx.notes["leader_during"] = leader["name"] if leader else None
        ctx.notes["other_primaries"] = sorted(
            ctx.monitor.primaries_between(ctx.t_inject, time.monotonic()) - {ctx.old_leader["name"]}
        )

    def heal(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "start", "etcd")


class EtcdQuorumLost(Drill):
    name = "etcd-quorum-lost"
    description = "two etcd members stopped (quorum lost): no member may accept writes; back with quorum"
    affected = "leader"
    failover = False  # the same or another member leads when quorum returns

    def choose(self, ctx):
        super().choose(ctx)
        ctx.etcd_targets = etcd_leader_first(ctx.cluster)[:2]

    def inject(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "stop", "etcd")

    def during(self, ctx):
        monitor = ctx.monitor

        def no_primary():
            now = time.monotonic()
            time.sleep(monitor.interval * 2)
            return monitor.sampled_since(now) and not monitor.primaries_between(now, time.monotonic())

        demoted = wait_for(no_primary, ctx.failover_timeout, 0.2)
        t_demoted = time.monotonic()
        ctx.notes["demoted"] = bool(demoted)
        ctx.notes["demoted_after"] = round(t_demoted - ctx.t_inject, 2) if demoted else None
        hold = max(5.0, float(ctx.s["patroni_loop_wait"]))
        time.sleep(hold)
        t_end = time.monotonic()
        # nothing writable while quorum is lost (after the leader noticed it)
        ctx.notes["primaries_while_lost"] = sorted(monitor.primaries_between(t_demoted, t_end))
        ctx.notes["acks_while_lost"] = ctx.writer.acks_between(t_demoted, t_end)
        ctx.notes["lost_window"] = (t_demoted, t_end)

    def heal(self, ctx):
        for node in ctx.etcd_targets:
            attach(node, "systemctl", "start", "etcd")


class LeaderIsolated(Drill):
    name = "leader-network-cut"
    description = "leader cut off from the network (host side veth down); heal: veth up"

    def inject(self, ctx):
        ctx.notes["veth"] = veth(ctx.target)
        run(["ip", "link", "set", ctx.notes["veth"], "down"])

    def during(self, ctx):
        # the isolated old leader must stop accepting writes: asked inside the container
        # (lxc-attach) every ~0.5 s, in parallel with the wait for the new leader
        demoted: dict = {}

        def watch():
            if wait_for(lambda: local_is_primary(ctx.cluster, ctx.target) is not True, ctx.failover_timeout, 0.3):
                demoted["at"] = time.monotonic()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ctx.notes["failover_seen"] = ctx.wait_new_leader_writing()
        watcher.join(ctx.failover_timeout + 30)
        ctx.notes["isolated_demoted"] = "at" in demoted
        ctx.notes["isolated_demoted_after"] = round(demoted["at"] - ctx.t_inject, 2) if demoted else None
        # when the new leader was first seen writable (the watcher cannot reach the old one)
        new = ctx.notes.get("new_leader")
        starts = [a for a, _ in ctx.monitor.primary_periods().get(new, []) if a >= ctx.t_inject]
        ctx.notes["new_primary_after"] = round(starts[0] - ctx.t_inject, 2) if starts else None

    def heal(self, ctx):
        run(["ip", "link", "set", ctx.notes["veth"], "up"])


class LeaderHaproxyStopped(Drill):
    name = "leader-haproxy-stopped"
    description = ("HAProxy stopped on the leader's node: its Patroni loses the DCS (local etcd "
                   "proxy) and demotes; heal: start")

    def inject(self, ctx):
        attach(ctx.target, "systemctl", "stop", "haproxy")

    def heal(self, ctx):
        attach(ctx.target, "systemctl", "start", "haproxy")


class Switchover(Drill):
    name = "switchover"
    description = "planned switchover (POST /switchover) to a replica (the synchronous standby if any)"

    def __init__(self, inventory: str | Path | None = None):
        # with an inventory, through the CLI: `pgha switchover --to NAME --inventory PATH`
        self.inventory = inventory

    def choose(self, ctx):
        super().choose(ctx)
        sync = sync_standbys(ctx.cluster)
        names = sync or sorted(n.patroni_name for n in ctx.cluster.patroni if n.patroni_name != ctx.old_leader["name"])
        ctx.notes["candidate"] = names[0]

    def inject(self, ctx):
        if self.inventory:
            proc = run([str(Path(sys.executable).parent / "pgha"), "switchover", "--to", ctx.notes["candidate"],
                        "--inventory", str(self.inventory)], timeout=120, check=False)
            ctx.notes["cli_rc"] = proc.returncode
            ctx.notes["cli_output"] = (proc.stdout + proc.stderr).strip()
        else:
            ctx.notes["switchover"] = client.switchover(ctx.cluster, ctx.secrets, ctx.notes["candidate"])


DRILLS: dict[str, Callable[[], Drill]] = {
    d.name: d
    for d in (LeaderKilled, LeaderPatroniStopped, ReplicaKilled, EtcdOneDown, EtcdQuorumLost,
              LeaderIsolated, LeaderHaproxyStopped, Switchover)
}


def run_drill(cluster, drill: Drill | str, secrets: dict | None = None, warmup: float = 3.0,
              settle: float = 2.0, heal_timeout: float = 180) -> dict:
    """Run one drill with the writer and the monitor; return its figures:
    name, rto_s (longest write gap), lost (acknowledged rows missing), rejoin_s (seconds from
    the fault until the affected node streams again), two_primaries, new_leader, timeline..."""
    drill = DRILLS[drill]() if isinstance(drill, str) else drill
    secrets = secrets or pgha_secrets.load()
    before = wait_healthy(cluster, secrets, timeout=heal_timeout)
    if not before["ok"]:
        raise DrillError(f"{drill.name}: the cluster is not healthy before the drill: {before['problem']}")
    setup_table(cluster, secrets)
    old_leader = next(m for m in before["members"] if m["role"] == "leader")
    monitor = Monitor(cluster, secrets).start()
    writer = Writer(cluster, secrets, label=drill.name)
    ctx = Context(cluster, secrets, writer, monitor, old_leader, before["timeline"])
    result: dict[str, Any] = {"drill": drill.name, "description": drill.description,
                              "old_leader": old_leader["name"], "timeline_before": before["timeline"]}
    try:
        writer.start()
        if not wait_for(lambda: len(writer.acks) >= 5, 30, 0.1):
            raise DrillError(f"{drill.name}: the writer cannot write before the drill: {writer.errors[-1:]}")
        time.sleep(warmup)
        drill.choose(ctx)
        affected = {"leader": old_leader["name"], "target": ctx.target.patroni_name if ctx.target else None,
                    None: None}[drill.affected]
        result["target"] = (ctx.target.name if ctx.target else None) or [n.name for n in ctx.etcd_targets]
        log(f"{drill.name}: inject ({drill.description}); leader {old_leader['name']}, target {result['target']}")
        ctx.t_inject = time.monotonic()
        drill.inject(ctx)
        result["inject_s"] = round(time.monotonic() - ctx.t_inject, 2)
        drill.during(ctx)
        log(f"{drill.name}: heal after {time.monotonic() - ctx.t_inject:.1f}s; {ctx.notes}")
        ctx.t_heal = time.monotonic()
        drill.heal(ctx)
        after = wait_healthy(cluster, secrets, timeout=heal_timeout,
                             watch=affected if affected else None)
        t_healthy = time.monotonic()
        # a few more writes on the final leader, then the figures
        resumed = wait_for(lambda: writer.last_ack() > t_healthy, 30, 0.1)
        time.sleep(settle)
    finally:
        writer.stop()
        monitor.stop()
    gap = writer.longest_gap(ctx.t_inject, writer.stopped_at)
    final_leader = after["leader"]
    final_host = next((n.address for n in cluster.patroni if n.patroni_name == final_leader), None)
    missing = missing_ids(cluster, secrets, writer, final_host) if final_host else None
    members = {m["name"]: m for m in after["members"]}
    rejoin = None
    if affected and affected != final_leader and after.get("watch_streaming_at"):
        rejoin = round(after["watch_streaming_at"] - ctx.t_inject, 2)
    result.update(
        {
            "end_state_ok": after["ok"],
            "end_state_problem": after["problem"],
            "new_leader": final_leader,
            "leader_changed": final_leader != old_leader["name"],
            "timeline": after["timeline"],
            "timelines": {name: m["timeline"] for name, m in members.items()},
            "rto_s": round(gap["seconds"], 2),
            "rto_gap": (round(gap["from"] - ctx.t_inject, 2), round(gap["to"] - ctx.t_inject, 2)),
            "writes_resumed": bool(resumed) and gap["resumed"],
            "acked": len(writer.acks),
            "write_errors": len(writer.errors),
            "lost": None if missing is None else len(missing),
            "lost_ids": (missing or [])[:10],
            "affected": affected,
            "rejoin_s": rejoin,
            "rejoin_after_heal_s": round(after["watch_streaming_at"] - ctx.t_heal, 2)
            if affected and affected != final_leader and after.get("watch_streaming_at") else None,
            "heal_at_s": round(ctx.t_heal - ctx.t_inject, 2),
            "two_primaries": bool(monitor.two_primaries()),
            "two_primaries_detail": [
                {"nodes": o["nodes"], "from": round(o["from"] - ctx.t_inject, 2), "to": round(o["to"] - ctx.t_inject, 2)}
                for o in monitor.two_primaries()
            ],
            "primary_periods": {
                name: [(round(a - ctx.t_inject, 2), round(b - ctx.t_inject, 2)) for a, b in runs]
                for name, runs in monitor.primary_periods().items()
            },
            "synchronous_mode": bool((dynamic_config(cluster) or {}).get("synchronous_mode")),
            "notes": {k: v for k, v in ctx.notes.items() if k != "lost_window"},
        }
    )
    log(f"{drill.name}: rto {result['rto_s']}s, lost {result['lost']}, rejoin {result['rejoin_s']}s, "
        f"two primaries {result['two_primaries']}, leader {old_leader['name']} -> {final_leader} TL {result['timeline']}")
    return result
