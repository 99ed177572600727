"""A replica out of HAProxy's read-only rotation and back (issue 5).

One replica R (from GET /cluster) has Patroni stopped (`systemctl stop patroni`: Patroni
stops its PostgreSQL): every node's 5433 must then send connections only to the other
replica. In a finally block Patroni is started again, and R must stream from the leader and
receive 5433 connections again. The leader is never touched.
"""

from __future__ import annotations

import time

import helpers
import pytest
from conftest import PATRONI_NAMES
from pg_helpers import (
    ADDRESSES,
    RO_PORT,
    replication_states,
    roles,
    try_server_identity,
    wait_for_healthy_cluster,
)

pytestmark = pytest.mark.destructive

OUT_TIMEOUT = 20  # seconds for every 5433 to leave R out
BACK_TIMEOUT = 60  # seconds for R to stream again and be back in every 5433
STREAK = 10  # consecutive connections that must all reach the other replica


def _streak_to(through: str, wanted: str, password: str, count: int) -> list:
    """Up to ``count`` new connections through ``through``:5433; stops at the first one that
    does not reach ``wanted`` (failure or other server). Returns what was seen."""
    seen = []
    for _ in range(count):
        identity = try_server_identity(through, RO_PORT, password)
        seen.append(identity[0] if identity else None)
        if identity != (wanted, True):
            break
    return seen


def _reaches(through: str, wanted: str, password: str, tries: int = 6) -> bool:
    return any(
        (try_server_identity(through, RO_PORT, password) or (None,))[0] == wanted for _ in range(tries)
    )


def _start_patroni(host) -> bool:
    return helpers.start_again(host, "patroni")


@pytest.fixture(scope="module")
def rotation(patroni_hosts, passwords):
    superuser, admin = passwords["superuser_password"], passwords["admin_password"]
    problem = wait_for_healthy_cluster(timeout=60)
    if problem:
        pytest.fail(f"the cluster is not healthy before the test: {problem}")
    leader, replicas = roles()
    assert len(replicas) == 2, replicas
    out, other = replicas[0], replicas[1]
    host = patroni_hosts[out.name]
    seen: dict = {"out": out, "other": other, "leader": leader}
    try:
        seen["stop_rc"] = host.run("systemctl stop patroni").rc
        seen["postgres_after_stop"] = host.run("pgrep -u postgres -x postgres").rc  # 1: none
        started = time.monotonic()
        streaks: dict[str, list] = {}
        pending = set(ADDRESSES)

        def all_go_to_the_other_replica() -> bool:
            for through in sorted(pending):
                streaks[through] = _streak_to(through, other.address, admin, STREAK)
                if streaks[through] == [other.address] * STREAK:
                    pending.discard(through)
            return not pending

        helpers.wait_until(all_go_to_the_other_replica, OUT_TIMEOUT, interval=0.5)
        seen["out_streaks"] = streaks
        seen["out_pending"] = pending
        seen["out_seconds"] = time.monotonic() - started
    finally:
        seen["start_ok"] = _start_patroni(host)
        started = time.monotonic()
        back: dict = {}
        state = [None]

        def streams_and_is_reached_again() -> bool:
            try:
                state[0] = replication_states(leader.address, superuser).get(out.patroni_name)
            except Exception as error:  # noqa: BLE001
                state[0] = f"{type(error).__name__}: {error}"
            if state[0] != "streaming":
                return False
            for through in ADDRESSES:
                back[through] = back.get(through) or _reaches(through, out.address, admin)
            return all(back.values())

        helpers.wait_until(streams_and_is_reached_again, BACK_TIMEOUT, interval=1)
        seen["back_state"] = state[0]
        seen["back_reached"] = back
        seen["back_seconds"] = time.monotonic() - started
        seen["healthy_after"] = wait_for_healthy_cluster(timeout=60)
    print(
        f"replica {out.patroni_name} out of 5433 in {seen['out_seconds']:.1f}s, "
        f"back (streaming, in 5433) in {seen['back_seconds']:.1f}s"
    )
    return seen


def test_inventory_has_three_patroni_members():
    assert len(PATRONI_NAMES) == 3, PATRONI_NAMES


def test_stopping_patroni_stops_its_postgresql(rotation):
    assert rotation["stop_rc"] == 0
    assert rotation["postgres_after_stop"] == 1, "PostgreSQL still runs after patroni stopped"


def test_ro_port_sends_everything_to_the_other_replica(rotation):
    other = rotation["other"].address
    assert not rotation["out_pending"], (
        f"5433 still reaches something else than {other} after {OUT_TIMEOUT}s "
        f"through {sorted(rotation['out_pending'])}: {rotation['out_streaks']}"
    )
    assert rotation["out_streaks"] == {a: [other] * STREAK for a in ADDRESSES}


def test_patroni_started_again(rotation):
    assert rotation["start_ok"]


def test_replica_streams_again(rotation):
    assert rotation["back_state"] == "streaming", rotation["back_state"]


def test_ro_port_reaches_the_replica_again_through_every_node(rotation):
    assert rotation["back_reached"] == {a: True for a in ADDRESSES}, rotation["back_reached"]


def test_cluster_healthy_afterwards(rotation):
    assert rotation["healthy_after"] == "", rotation["healthy_after"]
    leader, replicas = roles()
    assert leader.name == rotation["leader"].name, "the leader changed"
    assert sorted(r.name for r in replicas) == sorted([rotation["out"].name, rotation["other"].name])
