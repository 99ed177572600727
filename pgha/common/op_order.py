"""pyinfra's operation order, found without reading source files.

pyinfra orders a CLI deploy's operations by the line numbers of the call stack at each
operation call (pyinfra.api.util.get_operation_order_from_stack). It gets them with
inspect.stack(), which reads every frame's source file for its context lines: about 5 ms an
operation and a host, a third of a no-op converge. ``get_operation_order_from_stack`` here
returns the very same list from the frames themselves (their code's file name and current
line); ``install`` puts it in place of pyinfra's only when pyinfra's function is the one it
was written against (tests/unit/test_op_order.py compares both on real stacks)."""

from __future__ import annotations

import hashlib
import inspect
import sys
from types import FrameType

import pyinfra
import pyinfra.api.operation
from pyinfra.api import util as pyinfra_util

# the module (pyinfra.api's `operation` is the decorator of the same name)
pyinfra_operation = sys.modules["pyinfra.api.operation"]

# pyinfra 3.x's function, as this one reproduces it (a newer pyinfra's: not replaced)
ORIGINAL_SHA256 = "f4807f61585570e091fd453c7552d9e2b49329555f07f395a8e8f1d2a398a0b2"
ORIGINAL = pyinfra_util.get_operation_order_from_stack


def source_digest(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def get_operation_order_from_stack(state) -> list[int]:
    frames = []
    frame: FrameType | None = sys._getframe(1)  # from the caller: this frame is none of pyinfra's own stack
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    start = 0
    if state.current_deploy_filename:  # from the deploy file's first frame (the last frame if none)
        start = next((i for i, item in enumerate(frames) if item.f_code.co_filename == state.current_deploy_filename),
                     len(frames) - 1)
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    line_numbers += [item.f_lineno for item in frames[start:]
                     if not item.f_code.co_filename.startswith(pyinfra_util.PYINFRA_INSTALL_DIR)]
    return line_numbers


def install() -> bool:
    """Put it in place of pyinfra's (once); False when pyinfra's is not the known one."""
    if getattr(pyinfra_operation, "get_operation_order_from_stack", None) is get_operation_order_from_stack:
        return True
    if source_digest(ORIGINAL) != ORIGINAL_SHA256:
        return False
    vars(pyinfra_operation)["get_operation_order_from_stack"] = get_operation_order_from_stack
    return True
