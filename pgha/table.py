"""The one table printer: columns as wide as their longest cell, numbers aligned right.
Used by every table pgha prints (the deploy's cluster summary, `pgha status`, `pgha backups`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> str:
    """A header, a rule, one line a row. ``right``: the headers of columns aligned right."""
    cells = [[_text(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers)]
        return "  ".join(parts).rstrip()

    head = line(list(headers))
    return "\n".join([head, "-" * len(head), *(line(r) for r in cells)])
