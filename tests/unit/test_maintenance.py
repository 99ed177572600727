"""The maintenance commands' decisions without a host (pgha.maintenance): the history
table from a recorded GET /history, the order of restarts, the replica a leader hands over
to, and the CLI refusing an ambiguous restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgha import cli, maintenance

RECORDED = Path(__file__).parent / "recorded"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _member(name, role="replica", state="streaming", lag=0, pending=False):
    return {"name": name, "role": role, "state": state, "lag": lag, "pending_restart": pending}


def test_history_rows_from_patroni_4_0_7():
    history = json.loads((RECORDED / "patroni-4.0.7-history.json").read_text())
    rows = maintenance.history_rows(history, current_timeline=len(history) + 1, leader="pg-1")
    assert rows[0] == (1, "0/B000060", "2026-12-02 17:52:19+00:00", "pg-2", "no recovery target specified")
    assert [r[0] for r in rows] == list(range(1, len(history) + 2))
    assert rows[-1] == (len(history) + 1, "(current)", "-", "pg-1", "-")


def test_history_rows_of_old_entries_without_time_or_leader():
    assert maintenance.history_rows([[1, 50331808, "no recovery target specified"]], 2, "pg-2") == [
        (1, "0/30000A0", "-", "-", "no recovery target specified"), (2, "(current)", "-", "pg-2", "-")]


@pytest.mark.parametrize(("lsn", "text"), [(0, "0/0"), (184549472, "0/B000060"), ((3 << 32) + 0x2A, "3/2A")])
def test_format_lsn(lsn, text):
    assert maintenance.format_lsn(lsn) == text


def test_restart_plan_replicas_first_leader_last():
    members = [_member("pg-1", "leader"), _member("pg-2"), _member("pg-3")]
    assert [m["name"] for m in maintenance.restart_plan(members, ["pg-1", "pg-3"])] == ["pg-3", "pg-1"]
    flagged = [_member("pg-1", "leader", pending=True), _member("pg-2", pending=True), _member("pg-3")]
    assert [m["name"] for m in maintenance.restart_plan(flagged, None)] == ["pg-2", "pg-1"]
    assert maintenance.restart_plan([_member("pg-2")], None) == []


def test_best_replica_is_the_running_one_with_least_lag():
    members = [_member("pg-1", "leader"), _member("pg-2", lag=4096), _member("pg-3", lag=0),
               _member("pg-4", state="starting", lag=0)]
    assert maintenance.best_replica(members, "pg-1") == "pg-3"
    assert maintenance.best_replica(members, "pg-3") == "pg-2"
    assert maintenance.best_replica([_member("pg-1", "leader")], "pg-1") is None


def test_restart_names_members_or_pending_not_both(capsys):
    # a usage error (exit 2), refused before the inventory is read
    for args in (["restart"], ["restart", "pg-1", "--pending"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main([*args, "--inventory", "/nonexistent/inventory.py"])
        assert stopped.value.code == 2
        assert "name the members to restart or give --pending" in capsys.readouterr().err


def test_an_unknown_member_is_refused_naming_the_members(secrets_path, monkeypatch):
    from pgha.settings.loader import load_cluster

    monkeypatch.setenv("PGHA_SECRETS", str(secrets_path))
    cluster = load_cluster(REPO_ROOT / "inventories" / "example" / "inventory.py")
    with pytest.raises(maintenance.MaintenanceError, match="'pg-9' is not a member: expected one of pg-a, pg-b, pg-c"):
        maintenance.member_node(cluster, "pg-9")
