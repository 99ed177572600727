"""pyinfra as an operator runs it, from the project root: its exit status and its output
(stdout and stderr in the order they came, without colour codes). The tests' helpers, the
benchmarks and the soak's deploy-during-a-fault all run it through here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run(command: list[str], timeout: float) -> tuple[int, str]:
    """``command`` (pyinfra and its arguments) in the project root: (exit status, output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # keep stdout and stderr in order
    env.pop("PYINFRA_YES", None)
    proc = subprocess.run(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    return proc.returncode, ANSI.sub("", proc.stdout)


def deploy(inventory: str | os.PathLike, deploy_file: str, *args: str, timeout: float = 1800) -> tuple[int, str]:
    """`pyinfra -y INVENTORY DEPLOY_FILE ARGS...`: (exit status, output)."""
    return run([str(PYINFRA), "-y", str(inventory), deploy_file, *args], timeout)
