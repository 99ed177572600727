"""The house rules of pgha/, checked on its source: no import cycle between modules nor
between components (pgha.<component> as one node), no module over 400 lines, no function
over 80 lines, no port number written outside the settings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pgha"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The pgha modules ``name`` imports (anywhere in it), as their module names."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def component(module: str) -> str:
    """pgha.<component> for a module of a subpackage; a top-level module is its own node."""
    parts = module.split(".")
    return ".".join(parts[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


def test_no_import_cycle_between_components():
    edges: dict[str, set[str]] = {}
    for module, imported in graph().items():
        edges.setdefault(component(module), set()).update(
            component(m) for m in imported if component(m) != component(module) and component(m) != "pgha")
    assert cycles(edges) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_400_lines(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines: two jobs?"


def test_no_function_over_80_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long


# the ports of the settings: written in group_data/all.py only
PORTS = {2379, 2380, 5432, 5433, 5434, 6432, 7000, 8008, 8432, 9090, 9093, 9100, 9187}


def test_no_port_literal_outside_the_settings():
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value in PORTS:
                found.append(f"{name}:{node.lineno}: {node.value}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not _prose(node.value):
                found += [f"{name}:{node.lineno}: {m}" for m in re.findall(r"(?<![\d.])(\d{4})(?!\d)", node.value)
                          if int(m) in PORTS]
    assert not found, found


def _prose(text: str) -> bool:
    """Docstrings and messages may name a default port; code strings may not (heuristic:
    a string with a space and a letter-word is prose)."""
    return len(re.findall(r"[A-Za-z]{3,}", text)) >= 3 and " " in text


def test_the_checks_find_what_they_look_for(tmp_path):
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert component("pgha.etcd.deploy") == "pgha.etcd" and component("pgha.cli") == "pgha.cli"
