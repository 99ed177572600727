"""Maintenance from the control machine, through Patroni's REST API: maintenance mode
(pause, resume), a failover when the leader is gone, restarts (replicas first, the leader
after a paused switchover), the history of timelines. Used by the CLI and the tests.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial

import psycopg2
import requests

from pgha import client
from pgha.cluster import Cluster, Node
from pgha.errors import MaintenanceError
from pgha.patroni import rest
from pgha.table import format_table
from pgha.waiting import wait_for

RUNNING = ("running", "streaming")  # a replica's state: 3.0.2 says running, 4.x streaming


def _auth(cluster: Cluster) -> tuple[str, str]:
    return cluster.settings["patroni_restapi_username"], cluster.secrets["restapi_password"]


def _post(cluster: Cluster, method: str, address: str, path: str, body: dict, timeout: float) -> requests.Response:
    try:
        return rest.request(cluster, method, address, path, json=body, auth=_auth(cluster), timeout=timeout)
    except requests.RequestException as error:
        raise MaintenanceError(f"Patroni's REST API on {address} did not answer {method} /{path}: {error}") from None


def member_node(cluster: Cluster, member: str) -> Node:
    """The Patroni member named ``member`` (its Patroni or inventory name)."""
    names = ", ".join(n.patroni_name for n in cluster.patroni)
    try:
        node = cluster.node(member)
    except KeyError:
        raise MaintenanceError(f"{member!r} is not a member: expected one of {names}") from None
    if node not in cluster.patroni:
        raise MaintenanceError(f"{member!r} is not a Patroni member: expected one of {names}")
    return node


# --- maintenance mode -------------------------------------------------------------------------


def paused(cluster: Cluster) -> bool | None:
    """Whether the cluster is in maintenance mode, as the DCS holds it; None when no member
    answers."""
    config = rest.get_json(cluster, "config")
    return bool(config.get("pause")) if isinstance(config, dict) else None


def set_paused(cluster: Cluster, pause: bool, timeout: float | None = None) -> dict:
    """Maintenance mode on (``pause``) or off, then wait until every answering member runs
    in it. Returns {"changed", "seconds", "silent"} (silent: members whose REST API did not
    answer; they read the mode from the DCS when they come back)."""
    state = paused(cluster)
    if state is None:
        raise MaintenanceError("no member's REST API answers: the maintenance mode is kept in the DCS, "
                               "reached through them")
    if state == pause:
        return {"changed": False, "seconds": 0.0, "silent": []}
    started = time.monotonic()
    answering = next(n for n in cluster.patroni if rest.get_json(cluster, "patroni", address=n.address))
    response = _post(cluster, "PATCH", answering.address, "config", {"pause": pause}, timeout=10)
    if response.status_code != 200:
        raise MaintenanceError(f"Patroni refused to {'pause' if pause else 'resume'}: "
                               f"{response.status_code} {response.text.strip()}")
    seen: dict = {}

    def followed() -> bool:
        seen.update(rest.own_statuses(cluster))
        return all(bool(status.get("pause")) == pause for status in seen.values() if status)

    # each member takes the new mode at its next HA loop
    if not wait_for(followed, 2 * cluster.settings["patroni_loop_wait"] + 5, interval=0.5):
        late = sorted(name for name, status in seen.items() if status and bool(status.get("pause")) != pause)
        raise MaintenanceError(f"the DCS says {'paused' if pause else 'managed'}, but {', '.join(late)} "
                               "did not follow within two HA loops")
    return {"changed": True, "seconds": round(time.monotonic() - started, 2),
            "silent": sorted(name for name, status in seen.items() if not status)}


# --- failover ---------------------------------------------------------------------------------


def takes_writes(cluster: Cluster, node: Node) -> bool:
    """Whether ``node``'s PostgreSQL, reached directly (not through HAProxy), runs as a
    primary: a member whose Patroni is stopped in maintenance mode leaves it running."""
    try:
        conn = psycopg2.connect(client.dsn(cluster, host=node.address, port=cluster.settings["postgresql_port"],
                                           target_session_attrs="any"))
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("select not pg_is_in_recovery()")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def failover(cluster: Cluster, member: str, timeout: float = 90) -> dict:
    """Make ``member`` the leader of a cluster whose leader is gone (``POST /failover``):
    what Patroni does by itself unless the cluster is paused or no replica is within
    maximum_lag_on_failover. Refused while a leader runs and answers (a switchover loses
    nothing) and when ``member`` is not a running replica. Waits until it takes writes
    through every node's HAProxy. Returns {"to", "seconds", "lag"} (lag: as the candidate
    stood before, the writes it may not have)."""
    node = member_node(cluster, member)
    seen = rest.status(cluster)
    rows = {r["name"]: r for r in seen["rows"]}
    leader = next((r for r in seen["rows"] if r["role"] == "leader" and r["state"] == "running"), None)
    if leader is not None:
        raise MaintenanceError(
            f"{leader['name']} leads and answers: a failover is for a cluster whose leader is gone; "
            f"`pgha switchover --to {node.patroni_name}` moves the leadership without losing a write"
        )
    row = rows[node.patroni_name]
    if row["role"] != "replica" or row["state"] not in RUNNING:
        running = [r["name"] for r in seen["rows"] if r["role"] == "replica" and r["state"] in RUNNING]
        raise MaintenanceError(f"{node.patroni_name} is not a running replica (role {row['role']}, "
                               f"state {row['state']}): expected one of {', '.join(running) or 'none'}")
    primaries = [n.patroni_name for n in cluster.patroni if n is not node and takes_writes(cluster, n)]
    if primaries:
        raise MaintenanceError(
            f"the PostgreSQL of {', '.join(primaries)} still runs as a primary (its Patroni is stopped or silent; "
            "in maintenance mode stopping Patroni leaves PostgreSQL running): a second leader would split the "
            "cluster's writes; stop that PostgreSQL first"
        )
    started = time.monotonic()
    response = _post(cluster, "POST", node.address, "failover", {"candidate": node.patroni_name}, timeout=timeout)
    # 503: Patroni stopped waiting for the outcome (the leader key may still live until its
    # ttl): the writes below say whether it happened
    if response.status_code not in (200, 503):
        raise MaintenanceError(f"Patroni refused the failover: {response.status_code} {response.text.strip()}")
    remaining = max(5.0, timeout - (time.monotonic() - started))
    try:
        address = client.wait_for_writes_everywhere(cluster, timeout=remaining)
    except Exception as error:  # noqa: BLE001 - SwitchoverError: said as this command's error
        raise MaintenanceError(f"{error} (Patroni answered {response.status_code} {response.text.strip()})") from None
    if address != node.address:
        raise MaintenanceError(f"writes go to {address}, not to {node.patroni_name}")
    return {"to": node.patroni_name, "seconds": round(time.monotonic() - started, 2), "lag": row["lag"]}


# --- restarts ---------------------------------------------------------------------------------


def streaming(cluster: Cluster, name: str) -> bool:
    """Whether ``name`` streams from the leader (its pg_stat_replication, asked now)."""
    return rest.health(cluster)["replication"].get(name) == "streaming"


def _restart_replica(cluster: Cluster, node: Node, pending: bool, timeout: float) -> float:
    started = time.monotonic()
    body = {"restart_pending": True} if pending else {}
    answered: dict = {}

    def asked() -> bool:
        answered["response"] = _post(cluster, "POST", node.address, "restart", body, timeout=timeout)
        # "demote already in progress": a former leader's HA loop finishing its switchover
        return not (answered["response"].status_code == 503 and "in progress" in answered["response"].text)

    wait_for(asked, timeout, interval=1)
    response = answered["response"]
    if response.status_code != 200:
        raise MaintenanceError(f"Patroni did not restart {node.patroni_name}: {response.status_code} "
                               f"{response.text.strip()}")
    if not wait_for(lambda: streaming(cluster, node.patroni_name), timeout, interval=0.5):
        raise MaintenanceError(f"{node.patroni_name} restarted but does not stream from the leader after {timeout:.0f}s")
    return round(time.monotonic() - started, 2)


def restart_plan(members: list[dict], wanted: list[str] | None) -> list[dict]:
    """The members to restart, replicas first, the leader last: ``wanted`` (names), or with
    None the members Patroni flags pending_restart."""
    chosen = [m for m in members if (m["name"] in wanted if wanted is not None else m["pending_restart"])]
    return sorted(chosen, key=lambda m: (m["role"] == "leader", m["name"]))


def best_replica(members: list[dict], excluded: str) -> str | None:
    """The running replica with the least lag, other than ``excluded``."""
    replicas = [m for m in members if m["role"] == "replica" and m["state"] in RUNNING and m["name"] != excluded]
    replicas.sort(key=lambda m: (m["lag"] if isinstance(m["lag"], int) else float("inf"), m["name"]))
    return replicas[0]["name"] if replicas else None


def restart(cluster: Cluster, names: list[str] | None, timeout: float = 120, say=print) -> list[dict]:
    """Restart ``names`` (Patroni or inventory names), or with None every member flagged
    pending_restart: replicas one at a time, each streaming again before the next; the
    leader last, by a switchover (every PgBouncer paused, pgha.client.switchover) to the
    replica with the least lag: demoting it stops its PostgreSQL and starts it again as a
    replica, which is the restart, and the leadership stays where it moved. Refused before
    anything restarts when the cluster is unhealthy. Returns one {"member", "seconds",
    "switchover"} a member (seconds: until it streams again)."""
    wanted = None if names is None else [member_node(cluster, n).patroni_name for n in names]
    health = rest.health(cluster)
    if health["problems"]:
        raise MaintenanceError("the cluster is not healthy, nothing restarted: " + "; ".join(health["problems"]))
    done = []
    for member in restart_plan(health["members"], wanted):
        name, switched = member["name"], None
        if member["role"] != "leader":
            say(f"restarting {name} ...")
            seconds = _restart_replica(cluster, cluster.node(name), pending=wanted is None, timeout=timeout)
        else:
            candidate = best_replica(rest.members(cluster), name)
            if candidate is None:
                raise MaintenanceError(f"{name} leads and no other replica runs: nothing to switch over to")
            say(f"{name} leads: switching over to {candidate}, which restarts it as a replica (PgBouncer paused)")
            started = time.monotonic()
            switched = client.switchover(cluster, candidate, progress=say)
            if not wait_for(partial(streaming, cluster, name), timeout, interval=0.5):
                raise MaintenanceError(f"{name} handed over to {candidate} but does not stream from it after {timeout:.0f}s")
            seconds = round(time.monotonic() - started, 2)
        done.append({"member": name, "seconds": seconds, "switchover": switched})
    return done


# --- history ----------------------------------------------------------------------------------


def format_lsn(lsn) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}" if isinstance(lsn, int) else str(lsn)


def history_rows(history: list, current_timeline: int | None, leader: str | None) -> list[tuple]:
    """Rows of GET /history ([timeline, lsn, reason, timestamp, new leader]; the last two
    absent in old entries), one a timeline, then the current one."""
    rows = []
    for entry in history or []:
        timeline, lsn, reason, when, new_leader = (list(entry) + [None, None, None])[:5]
        rows.append((timeline, format_lsn(lsn), _when(when), new_leader or "-", reason or "-"))
    if current_timeline is not None:
        rows.append((current_timeline, "(current)", "-", leader or "-", "-"))
    return rows


def _when(text) -> str:
    """Patroni's ISO time to the second ("2026-12-02 17:52:19+00:00")."""
    try:
        return datetime.fromisoformat(text).isoformat(sep=" ", timespec="seconds")
    except (TypeError, ValueError):
        return str(text or "-")


HISTORY_HEADERS = ("TL", "ended at LSN", "ended at", "next leader", "reason")


def history_table(cluster: Cluster) -> str:
    """The timelines of the cluster, oldest first: where each ended, when, who led next."""
    seen: dict = {}

    def complete() -> bool:
        lead = seen["leader"] = rest.leader(cluster)
        seen["history"] = rest.get_json(cluster, "history", address=lead["host"] if lead else None)
        ended = [entry[0] for entry in seen["history"] or [] if isinstance(entry, list) and entry]
        return not lead or not lead["timeline"] or lead["timeline"] <= 1 or max(ended, default=0) >= lead["timeline"] - 1

    # the leader writes its new timeline into the DCS's history at its next loop
    wait_for(complete, cluster.settings["patroni_loop_wait"] + 2, interval=0.5)
    lead, history = seen["leader"], seen["history"]
    if not isinstance(history, list):
        raise MaintenanceError("no member's REST API answers GET /history")
    return format_table(HISTORY_HEADERS, history_rows(history, lead and lead["timeline"], lead and lead["name"]),
                        right=("TL",))
