"""pgbackrest-archive-push, PostgreSQL's archive_command (pgha/backup/templates/archive-push.sh.j2):
the rendered script run on a data directory of given files, against a ``pgbackrest`` stand-in
that exits with a given code. The lab's drill is test_backup.py's stale-segment test."""

from __future__ import annotations

import subprocess

import pytest

from pgha.backup import values

from .conftest import render

STANZA = "my-ha-cluster"



def _archive_push(tmp_path, segment: str, pgbackrest_exit: int, history: list[str]):
    """The rendered archive_command script, run on ``pg_wal/segment`` in a data directory whose
    pg_wal holds the ``history`` files, pgBackRest answering ``pgbackrest_exit``."""
    bin_dir, wal_dir = tmp_path / "bin", tmp_path / "data" / "pg_wal"
    bin_dir.mkdir()
    wal_dir.mkdir(parents=True)
    for name in [segment, *history]:
        (wal_dir / name).write_text("")
    stub = bin_dir / "pgbackrest"
    stub.write_text(f'#!/bin/sh\necho "pgbackrest $*" >&2\nexit {pgbackrest_exit}\n')
    stub.chmod(0o755)
    script = tmp_path / "archive-push"
    script.write_text(render("backup/archive-push.sh.j2", values.archive_push_script()))
    return subprocess.run(["bash", str(script), f"--stanza={STANZA}", "archive-push", f"pg_wal/{segment}"],
                          cwd=tmp_path / "data", capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})


@pytest.mark.parametrize("segment, history", [
    ("0000000E0000000000000035", ["0000000E.history", "00000014.history"]),
    ("0000000E0000000000000035.partial", ["00000014.history"]),
    ("000000090000000100000000", ["0000000A.history"]),
])
def test_a_duplicate_of_an_older_timeline_is_left_to_the_repository(tmp_path, segment, history):
    pushed = _archive_push(tmp_path, segment, values.DUPLICATE_ERROR, history)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pgbackrest --stanza={STANZA} archive-push pg_wal/{segment}" in pushed.stderr
    assert f"pgha: {segment} is on timeline" in pushed.stderr and "that copy stays" in pushed.stderr


@pytest.mark.parametrize("segment, exit_code, history", [
    # the server's own timeline: two writers of one stanza, an operator must look
    ("000000140000000000000040", values.DUPLICATE_ERROR, ["0000000E.history", "00000014.history"]),
    # a newer timeline than the server knows, or no history at all (timeline 1)
    ("000000150000000000000040", values.DUPLICATE_ERROR, ["00000014.history"]),
    ("000000010000000000000002", values.DUPLICATE_ERROR, []),
    # a history file, and any other failure (the repository away), pass through unchanged
    ("0000000E.history", values.DUPLICATE_ERROR, ["00000014.history"]),
    ("0000000E0000000000000035", 1, ["00000014.history"]),
    ("0000000E0000000000000035", 82, ["00000014.history"]),
])
def test_every_other_refusal_reaches_postgresql(tmp_path, segment, exit_code, history):
    pushed = _archive_push(tmp_path, segment, exit_code, history)
    assert pushed.returncode == exit_code, pushed.stderr
    assert "pgha:" not in pushed.stderr


def test_a_push_that_succeeds_succeeds(tmp_path):
    pushed = _archive_push(tmp_path, "000000140000000000000040", 0, ["00000014.history"])
    assert pushed.returncode == 0 and "pgha:" not in pushed.stderr
