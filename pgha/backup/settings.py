"""pgBackRest's settings: name -> (predicate, what is expected). Values: group_data/all.py.
The schedules' syntax is checked by pgha.backup.values.problems (systemd-analyze)."""

from __future__ import annotations

from pgha.validators import BOOL, PG_DURATION, PORT, SIZE, Setting, is_int, is_str

COMPRESS_TYPES = ("zst", "lz4", "gz", "bz2", "none")


def _schedule(value) -> bool:
    return value is None or is_str(value)


SETTINGS: dict[str, Setting] = {
    "pgbackrest_tls_port": PORT,
    "pgbackrest_repo_path": (
        lambda v: is_str(v) and v.startswith("/") and v.rstrip("/") != "", "an absolute path other than /"
    ),
    "pgbackrest_retention_full": (is_int(1), "a number of full backups to keep, at least 1"),
    "pgbackrest_retention_diff": (is_int(1), "a number of differential backups to keep, at least 1"),
    "pgbackrest_compress_type": (
        lambda v: v in COMPRESS_TYPES, f"one of {', '.join(repr(t) for t in COMPRESS_TYPES)}"
    ),
    "pgbackrest_process_max": (is_int(1), "a number of parallel processes, at least 1"),
    "pgbackrest_backup_from_standby": BOOL,
    "pgbackrest_archive_push_queue_max": (
        lambda v: v is None or (isinstance(v, str) and SIZE.match(v) is not None),
        "None (WAL waits in pg_wal until the repository has it) or a size such as '4GiB'",
    ),
    "pgbackrest_archive_timeout": (
        lambda v: isinstance(v, str) and PG_DURATION.match(v) is not None,
        "a PostgreSQL duration such as 60s or 5min (units ms, s, min, h, d)",
    ),
    "pgbackrest_schedule_full": (_schedule, "a systemd OnCalendar expression or None"),
    "pgbackrest_schedule_diff": (_schedule, "a systemd OnCalendar expression or None"),
    "pgbackrest_schedule_incr": (_schedule, "a systemd OnCalendar expression or None"),
}
