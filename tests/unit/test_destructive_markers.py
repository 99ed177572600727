"""Every integration test that can change the cluster carries the `destructive` marker, so
that the read-only verification (`make verify`, safe on production) never runs it.

Each test function is followed through the module's own functions and fixtures (and
conftest's) to the steps it reaches; a step that changes the cluster (tests/integration/
safety.py: a deploy, a command that stops, edits or removes, a drill, an acting `pgha`
command, an LXC command) without the marker fails here, before any lab exists. The guard in
safety.py checks the same at run time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))

import safety  # noqa: E402

# calls that change the cluster whatever their arguments
ACTING_CALLS = {"start_again", "run_drill", "drill", "under_writes", "rotate"}


def _string_parts(node: ast.AST) -> list[str]:
    """The literal text of a string or f-string (its constant parts, joined)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)]
    return []


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _reasons(function: ast.AST) -> list[str]:
    """The steps in ``function``'s own body that change the cluster."""
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in ACTING_CALLS:
                found.append(f"calls {name}()")
            elif name == "run_pyinfra" and len(node.args) >= 2:
                deploy = _string_parts(node.args[1])
                if not deploy or safety.pyinfra_changes(deploy[0]) is not None:
                    found.append("runs a deploy")
            elif name == "pgha" and node.args:
                words = [w for a in node.args for w in _string_parts(a)]
                if safety.pgha_changes(words):
                    found.append(safety.pgha_changes(words))
        for text in _string_parts(node):
            why = safety.command_changes(text)
            if why:
                found.append(why)
    return found


def _marked(decorators) -> bool:
    for decorator in decorators:
        text = ast.unparse(decorator)
        if f"mark.{safety.MARKER}" in text:
            return True
    return False


def _module_marked(tree: ast.Module) -> bool:
    for node in tree.body:
        marks = isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
        if marks and f"mark.{safety.MARKER}" in ast.unparse(node.value):
            return True
    return False


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _called_names(function: ast.FunctionDef) -> set[str]:
    names = {arg.arg for arg in function.args.args}  # fixtures it asks for
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            names.add(_call_name(node))
        elif isinstance(node, ast.Name):
            names.add(node.id)  # functions passed on (lambda: helper(), map(helper, ...))
    return names


def _reach(name: str, functions: dict, seen: set) -> list[str]:
    if name in seen or name not in functions:
        return []
    seen.add(name)
    function = functions[name]
    reasons = [f"{name}: {r}" for r in _reasons(function)]
    for called in _called_names(function):
        reasons += _reach(called, functions, seen)
    return reasons


def _shared_functions() -> dict[str, ast.FunctionDef]:
    shared = {}
    for name in ("conftest.py", "pg_helpers.py"):
        shared.update(_functions(ast.parse((INTEGRATION / name).read_text())))
    return shared


def _autouse(functions: dict[str, ast.FunctionDef]) -> list[str]:
    """The fixtures every test of the module gets without asking."""
    return [name for name, f in functions.items()
            if any("autouse=True" in ast.unparse(d) for d in f.decorator_list)]


def unmarked_destructive_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    if _module_marked(tree):
        return []
    functions = {**_shared_functions(), **_functions(tree)}
    autouse = _autouse(_functions(tree))
    found = []
    for name, function in _functions(tree).items():
        if not name.startswith("test_") or _marked(function.decorator_list):
            continue
        seen: set = set()
        reasons = _reach(name, functions, seen) + [r for a in autouse for r in _reach(a, functions, seen)]
        if reasons:
            found.append(f"{path.name}::{name} is not marked destructive but {reasons[0]}")
    return found


def test_every_integration_test_that_changes_the_cluster_is_marked():
    found = [problem for path in sorted(INTEGRATION.glob("test_*.py")) for problem in unmarked_destructive_tests(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", [
    "def test_x():\n    host.run('systemctl stop patroni')\n",
    "def test_x(outage):\n    pass\n\n@pytest.fixture\ndef outage(h):\n    h.run(f'systemctl restart {s}')\n",
    "def test_x():\n    helpers.run_pyinfra(INVENTORY, 'deploys/all.py')\n",
    "def test_x():\n    pgha('restore', '--time', t, '--yes')\n",
    "def test_x():\n    subprocess.run(['lxc-stop', '-k', '-n', name])\n",
    "def test_x():\n    helper()\n\ndef helper():\n    host.run('patronictl edit-config --force -s ttl=31')\n",
    "@pytest.fixture(scope='module', autouse=True)\ndef converged():\n    run_pyinfra(INVENTORY, DEPLOY)\n"
    "\ndef test_x():\n    pass\n",
])
def test_an_unmarked_destructive_test_is_found(tmp_path, source):
    path = tmp_path / "test_case.py"
    path.write_text(source)
    assert unmarked_destructive_tests(path), source


@pytest.mark.parametrize("source", [
    "@pytest.mark.destructive\ndef test_x():\n    host.run('systemctl stop patroni')\n",
    "pytestmark = [pytest.mark.destructive]\ndef test_x():\n    host.run('systemctl stop patroni')\n",
    "def test_x():\n    host.run('systemctl is-active patroni && patronictl list')\n",
    "def test_x():\n    helpers.run_pyinfra(INVENTORY, 'fact', 'server.Os')\n",
    "def test_x():\n    pgha('status')\n",
    "def test_x():\n    etcdctl(host, 'put', '/pgha-test/abc', 'v')\n",
])
def test_a_read_only_or_marked_test_passes(tmp_path, source):
    path = tmp_path / "test_case.py"
    path.write_text(source)
    assert not unmarked_destructive_tests(path), source


@pytest.mark.parametrize("command", [
    "systemctl stop etcd", "patronictl -c /etc/patroni/pg-1.yml edit-config --force -s ttl=15",
    "kill -STOP 123", "rm -f /tmp/x", "nft -f /etc/pgha/x.nft", "pgbackrest --stanza=s restore",
    "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 put /service/x v",
    "ETCDCTL_API=3 etcdctl member remove 8211f1d0f64f3269",
])
def test_commands_that_change_a_node(command):
    assert safety.command_changes(command)


@pytest.mark.parametrize("command", [
    "systemctl show etcd -p MainPID", "patronictl list -f json", "cat /etc/etcd/etcd.conf.yml",
    "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 put /pgha-test/k v",
    "journalctl -u patroni --no-pager", "pgbackrest --stanza=s info",
])
def test_commands_that_only_read(command):
    assert safety.command_changes(command) is None
