"""What a deploy says last: sections its final checks hand over (the backups, who leads and
who streams, how to connect), printed once pyinfra has printed its results table, so that
the connection strings are the very last lines of the run."""

from __future__ import annotations

import atexit
import sys

_sections: dict[str, str] = {}


def _print() -> None:
    if "cluster" not in _sections:  # the run did not reach its final check
        return
    out = sys.stdout
    for title, text in _sections.items():
        out.write(f"\n--> {SECTION_TITLES.get(title, title)}\n{text}\n")
    out.flush()


SECTION_TITLES = {"backups": "Backups (pgha backups)", "cluster": "Cluster status", "maintenance": "Maintenance mode",
                  "connect": "Connect"}
_registered: list[bool] = []


def say_last(section: str, text: str) -> None:
    """Keep ``text`` for the end of the run (a section said again replaces the earlier)."""
    _sections.pop(section, None)
    _sections[section] = text
    order = list(SECTION_TITLES)
    for key in sorted(_sections, key=lambda k: order.index(k) if k in order else len(order)):
        _sections[key] = _sections.pop(key)
    if not _registered:
        atexit.register(_print)
        _registered.append(True)
