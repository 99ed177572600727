"""The repository as pgha reads it: pgha.backup.facts.parse_info on pgBackRest 2.55's
recorded `info --output=json`, the restore window, restore.plan and restore.parse_time,
and what `pgha backups` and `pgha status` print (pgha.backup.commands)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from pgha.backup import facts, report, restore
from pgha.backup.facts import PgbackrestInfo, backup_for_time, human_time, parse_info, restore_window
from pgha.errors import BackupError

from .conftest import recorded

CASES_DIR = Path(__file__).resolve().parent / "operations"  # test_operations.py's cases

FULL = "20261126-040913F"
INCR = "20261126-040913F_20261126-041453I"
FULL_STOP = 1795666156  # 2026-11-26 04:09:16 UTC
INCR_STOP = 1795666494  # 2026-11-26 04:14:54 UTC
NOW = 1795667000  # 2026-11-26 04:23:20 UTC
UTC = datetime.UTC


@pytest.fixture
def info() -> dict:
    return parse_info(recorded("pgbackrest-2.55-info.json"))


@pytest.fixture
def empty() -> dict:
    return parse_info(recorded("pgbackrest-2.55-info-missing-stanza.json"))


# --- facts.parse_info ---------------------------------------------------------------------


def test_parse_info_of_a_stanza_with_a_full_and_an_incremental_backup(info):
    assert info["status"] == 0
    assert info["message"] == "ok"
    assert info["wal"] == ("000000010000000000000001", "00000003000000000000000F")
    assert info["backups"] == [
        {
            "label": FULL, "type": "full", "start": 1795666153, "stop": FULL_STOP,
            "size": 23535581, "delta": 23535581, "repo_size": 2821776,
            "wal_start": "000000010000000000000007", "wal_stop": "000000010000000000000007",
            "prior": None, "error": False, "lsn_start": "0/7000028",
        },
        {
            "label": INCR, "type": "incr", "start": 1795666493, "stop": INCR_STOP,
            "size": 23535581, "delta": 8450, "repo_size": 416,
            "wal_start": "00000001000000000000000D", "wal_stop": "00000001000000000000000D",
            "prior": FULL, "error": False, "lsn_start": "0/D000028",
        },
    ]


def test_parse_info_of_a_missing_stanza(empty):
    assert empty == {"status": 1, "message": "missing stanza path", "backups": [], "wal": None, "archive_id": None}


def test_parse_info_picks_the_stanza_asked_for():
    text = recorded("pgbackrest-2.55-info.json")
    assert parse_info(text, "my-ha-cluster") == parse_info(text)
    assert parse_info(text, "other") is None
    assert parse_info(recorded("pgbackrest-2.55-info-missing-stanza.json"), "my-ha-cluster") is None


@pytest.mark.parametrize("text", ["", "not json", "ERROR: [055]: unable to load info file", "{}",
                                  '{"name": "my-ha-cluster"}', "[1, 2]", "[]", "null", "42"])
def test_parse_info_of_garbage_is_none(text):
    assert parse_info(text) is None


def test_the_operation_cases_use_what_parse_info_gives(info):
    """The facts of tests/unit/operations/backup.* are parse_info's real answers."""
    case = json.loads((CASES_DIR / "backup.first_backup" / "holds_backups.json").read_text())
    assert case["facts"]["PgbackrestInfo"]["stanza=my-ha-cluster"] == json.loads(json.dumps(info))
    missing = json.loads((CASES_DIR / "backup.stanza_created" / "missing_stanza_path.json").read_text())
    assert missing["facts"]["PgbackrestInfo"]["stanza=my-ha-cluster"] == json.loads(json.dumps(
        parse_info(recorded("pgbackrest-2.55-info-missing-stanza.json"))))


def test_pgbackrest_info_fact():
    fact = PgbackrestInfo()
    assert fact.command(stanza="my-ha-cluster") == (
        "runuser -u pgbackrest -- pgbackrest --stanza=my-ha-cluster --output=json info 2>/dev/null || true"
    )
    assert fact.requires_command(stanza="my-ha-cluster") == "pgbackrest"
    text = recorded("pgbackrest-2.55-info.json")
    assert fact.process(text.splitlines()) == parse_info(text)
    assert fact.process([]) is None


def test_human_time():
    assert human_time(FULL_STOP) == "2026-11-26 04:09:16+00"
    assert human_time(None) is None


# --- the restore window -------------------------------------------------------------------


def test_restore_window(info, empty):
    assert restore_window(info, NOW + 0.7) == (FULL_STOP, NOW)
    assert restore_window(empty, NOW) is None
    assert restore_window(None, NOW) is None


def test_a_failed_backup_opens_no_window(info):
    failed = {**info, "backups": [{**info["backups"][0], "error": True}, info["backups"][1]]}
    assert restore_window(failed, NOW) == (INCR_STOP, NOW)
    assert backup_for_time(failed, FULL_STOP + 10) is None


@pytest.mark.parametrize(
    "target, label",
    [(FULL_STOP - 1, None), (FULL_STOP, FULL), (INCR_STOP - 1, FULL), (INCR_STOP, INCR), (NOW, INCR)],
)
def test_backup_for_time(info, target, label):
    chosen = backup_for_time(info, target)
    assert (chosen and chosen["label"]) == label


# --- restore.parse_time -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["2026-11-26 04:15:17+00", "2026-11-26T04:15:17Z", "2026-11-26 05:15:17+01:00",
             " 2026-11-25 23:15:17-05 "],
)
def test_parse_time_gives_the_utc_instant(text):
    moment = restore.parse_time(text)
    assert moment == datetime.datetime(2026, 11, 26, 4, 15, 17, tzinfo=UTC)
    assert moment.utcoffset() == datetime.timedelta(0)


def test_parse_time_without_an_offset_is_refused():
    with pytest.raises(BackupError, match="has no UTC offset"):
        restore.parse_time("2026-11-26 04:15:17")


@pytest.mark.parametrize("text", ["yesterday", "2026-13-26 04:15:17+00", "", "04:15+00"])
def test_parse_time_of_nonsense_is_refused(text):
    with pytest.raises(BackupError) as error:
        restore.parse_time(text)
    assert str(error.value) == f"--time {text!r}: expected a time such as 'YYYY-MM-DD HH:MM:SS+00'"


# --- restore.plan -------------------------------------------------------------------------


def test_plan_refuses_an_empty_repository(empty):
    for target in ({"at": "2026-11-26 04:15:17+00"}, {"latest": True}, {"label": FULL}):
        with pytest.raises(BackupError, match="the repository holds no backup"):
            restore.plan(empty, NOW, **target)


def test_plan_refuses_a_time_in_the_future(info):
    with pytest.raises(BackupError) as error:
        restore.plan(info, NOW, at="2026-11-26 04:23:21+00")
    assert "is in the future (now is 2026-11-26 04:23:20+00)" in str(error.value)


def test_plan_refuses_a_time_before_the_oldest_backup_ended(info):
    with pytest.raises(BackupError) as error:
        restore.plan(info, NOW, at="2026-11-26 04:09:15+00")
    assert str(error.value) == (
        "--time '2026-11-26 04:09:15+00' is before the end of the oldest backup (2026-11-26 04:09:16+00): "
        "expected a time from 2026-11-26 04:09:16+00 to now"
    )


def test_plan_refuses_an_unknown_label(info):
    with pytest.raises(BackupError) as error:
        restore.plan(info, NOW, label="20261126-000000F")
    assert str(error.value) == (
        f"--label '20261126-000000F' is not in the repository: expected one of {FULL}, {INCR}"
    )


@pytest.mark.parametrize(
    "at, label, target",
    [
        ("2026-11-26 04:09:16+00", FULL, "2026-11-26 04:09:16.000000+00"),
        ("2026-11-26 04:12:00+00", FULL, "2026-11-26 04:12:00.000000+00"),
        ("2026-11-26 05:14:53+01:00", FULL, "2026-11-26 04:14:53.000000+00"),
        ("2026-11-26T04:14:54Z", INCR, "2026-11-26 04:14:54.000000+00"),
        ("2026-11-26 04:20:00.25+00", INCR, "2026-11-26 04:20:00.250000+00"),
    ],
)
def test_plan_to_a_time_replays_from_the_newest_backup_ended_before_it(info, at, label, target):
    chosen = restore.plan(info, NOW, at=at)
    assert chosen["set"] == label
    # the target holds a space: quoted for the shell the command runs in
    assert chosen["args"] == ["--type=time", f"--target='{target}'", "--target-action=promote"]
    assert chosen["target"] == f"{target} (from backup {label})"


def test_plan_latest(info):
    assert restore.plan(info, NOW, latest=True) == {
        "set": INCR, "args": ["--type=default"], "target": "the last WAL the repository holds",
    }


def test_plan_label(info):
    assert restore.plan(info, NOW, label=FULL) == {
        "set": FULL,
        # its own timeline: a backup on a branch an earlier restore left can be restored too
        "args": ["--type=immediate", "--target-action=promote", "--target-timeline=current"],
        "target": f"the end of backup {FULL} (2026-11-26 04:09:16+00)",
    }


def test_plan_never_chooses_a_failed_backup(info):
    failed = {**info, "backups": [info["backups"][0], {**info["backups"][1], "error": True}]}
    assert restore.plan(failed, NOW, latest=True)["set"] == FULL
    assert restore.plan(failed, NOW, at="2026-11-26 04:20:00+00")["set"] == FULL
    with pytest.raises(BackupError, match=f"expected one of {FULL}$"):
        restore.plan(failed, NOW, label=INCR)


# --- pgha status: WAL archiving -----------------------------------------------------------

ARCHIVED = "2026-11-26 04:15:17+00|00000001000000000000000D|0|||f"
FAILING = ("2026-11-26 04:15:17+00|00000001000000000000000D|3|2026-11-26 04:16:02+00|"
           "00000001000000000000000E|t")


def test_parse_archiver():
    assert facts.parse_archiver(ARCHIVED + "\n") == {
        "last_archived_time": "2026-11-26 04:15:17+00",
        "last_archived_wal": "00000001000000000000000D",
        "failed_count": 0,
        "last_failed_time": None,
        "last_failed_wal": None,
        "failing": False,
    }
    failing = facts.parse_archiver(FAILING)
    assert failing["failing"] is True
    assert failing["failed_count"] == 3
    assert failing["last_failed_wal"] == "00000001000000000000000E"
    assert facts.parse_archiver("||0|||f")["last_archived_wal"] is None


@pytest.mark.parametrize("line", ["", "psql: error: connection refused", "a|b|0|c|d"])
def test_parse_archiver_of_no_row_is_none(line):
    assert facts.parse_archiver(line) is None


def test_archiving_line():
    assert report.archiving_line(facts.parse_archiver(ARCHIVED)) == (
        "archiving: ok (last 00000001000000000000000D at 2026-11-26 04:15:17+00)"
    )
    assert report.archiving_line(facts.parse_archiver("||0|||f")) == "archiving: ok (last none yet at -)"
    assert report.archiving_line(facts.parse_archiver(FAILING)) == (
        "archiving: FAILING since 2026-11-26 04:16:02+00 (00000001000000000000000E; last success "
        "2026-11-26 04:15:17+00): WAL waits in pg_wal until the repository is back"
    )
    assert report.archiving_line(None) == "archiving: unknown (the leader's pg_stat_archiver did not answer)"


# --- pgha backups -------------------------------------------------------------------------


def test_backups_table(info):
    lines = report.backups_table(info, NOW).splitlines()
    assert lines[0].split() == ["label", "type", "start", "stop", "database", "copied", "stored", "wal"]
    assert lines[1].startswith(f"{FULL} ")
    assert lines[1].split()[1] == "full"
    assert "2026-11-26 04:09:13+00 2026-11-26 04:09:16+00" in lines[1]
    assert "22.4MB" in lines[1] and "2.7MB" in lines[1]
    assert lines[2].startswith(f"{INCR} ")
    assert lines[2].split()[1] == "incr"
    assert "416B" in lines[2]
    assert "00000001000000000000000D..00000001000000000000000D" in lines[2]
    assert lines[3].startswith(
        "restore to any time from 2026-11-26 04:09:16+00 (the end of the oldest backup) to now (2026-11-26 04:23:20+00); "
    )
    assert lines[4] == "WAL archived: 000000010000000000000001 .. 00000003000000000000000F"
    assert len(lines) == 5


def test_backups_table_names_the_last_archived_wal_time(info):
    text = report.backups_table(info, NOW, last_archived="2026-11-26 04:22:00+00")
    assert "to 2026-11-26 04:22:00+00 (the last WAL file archived);" in text


def test_backups_table_without_backup(empty):
    assert report.backups_table(empty, NOW).splitlines()[1:] == [
        "no backup yet: nothing to restore to (`pgha backup --type full` takes one)"
    ]


# --- timelines: after a restore, backups on the branch it left -----------------------------

# the repository after two restores: timeline 7 came from 1 (left at 0/2F000208) through 6
HISTORY_7 = "1\t0/2F000208\treached consistency\n\n6\t0/300000A0\tno recovery target specified\n"


def _backup(label: str, wal_start: str, lsn_start: str, stop: int) -> dict:
    return {"label": label, "type": "full", "start": stop - 4, "stop": stop, "size": 1, "delta": 1,
            "repo_size": 1, "wal_start": wal_start, "wal_stop": wal_start, "prior": None, "error": False,
            "lsn_start": lsn_start}


BRANCHED = {
    "status": 0, "message": "ok", "wal": None, "archive_id": "17-1", "timeline": 7,
    "history": facts.parse_history(HISTORY_7),
    "backups": [
        _backup("A-before-the-branch", "00000001000000000000002F", "0/2F0000D8", NOW - 600),
        _backup("B-left-branch", "000000010000000000000043", "0/43000028", NOW - 500),
        _backup("C-left-branch", "000000030000000000000051", "0/51000028", NOW - 400),
    ],
}


def test_parse_history():
    assert facts.parse_history(HISTORY_7) == {1: 0x2F000208, 6: 0x300000A0}
    assert facts.lsn("1/0000FF00") == (1 << 32) | 0xFF00


def test_only_backups_on_the_timelines_history_serve_latest_and_time():
    assert [b["label"] for b in BRANCHED["backups"] if facts.in_history(b, 7, BRANCHED["history"])] == [
        "A-before-the-branch"]
    assert restore.plan(BRANCHED, NOW, latest=True)["set"] == "A-before-the-branch"
    at = datetime.datetime.fromtimestamp(NOW - 100, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    assert restore.plan(BRANCHED, NOW, at=at)["set"] == "A-before-the-branch"
    # --label still reaches a backup on a left branch, on its own timeline
    assert "--target-timeline=current" in restore.plan(BRANCHED, NOW, label="C-left-branch")["args"]


def test_no_backup_on_the_history_is_refused_with_the_way_out():
    only_left = {**BRANCHED, "backups": BRANCHED["backups"][1:]}
    with pytest.raises(BackupError, match="only --label"):
        restore.plan(only_left, NOW, latest=True)


def test_the_backups_table_marks_the_left_branch():
    text = report.backups_table(BRANCHED, NOW)
    marked = [line.split()[0] for line in text.splitlines() if "--label only" in line]
    assert marked == ["B-left-branch", "C-left-branch"]
    assert f"from {human_time(NOW - 600)}" in text
