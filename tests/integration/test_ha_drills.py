"""HA drills against the deployed cluster, in synchronous mode: a planned switchover, and the
faults at the leader and the DCS (the leader's Patroni stopped, the leader cut off from the
network, the leader killed, the etcd quorum lost, and lost with the leader cut off). The rest of the matrix (a replica killed,
one etcd member down, the leader's HAProxy stopped) runs in bench/ha_drills.py, which runs
every drill with the same verdicts; a killed replica and a stopped etcd member are also
faults of test_alerts.py and test_etcd.py. Each drill runs a writer through HAProxy's 5432 and a
split-brain watcher (pgha/drills/) and asserts behaviour only: one leader and every other
member streaming at the end, never two writable primaries, no acknowledged write lost (the
timings are measured by bench/ha_drills.py, not asserted here).

The cluster is the one PGHA_INVENTORY builds (default: the repository's inventory.py), so
the drills can run on a second lab. The module switches the cluster to synchronous mode
(deploys/patroni.py --data patroni_synchronous_mode=True) and restores group_data's
settings at the end. About 5 minutes on the lab with the seed's timings.
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from pathlib import Path

import helpers
import psycopg2
import pytest

from pgha import client
from pgha.patroni import rest
from pgha.patroni.values import failsafe_mode
from pgha.settings.loader import load_cluster
from pgha.waiting import wait_for
from pghalab import drills, soak
from pghalab.drills import bank, faults
from pghalab.drills.libpq import try_query
from pghalab.drills.writer import DRILL_SCHEMA, setup_table

INVENTORY = Path(os.environ.get("PGHA_INVENTORY", helpers.INVENTORY)).resolve()
CLUSTER = load_cluster(INVENTORY)
S = CLUSTER.settings


def _apply_patroni(*data: str) -> None:
    args = [a for d in data for a in ("--data", d)]
    rc, output = helpers.run_pyinfra(INVENTORY, "deploys/patroni.py", *args, timeout=900)
    assert rc == 0, f"deploys/patroni.py {' '.join(args)} failed:\n{helpers.tail(output)}"


@pytest.fixture(scope="module")
def synchronous():
    """The cluster in synchronous mode for the whole module; group_data's settings after."""
    try:
        _apply_patroni("patroni_synchronous_mode=True")
        config = drills.dynamic_config(CLUSTER)
        assert config and config.get("synchronous_mode") is True, f"GET /config: {config}"
        # Patroni applies it on its next HA loop: wait for a synchronous standby
        assert wait_for(lambda: drills.sync_standbys(CLUSTER), S["patroni_loop_wait"] + 30, 0.5), (
            f"no synchronous standby in /cluster: {rest.members(CLUSTER)}"
        )
        yield
    finally:
        _apply_patroni()  # group_data (patroni_synchronous_mode = False)
        config = drills.dynamic_config(CLUSTER) or {}
        assert config.get("synchronous_mode") is S["patroni_synchronous_mode"], f"GET /config: {config}"


def drill(name_or_drill) -> dict:
    result = drills.run_drill(CLUSTER, name_or_drill)
    print(f"\n{result['drill']}: {result}")
    return result


def assert_common(result: dict) -> None:
    """What every drill must end with."""
    assert result["synchronous_mode"], "the drill did not run in synchronous mode"
    assert result["end_state_ok"], f"end state: {result['end_state_problem']}"
    assert not result["two_primaries"], f"two writable primaries at once: {result['two_primaries_detail']}"
    assert result["writes_resumed"], f"writes did not resume: longest gap {result['rto_gap']}"
    assert result["lost"] == 0, f"{result['lost']} acknowledged rows lost: {result['lost_ids']}"


def assert_rejoined(result: dict, timeout: float = 60) -> None:
    """The old leader streams from the new leader, on the new (higher) timeline, no manual step."""
    old = result["old_leader"]
    assert result["new_leader"] != old, f"{old} still leads: no failover"

    def same_timeline():
        members = {m["name"]: m for m in rest.members(CLUSTER)}
        leader = next((m for m in members.values() if m["role"] == "leader"), None)
        if leader and old in members and members[old]["role"] == "replica" and members[old]["timeline"] == leader["timeline"]:
            return leader["timeline"]
        return None

    timeline = wait_for(same_timeline, timeout, 1)
    assert timeline, f"{old} is not a replica on the leader's timeline: {rest.members(CLUSTER)}"
    assert timeline > result["timeline_before"], f"timeline {timeline} not above {result['timeline_before']}"
    assert old in drills.cluster_state(CLUSTER)["streaming"]


pytestmark = [pytest.mark.destructive, pytest.mark.usefixtures("synchronous"), pytest.mark.needs_lxc, pytest.mark.slow]


def test_switchover_through_the_cli():
    result = drill(drills.Switchover(inventory=INVENTORY))
    notes = result["notes"]
    assert notes["cli_rc"] == 0, notes["cli_output"]
    assert result["new_leader"] == notes["candidate"]
    assert_common(result)
    assert_rejoined(result)
    # the new leader takes writes through HAProxy's 5432
    address = client.write_probe(CLUSTER)
    assert address == CLUSTER.node(notes["candidate"]).address


def test_leader_patroni_stopped():
    result = drill("leader-patroni-stopped")
    assert_common(result)
    assert_rejoined(result)


def test_leader_cut_off_from_the_network():
    result = drill("leader-network-cut")
    assert result["notes"]["failover_seen"], "no new leader took writes while the old one was cut off"
    assert result["notes"]["isolated_demoted"], "the cut-off leader kept accepting writes"
    assert_common(result)
    assert_rejoined(result)


def test_leader_killed():
    result = drill("leader-killed")
    assert result["notes"]["failover_seen"]
    assert_common(result)
    assert_rejoined(result, timeout=90)


def test_etcd_quorum_lost():
    """Without failsafe mode no member takes writes until etcd is back; with it (trixie's
    default) the leader, reaching every member, goes on taking them past its lock's ttl."""
    result = drill("etcd-quorum-lost")
    notes = result["notes"]
    assert notes["failsafe"] is failsafe_mode(S), f"failsafe mode in the DCS: {notes['failsafe']}"
    if notes["failsafe"]:
        assert notes["primaries_while_lost"] == [result["old_leader"]], notes["primaries_while_lost"]
        assert notes["acks_after_ttl"] > 0, "no write acknowledged past the ttl although failsafe mode is on"
    else:
        assert notes["demoted"], "a member still accepted writes long after quorum was lost"
        assert notes["primaries_while_lost"] == [], f"writable while quorum was lost: {notes['primaries_while_lost']}"
        assert notes["acks_while_lost"] == 0, "writes acknowledged while quorum was lost"
    assert_common(result)  # writes resumed once quorum was back (or never stopped)


def test_etcd_quorum_lost_and_the_leader_cut_off():
    """What failsafe mode must not cover: the leader, without the DCS, cut off from the others
    stops taking writes, and no other member takes them."""
    result = drill("etcd-quorum-lost-leader-cut")
    notes = result["notes"]
    if notes["failsafe"]:
        assert notes["leader_writable_before_cut"] is True, "failsafe mode did not keep the leader before the cut"
    assert notes["isolated_demoted"], "the cut-off leader kept accepting writes without the DCS"
    assert notes["other_primaries"] == [], f"writable without the DCS: {notes['other_primaries']}"
    assert_common(result)


LONG_LOG = 1_500_000  # more transfers than a 100-fault soak logs (1.35 million with seed 2100)


def test_the_bank_check_answers_on_a_long_log():
    """The soak's check after fault 85 of a 100-fault run: a log of over a million transfers
    read on every member within the 10 s the first version of the check was given (it read
    the log once per account and direction and stopped answering)."""
    bank.setup_bank(CLUSTER, soak.ACCOUNTS)
    with closing(psycopg2.connect(client.dsn(CLUSTER, connect_timeout=5))) as conn, conn.cursor() as cur:
        # pairs of opposite transfers: the log grows, the balances do not move
        cur.execute(f"insert into {bank.TRANSFERS} (id, src, dst, amount) "
                    "select 'long-' || g || '-' || d, 1 + (g + d) %% %s, 1 + (g + 1 - d) %% %s, 1 + g %% 50 "
                    "from generate_series(1, %s) g, generate_series(0, 1) d",
                    (soak.ACCOUNTS, soak.ACCOUNTS, LONG_LOG // 2))
        conn.commit()
    leader = drills.cluster_state(CLUSTER)["leader"]
    for node in CLUSTER.patroni:
        def caught_up(address=node.address):
            rows = try_query(CLUSTER, address, f"select count(*) from {bank.TRANSFERS}", timeout=30)
            return rows and rows[0][0] == LONG_LOG
        assert wait_for(caught_up, 120, 1), f"{node.patroni_name} did not replay the {LONG_LOG} transfers"
        started = time.monotonic()
        snapshot = bank.read_bank(CLUSTER, node.address, ids=node.patroni_name == leader, timeout=10)
        print(f"\n{node.patroni_name}: the check read {LONG_LOG} transfers in {time.monotonic() - started:.1f} s")
        assert "error" not in snapshot, f"{node.patroni_name}: {snapshot['error']}"
        found = bank.verdict(snapshot["accounts"], soak.ACCOUNTS)
        assert found["ok"], f"{node.patroni_name}: {found}"
        if snapshot["transfers"] is not None:
            assert len(snapshot["transfers"]) == LONG_LOG


# The short soak of make test: a fixed seed draws three faults the drills above do not cause
# (bench/soak.py runs the long ones), under the bank's eight clients
SOAK_SEED = 9
SOAK_FAULTS = ["leader-postgres-frozen", "leader-cut-from-replicas", "leader-cut-from-etcd", "repository-down",
               "replica-haproxy-killed"]


def test_a_short_soak_keeps_every_rule_of_the_bank():
    outcome = soak.run_soak(CLUSTER, SOAK_SEED, 3, SOAK_FAULTS)
    print(f"\nsoak: {outcome['summary']}")
    assert len(outcome["faults"]) == 3, outcome["faults"]
    for result in outcome["faults"]:
        assert result["healed"], f"{result['fault']}: not healed: {result['problem']}"
        assert not result["two_writable"], f"{result['fault']}: two writable members: {result['two_writable']}"
        assert result["archiving_ok"], f"{result['fault']}: archiving not ok after the heal"
        assert result["lost"] == 0, f"{result['fault']}: acknowledged transfers lost: {result['lost_ids']}"
        problems = {m: r for m, r in result["members"].items() if not r["ok"]}
        assert not problems, f"{result['fault']}: the bank's rules broken: {problems}"
    assert outcome["acknowledged"] > 100, outcome


# The soak's finding (seed 2100, faults 6 and 7, in both runs): the leader cut off from etcd
# past the ttl keeps leading in failsafe mode, its replicas following it for ttl after its
# last POST /failsafe, key or no key; a planned leader change in that window left the
# cluster without a leader until then (31.8 s of no write, where a switchover costs 1.8 s)
AFTER_FAILSAFE = [("leader-cut-from-etcd", 3.4), ("leader-patroni-stopped", 5.9), ("leader-cut-from-etcd", 3.4)]


def test_a_planned_leader_change_right_after_the_leader_lost_etcd_waits_for_failsafe_mode():
    if not failsafe_mode(S):
        pytest.skip("failsafe mode is off on this release: no replica follows a leader without its key")
    seen: dict = {}

    def report(result: dict) -> None:
        if result["fault"] == "leader-cut-from-etcd":  # the replicas still in failsafe mode
            seen.setdefault("failsafe", []).append(rest.failsafe_active(CLUSTER))
        if result["index"] == 3:  # `pgha switchover`'s code, the bank's clients still writing
            said: list[str] = []
            seen["switchover"] = client.switchover(CLUSTER, progress=said.append)
            seen["said"] = said

    outcome = soak.run_soak(CLUSTER, SOAK_SEED, 0, [], plan=AFTER_FAILSAFE, report=report)
    print(f"\nafter failsafe: {[(r['fault'], r.get('unavailable_s')) for r in outcome['faults']]}, {seen}")
    assert all(seen["failsafe"]), f"no replica in failsafe mode after the cut: the case did not happen {seen}"
    for result in outcome["faults"]:
        assert result["ok"], f"{result['fault']}: {result}"
    stopped = outcome["faults"][1]
    assert stopped["new_leader"] != stopped["old_leader"], stopped
    # the stop-time switchover waited (the leader taking writes), then handed over at once
    assert stopped["unavailable_s"] < S["patroni_loop_wait"], f"no write for {stopped['unavailable_s']}s: {stopped}"
    switched = seen["switchover"]
    assert switched["failsafe_waited"], f"the switchover did not wait for failsafe mode: {switched}"
    assert "failsafe mode active on" in seen["said"][0], seen["said"]
    assert switched["seconds"] < S["patroni_loop_wait"], switched


# The asynchronous soak's finding (seed 2200, fault 4, the leader cut off from its replicas):
# a bank client connected through a replica's node, whose HAProxy forwards to the leader, was
# cut off inside its transaction. The leader's backend went on waiting for its COMMIT with the
# transaction's row locks, every other writer queued behind them, and nothing was written for
# 51 s, until the partition healed: its reply unacknowledged, Linux retransmits for 15 min
# (idle, it would wait 2 h). group_data's tcp_user_timeout and tcp_keepalives_* drop such a
# session after 25 s (keepalives alone did not: the reply in flight holds them off).
def test_a_client_cut_off_inside_its_transaction_releases_its_locks_after_the_keepalives():
    silent = int(S["postgresql_parameters"]["tcp_user_timeout"]) / 1000
    state = drills.wait_healthy(CLUSTER)
    assert state["ok"], state["problem"]
    leader = CLUSTER.node(state["leader"])
    synchronous = set(drills.sync_standbys(CLUSTER))  # its commits would wait for one cut off
    cut = next(n for n in CLUSTER.patroni if n.patroni_name not in synchronous | {state["leader"]})
    port = str(S["haproxy_rw_port"])
    table = f"{DRILL_SCHEMA}.locked_row"
    setup_table(CLUSTER)  # the drills' schema
    with closing(psycopg2.connect(client.dsn(CLUSTER, host=leader.address, port=port))) as conn, conn.cursor() as cur:
        cur.execute(f"create table if not exists {table} (id int primary key, n int not null)")
        cur.execute(f"insert into {table} values (1, 0) on conflict do nothing")
        conn.commit()
    # through the cut node's HAProxy: the row locked, the transaction left open
    orphan = psycopg2.connect(client.dsn(CLUSTER, host=cut.address, port=port))
    orphan.cursor().execute(f"update {table} set n = n + 1 where id = 1")
    faults.drop_traffic(leader, [cut.address])
    try:
        started = time.monotonic()
        writer = psycopg2.connect(client.dsn(CLUSTER, host=leader.address, port=port))
        try:
            with writer.cursor() as cur:
                cur.execute("set statement_timeout = '90s'")
                cur.execute(f"update {table} set n = n + 1 where id = 1")
            writer.commit()
        except psycopg2.errors.QueryCanceled:
            pytest.fail(f"the row stayed locked by the session cut off for 90 s (tcp_user_timeout: {silent:.0f} s)")
        finally:
            writer.close()
        waited = time.monotonic() - started
    finally:
        faults.restore_traffic(leader)
        orphan.close()
    print(f"\nthe writer waited {waited:.1f} s for the row the cut-off session locked (tcp_user_timeout: {silent:.0f} s)")
    assert waited < silent + 10, f"the writer waited {waited:.1f} s: tcp_user_timeout ({silent:.0f} s) did not end the session"
    healed = drills.wait_healthy(CLUSTER)
    assert healed["ok"], healed["problem"]
