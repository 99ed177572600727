"""What the CLI and the deploy print about the repository and WAL archiving: the backups
table of `pgha backups` (and the deploy's last step), the archiving line of `pgha status`."""

from __future__ import annotations

from pgha.backup.facts import human_time, in_history, restore_window


def _size(value) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return str(value)


def backups_table(found: dict, now: float, last_archived: str | None = None) -> str:
    """`pgha backups`: one line a backup, then the window one can restore to."""
    lines = [f"{'label':<33} {'type':<5} {'start':<22} {'stop':<22} {'database':>9} {'copied':>9} {'stored':>9}  wal"]
    timeline = found.get("timeline")
    reachable = [b for b in found["backups"]
                 if not timeline or in_history(b, timeline, found.get("history") or {})]
    for b in found["backups"]:
        lines.append(
            f"{b['label']:<33} {b['type']:<5} {human_time(b['start']):<22} {human_time(b['stop']):<22} "
            f"{_size(b['size']):>9} {_size(b.get('delta')):>9} {_size(b['repo_size']):>9}  {b['wal_start']}..{b['wal_stop']}"
            + ("" if b in reachable else "  (a branch an earlier restore left: --label only)")
        )
    window = restore_window({**found, "backups": reachable}, now)
    if window is None:
        lines.append("no backup yet: nothing to restore to (`pgha backup --type full` takes one)")
    else:
        newest = (f"{last_archived} (the last WAL file archived)" if last_archived
                  else f"now ({human_time(window[1])})")
        lines.append(
            f"restore to any time from {human_time(window[0])} (the end of the oldest backup) to {newest}; "
            "`pgha restore` archives the leader's current WAL first"
        )
    if found.get("wal"):
        lines.append(f"WAL archived: {found['wal'][0]} .. {found['wal'][1]}")
    return "\n".join(lines)


def archiving_line(state: dict | None) -> str:
    """The line `pgha status` prints about WAL archiving on the leader."""
    if state is None:
        return "archiving: unknown (the leader's pg_stat_archiver did not answer)"
    if state["failing"]:
        return (
            f"archiving: FAILING since {state['last_failed_time']} ({state['last_failed_wal']}; last success "
            f"{state['last_archived_time'] or 'never'}): WAL waits in pg_wal until the repository is back"
        )
    return f"archiving: ok (last {state['last_archived_wal'] or 'none yet'} at {state['last_archived_time'] or '-'})"
