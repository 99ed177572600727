"""docs/settings.md, generated: every setting of the registry (pgha.components) and the
cluster's own, with its default (group_data/all.py, the one place values are written), what
is expected (the schema) and what it does (group_data/all.py's comment for it).

Usage: python -m pgha.settings.reference > docs/settings.md
(tests/unit/test_components.py fails when the committed file is not this output.)
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

from pgha import components
from pgha.settings.loader import DEFAULTS_DIR
from pgha.settings.schema import CORE_SETTINGS

DEFAULTS_FILE = DEFAULTS_DIR / "all.py"


def _comments(source: str) -> dict[int, str]:
    """Each comment's text by line number (its `# ` stripped)."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def defaults(path: Path = DEFAULTS_FILE) -> dict[str, tuple[str, str]]:
    """setting -> (its default as written, what its comments say): a trailing comment, or
    the block of comments right above it (a section's `--- title ---` line is not one)."""
    source = path.read_text(encoding="utf-8")
    comments = _comments(source)
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        value = ast.get_source_segment(source, node.value) or ""
        said = [comments[node.lineno]] if node.lineno in comments and not lines[node.lineno - 1].lstrip().startswith("#") else []
        if not said:
            above: list[str] = []
            line = node.lineno - 1
            while line in comments and lines[line - 1].lstrip().startswith("#") and not comments[line].startswith("---"):
                above.insert(0, comments[line])
                line -= 1
            said = above
        found[node.targets[0].id] = (" ".join(value.split()), " ".join(said))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    known = defaults()
    parts = [
        "# Settings",
        "",
        "Generated from the schemas (each component's `settings.py`, listed by `pgha/components.py`) and",
        "`group_data/all.py`, where every default is written: `python -m pgha.settings.reference >",
        "docs/settings.md`. Set any of them in your inventory's `group_data/all.py`; yours wins. A",
        "bad value is refused before pyinfra connects, with the setting, the value and what is expected.",
    ]
    sections = [("The cluster", CORE_SETTINGS)] + [(f"{c.name}: {c.summary}", c.settings) for c in components.COMPONENTS]
    for title, schema in sections:
        parts += ["", f"## {title}", "", "| setting | default | expected | what it does |", "|---|---|---|---|"]
        for name in schema:
            default, said = known.get(name, ("(none: set it in your inventory)", ""))
            parts.append(f"| `{name}` | `{_cell(default)}` | {_cell(schema[name][1])} | {_cell(said)} |")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
