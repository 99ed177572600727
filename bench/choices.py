"""The benchmarks' comma-separated choices (--modes async,sync, --drills ...), checked."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def comma_list(parser: argparse.ArgumentParser, text: str, known: Iterable[str], what: str) -> list[str]:
    """The items of ``text``, each one of ``known`` (else the parser's error, naming it)."""
    known = list(known)
    items = [item for item in text.split(",") if item]
    for item in items:
        if item not in known:
            parser.error(f"unknown {what} {item!r}: expected one of {', '.join(known)}")
    return items
