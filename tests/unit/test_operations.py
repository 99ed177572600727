"""Our pyinfra operations, tested the way pyinfra tests its own: data files in, commands out.

Each file ``tests/unit/operations/<module>.<operation>/<case>.json`` is one test case (id
``<module>.<operation>/<case>``), so adding a case is adding a file. ``<module>`` is a key
of OPERATION_MODULES below. A case holds:

``args``      the operation's arguments (JSON values; a tuple is written as a list).
``facts``     what the host answers, keyed by the fact class name (``"EtcdMembers"``):
              - a fact asked without arguments: its value as is
                (``"LxcContainers": {"pgha-etcd1": {"state": "RUNNING"}}``);
              - a fact asked with arguments: a mapping from pyinfra's own key of those
                arguments (pyinfra.api.util.get_kwargs_str: ``name=value`` sorted by name,
                joined by ", ", values as Python prints them) to the value, e.g.
                ``"EtcdMembers": {"endpoints=http://127.0.0.1:2379": [...]}``,
                ``"PostmasterParameters": {"names=['max_connections'], port=5432": [...]}``.
              A fact the case does not give fails the test (with the key it looked for).
``stage``     "prepare" (default: pyinfra plans the deploy) or "execute".
``host``      the host's name (default "testhost").
``commands``  what the operation yields, in order: a shell command as a string, a
              FunctionCommand as ``{"function": name, "args": [...]}`` (plus ``"kwargs"``
              when it has any), an upload as ``{"upload": path, "sha1": of the content}``.
              Required unless ``raises`` is given.
``noop``      the message given to host.noop (absent: host.noop must not be called).
``raises``    a substring of the message of the pyinfra OperationError the operation raises
              (``commands``, if given too, is what it yielded before).

The operation's generator (``op._inner``) is called directly, with the module-level
``host`` of the operation's module and of pgha.common.checks replaced by FakeHost: no
pyinfra state, no connection, no remote command.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from inspect import getfullargspec
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.state import StateStage
from pyinfra.api.util import get_kwargs_str

import pgha.common.checks
import pgha.common.operations
import pgha.common.snapshot
from pgha.components import COMPONENTS

CASES_DIR = Path(__file__).resolve().parent / "operations"

# <module> in a case directory's name -> the module that defines the operations: every
# registered component's (pgha.components), the shared ones and the lab's
OPERATION_MODULES = {
    **{c.name: c.operations for c in COMPONENTS if c.operations},
    "common": "pgha.common.operations",
    "lab": "pghalab.operations",
}

STAGES = {"prepare": StateStage.Prepare, "execute": StateStage.Execute}
CASE_KEYS = {"args", "facts", "stage", "host", "commands", "noop", "raises"}


class FakeHost:
    """The part of pyinfra's Host the operations use: facts from the case, noop recorded."""

    def __init__(self, name: str, facts: dict, stage: StateStage):
        self.name = name
        self.facts = facts
        self.state = SimpleNamespace(current_stage=stage)
        self.noops: list[str] = []

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def get_temp_filename(self, hash_key: str, **kwargs) -> str:
        return f"/tmp/pyinfra-{hashlib.sha1(hash_key.encode()).hexdigest()[:8]}"

    def get_fact(self, fact_cls, *args, **kwargs):
        assert not args, f"{fact_cls.__name__} asked with positional arguments {args}: use keywords"
        name = fact_cls.__name__
        if name not in self.facts:
            pytest.fail(f"unexpected fact lookup: {name}({get_kwargs_str(kwargs)}) is not in the case's facts")
        if not kwargs:
            return self.facts[name]
        # as pyinfra's own tests do: faking an argument the fact does not take would hide a bug
        real_args = getfullargspec(fact_cls.command).args
        for key in kwargs:
            assert key in real_args, f"{key} is not an argument of {name}.command"
        key = get_kwargs_str(kwargs)
        answers = self.facts[name]
        if not isinstance(answers, dict) or key not in answers:
            pytest.fail(f"unexpected fact lookup: {name} with {key!r}; the case has {list(answers or [])}")
        return answers[key]


def as_data(command) -> object:
    """A yielded command as the case writes it."""
    if isinstance(command, (str, StringCommand)):
        return str(command).strip()
    if isinstance(command, FileUploadCommand):
        data = command.src.getvalue() if hasattr(command.src, "getvalue") else Path(command.src).read_bytes()
        return {"upload": command.dest, "sha1": hashlib.sha1(data).hexdigest()}
    if isinstance(command, FunctionCommand):
        data = {"function": command.function.__name__, "args": list(command.args)}
        if command.kwargs:
            data["kwargs"] = dict(command.kwargs)
        # JSON round trip: tuples inside the arguments compare equal to the case's lists
        return json.loads(json.dumps(data))
    raise TypeError(f"the operation yielded {command!r}, neither a command, an upload nor a FunctionCommand")


def case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.*/*.json"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_every_operation_directory_names_a_known_operation():
    assert case_files(), f"no case under {CASES_DIR}"
    for directory in sorted(p for p in CASES_DIR.iterdir() if p.is_dir()):
        module_key, _, op_name = directory.name.partition(".")
        assert module_key in OPERATION_MODULES, f"{directory.name}: unknown module {module_key!r}"
        module = importlib.import_module(OPERATION_MODULES[module_key])
        assert hasattr(getattr(module, op_name, None), "_inner"), f"{directory.name}: not an operation"


@pytest.mark.parametrize("path", case_files(), ids=case_id)
def test_operation(path: Path, monkeypatch):
    case = json.loads(path.read_text(encoding="utf-8"))
    unknown = set(case) - CASE_KEYS
    assert not unknown, f"unknown keys in {path.name}: {sorted(unknown)}"
    assert "commands" in case or "raises" in case, f"{path.name} gives neither commands nor raises"

    module_key, _, op_name = path.parent.name.partition(".")
    module = importlib.import_module(OPERATION_MODULES[module_key])
    operation = getattr(module, op_name)

    fake = FakeHost(case.get("host", "testhost"), case.get("facts", {}), STAGES[case.get("stage", "prepare")])
    # every module an operation reads the host through (the snapshot answers nothing: the
    # case's facts are the host's)
    for each in (module, pgha.common.checks, pgha.common.operations, pgha.common.snapshot):
        monkeypatch.setattr(each, "host" if each is not pgha.common.snapshot else "current_host", fake)

    commands: list = []

    def run() -> None:
        for command in operation._inner(**case.get("args", {})):
            commands.append(as_data(command))

    if "raises" in case:
        with pytest.raises(OperationError) as error:
            run()
        assert case["raises"] in str(error.value)
        # what it yielded before failing, when the case says
        assert commands == case.get("commands", commands)
        return

    run()
    assert commands == case["commands"]
    assert fake.noops == ([case["noop"]] if "noop" in case else [])


class _Host:
    def __init__(self, name: str, address: str):
        self.name, self.data = name, {"ssh_hostname": address}

    def get_fact(self, fact_cls, **kwargs):
        raise AssertionError(f"{self.name} asked for {fact_cls.__name__}: pyinfra would try to connect")


def test_a_host_pyinfra_could_not_reach_stops_the_plan_of_another_with_its_name(monkeypatch):
    """A member down (a killed container): the deploy stops before any operation, naming it,
    instead of a greenlet's traceback from a connection retried in the middle of the plan."""
    from pyinfra.api.exceptions import DeployError

    from pgha.common import snapshot
    from pgha.patroni.facts import PatroniCluster

    down, planning = _Host("pg_patroni2", "10.0.3.201"), _Host("pg_patroni3", "10.0.3.68")
    monkeypatch.setattr(snapshot, "current_state", SimpleNamespace(failed_hosts={down}))
    monkeypatch.setattr(snapshot, "current_host", planning)
    with pytest.raises(DeployError) as info:
        snapshot.get(PatroniCluster, host=down, port=8008)
    assert str(info.value).startswith("pg_patroni3 needs the state of pg_patroni2 (10.0.3.201), which pyinfra "
                                      "could not connect to (above): nothing was changed")
