"""pgha.common.op_order gives pyinfra's own operation order, line for line, faster."""

from __future__ import annotations

from types import SimpleNamespace

import pyinfra
import pytest

from pgha.common import op_order


def _nested(depth: int, state, results: list) -> None:
    """A call stack of some depth, ending where an operation would be called: both
    functions asked from the same frame and line."""
    if depth:
        _nested(depth - 1, state, results)
        return
    results.append((op_order.ORIGINAL(state), op_order.get_operation_order_from_stack(state)))


@pytest.mark.parametrize("cli", [True, False])
@pytest.mark.parametrize("deploy_file", [None, __file__])
@pytest.mark.parametrize("depth", [0, 3])
def test_the_same_line_numbers_as_pyinfra(monkeypatch, cli, deploy_file, depth):
    monkeypatch.setattr(pyinfra, "is_cli", cli)
    state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
    results: list = []
    _nested(depth, state, results)
    (theirs, ours), = results
    assert ours == theirs
    assert len(ours) > (depth + 2 if deploy_file is None else 1)


def test_installed_only_over_the_function_it_was_written_against(monkeypatch):
    import sys

    import pyinfra.api.operation  # noqa: F401

    operation = sys.modules["pyinfra.api.operation"]

    monkeypatch.setattr(operation, "get_operation_order_from_stack", op_order.ORIGINAL)
    assert op_order.install()
    assert operation.get_operation_order_from_stack is op_order.get_operation_order_from_stack
    monkeypatch.setattr(operation, "get_operation_order_from_stack", op_order.ORIGINAL)
    monkeypatch.setattr(op_order, "ORIGINAL_SHA256", "another pyinfra")
    assert not op_order.install()
    assert operation.get_operation_order_from_stack is op_order.ORIGINAL
