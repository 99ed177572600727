"""The soak's logic without a host: the bank's rules on given snapshots, the write
unavailability, the seeded schedule, the per-fault summary and the fault registry
(the soak itself runs on the lab: bench/soak.py)."""

from __future__ import annotations

import types

import pytest

from pghalab import soak
from pghalab.drills import bank
from pghalab.drills.scenarios import DRILLS
from pghalab.drills.soak_faults import SOAK_FAULTS, HeldFault

B = bank.INITIAL_BALANCE


def test_a_consistent_snapshot_passes():
    accounts = [(1, B - 30, B - 30), (2, B + 30, B + 30), (3, B, B)]
    got = bank.verdict(accounts, 3, {"c0-1", "c1-1"}, acknowledged={"c0-1"}, unknown={"c1-1", "c1-2"})
    assert got["ok"] and got["total_ok"] and got["lost"] == 0
    assert (got["unknown_committed"], got["unknown_not_committed"]) == (1, 1)


def test_a_changed_total_fails():
    got = bank.verdict([(1, B - 30, B - 30), (2, B + 20, B + 20)], 2)
    assert not got["ok"] and not got["total_ok"] and got["total"] == 2 * B - 10


def test_a_transfer_applied_twice_leaves_balances_off_the_log():
    # the log has one transfer of 30 from 1 to 2, the balances moved 60
    got = bank.verdict([(1, B - 60, B - 30), (2, B + 60, B + 30)], 2)
    assert got["total_ok"] and not got["ok"] and got["inconsistent_accounts"] == [1, 2]


def test_an_acknowledged_transfer_missing_from_the_log_is_lost():
    got = bank.verdict([(1, B, B), (2, B, B)], 2, {"c0-1"}, acknowledged={"c0-1", "c0-2", "c1-7"})
    assert got["lost"] == 2 and got["lost_ids"] == ["c0-2", "c1-7"]
    assert got["ok"]  # the balances agree with the log: the loss is judged per fault (soak.loss_ok)


def test_a_missing_account_fails_the_total():
    assert not bank.verdict([(1, B, B)], 2)["total_ok"]


@pytest.mark.parametrize(("times", "start", "end", "gap"), [
    ([1.0, 2.0, 5.0, 5.5], 1.5, 6.0, 3.0),  # 2.0 -> 5.0
    ([1.0, 2.0], 1.5, 9.0, 7.0),  # never resumed: until the window's end
    ([4.0], 1.0, 5.0, 3.0),  # nothing before: from the window's start
    ([0.5, 1.1, 1.2], 1.0, 1.3, 0.6),  # from the last acknowledgement before the window
])
def test_longest_gap_over_every_client(times, start, end, gap):
    assert bank.longest_gap(times, start, end) == gap


def test_the_same_seed_draws_the_same_run():
    names = sorted(SOAK_FAULTS)
    first = soak.schedule(42, 20, names)
    assert first == soak.schedule(42, 20, names) and first != soak.schedule(43, 20, names)
    assert all(name in names and soak.HOLD_SECONDS[0] <= hold <= soak.HOLD_SECONDS[1] for name, hold in first)


def test_summary_per_fault_type():
    results = [
        {"fault": "leader-killed", "ok": True, "lost": 0, "unavailable_s": 12.0},
        {"fault": "leader-killed", "ok": False, "lost": 2, "unavailable_s": 30.0, "promoted_lag_bytes": [900, None]},
        {"fault": "leader-killed", "ok": True, "lost": 0, "unavailable_s": 14.0},
        {"fault": "replica-killed", "ok": False, "problem": "not healthy before"},
    ]
    got = soak.summary(results)
    assert got["leader-killed"] == {"count": 3, "failed": 1, "lost": 2, "promoted_lag_max_bytes": 900,
                                    "unavailable_median_s": 14.0, "unavailable_p95_s": 30.0, "unavailable_max_s": 30.0}
    assert got["replica-killed"]["failed"] == 1 and got["replica-killed"]["unavailable_max_s"] is None


def test_the_soak_faults_are_the_drills_but_the_switchover_and_its_own():
    assert set(DRILLS) - {"switchover"} < set(SOAK_FAULTS)
    own = {name: SOAK_FAULTS[name](7.0) for name in set(SOAK_FAULTS) - set(DRILLS)}
    assert own and all(isinstance(f, HeldFault) and f.hold == 7.0 and f.name == name for name, f in own.items())


@pytest.mark.parametrize("notes, expected", [
    ({"deploy_exit": 1, "deploy_traceback": False, "restarted_by_the_deploy": []}, None),
    ({"deploy_exit": 1, "deploy_traceback": True, "restarted_by_the_deploy": []}, "traceback"),
    ({"deploy_exit": 0, "deploy_traceback": False, "restarted_by_the_deploy": ["pg_patroni2"]}, "restarted"),
])
def test_a_deploy_during_a_fault_may_stop_but_neither_crash_nor_restart_the_spared(notes, expected):
    fault = SOAK_FAULTS["deploy-during-replica-killed"](7.0)
    ctx = types.SimpleNamespace(notes=notes)
    problem = fault.problem(ctx)
    assert (problem is None) if expected is None else (expected in problem), problem
    assert fault.inner.name == "replica-killed" and fault.affected == fault.inner.affected
