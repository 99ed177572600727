"""The replicas' lag watcher (pghalab.drills.lag) and the soak's loss rule (soak.loss_ok)
on recorded member statuses and given samples: what asynchronous mode may lose at a failover."""

from __future__ import annotations

import json

import pytest

from pghalab import soak
from pghalab.drills.lag import LagWatch, leader_and_lags, leader_changes

from .conftest import recorded

# pg-1 leading while its replicas were cut off from it (replaying the archive): 4.0.7
REPLICAS_CUT_OFF = json.loads(recorded("patroni-4.0.7-own-statuses-replicas-cut-off.json"))
LEADER_302 = json.loads(recorded("patroni-3.0.2-leader-patroni.json"))
REPLICA_302 = json.loads(recorded("patroni-3.0.2-replica-patroni.json"))


def test_a_replica_is_behind_by_the_leader_position_less_its_furthest_own():
    # received 159649720, replayed 167772160 (a whole segment from the archive): the furthest counts
    assert leader_and_lags(REPLICAS_CUT_OFF) == ("pg-1", {"pg-2": 172461912 - 167772160, "pg-3": 172461912 - 167772160})


def test_a_3_0_2_master_leads_and_a_replica_level_with_it_lags_nothing():
    assert leader_and_lags({"pg-1": LEADER_302, "pg-2": REPLICA_302, "pg-3": None}) == ("pg-1", {"pg-2": 0})


@pytest.mark.parametrize("own", [
    {"pg-1": None, "pg-2": REPLICA_302},  # the leader does not answer
    {"pg-1": LEADER_302, "pg-2": dict(LEADER_302)},  # two say they lead
    {"pg-1": dict(LEADER_302, state="stopping"), "pg-2": REPLICA_302},
])
def test_no_sample_without_exactly_one_running_leader(own):
    assert leader_and_lags(own) is None


def test_a_leader_change_gives_the_new_leaders_lag_in_the_old_leaders_last_sample():
    samples = [(100.0, "pg-1", {"pg-2": 500, "pg-3": 900}), (100.5, "pg-1", {"pg-2": 200, "pg-3": 0}),
               (101.0, "pg-1", {"pg-3": 40}),  # pg-2 did not answer in the last one
               (131.0, "pg-2", {"pg-3": 0}), (131.5, "pg-2", {"pg-3": 0, "pg-1": 7})]
    assert leader_changes(samples) == [{"seen_at": 131.0, "old_leader": "pg-1", "new_leader": "pg-2",
                                        "last_lag_bytes": 200, "max_lag_bytes": 500, "last_sample_age_s": 30.0}]


def test_a_change_to_a_member_never_seen_as_a_replica_has_no_lag():
    got = leader_changes([(10.0, "pg-1", {"pg-2": 0}), (40.0, "pg-3", {"pg-1": 0})])
    assert got[0]["last_lag_bytes"] is None and got[0]["max_lag_bytes"] is None


@pytest.mark.parametrize(("lost", "lags", "bound", "ok"), [
    (0, [], None, True),  # nothing lost: fine in either mode
    (0, [5000], 1048576, True),
    (None, [], None, False),  # the leader could not be checked
    (3, [2000], None, False),  # synchronous mode: no loss at all
    (3, [2000], 1048576, True),  # asynchronous: what the promoted replica had not received
    (3, [], 1048576, False),  # lost without a promotion: no replication lag explains it
    (3, [None], 1048576, False),  # the promoted replica's lag unknown
    (3, [2000, 2_000_000], 1048576, False),  # one promotion past the bound
])
def test_a_fault_may_lose_transfers_only_in_asynchronous_mode_within_the_lag_bound(lost, lags, bound, ok):
    assert soak.loss_ok(lost, lags, bound) is ok


def test_changes_since_a_time_see_the_old_leaders_last_samples_before_it():
    watch = LagWatch(cluster=None)
    watch.samples = [(90.0, "pg-1", {"pg-2": 700}), (99.5, "pg-1", {"pg-2": 30}), (131.0, "pg-2", {"pg-3": 0}),
                     (200.0, "pg-3", {"pg-2": 0})]
    assert [(c["new_leader"], c["last_lag_bytes"], c["max_lag_bytes"]) for c in watch.changes_since(100.0)] == [
        ("pg-2", 30, 700), ("pg-3", 0, 0)]
    assert [c["new_leader"] for c in watch.changes_since(150.0)] == ["pg-3"]
