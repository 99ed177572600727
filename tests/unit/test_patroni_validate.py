"""The Patroni checker's command (pgha.patroni.deploy.validate_command): on a running member
only its own ports-in-use findings are set aside, in the wording of Patroni 3.0.2 and 4.0.7.

The command runs here under sh with stand-ins for runuser (it prints what
``patroni --validate-config`` printed and exits as it did) and systemctl (active or not)."""

from __future__ import annotations

import subprocess

import pytest

from pgha.patroni.deploy import validate_command

from .conftest import recorded

# Recorded from Patroni 4.0.7 on the trixie lab (a running member, its live file checked)
OWN_PORTS_4 = recorded("patroni-4.0.7-validate-running.txt").splitlines()
# Patroni 3.0.2 words them alike but quotes the reason (its exceptions' __str__ is a repr)
OWN_PORTS_3 = [
    "restapi.listen 0.0.0.0:8008 didn't pass validation: 'Port 8008 is already in use.'",
    "postgresql.listen 10.0.3.141,127.0.0.1:5434 didn't pass validation: 'Port 5434 is already in use.'",
]
# a real finding (Patroni 4.0.7, loop_wait: abc)
WRONG_VALUE = "bootstrap.dcs.loop_wait abc didn't pass validation: Wrong value"

CASES = {
    "4.0.7 running, own ports only": (OWN_PORTS_4, 1, True, 0, []),
    "3.0.2 running, own ports only": (OWN_PORTS_3, 1, True, 0, []),
    "4.0.7 running, a wrong value too": (OWN_PORTS_4 + [WRONG_VALUE], 1, True, 1, [WRONG_VALUE]),
    "3.0.2 running, a wrong value too": ([WRONG_VALUE] + OWN_PORTS_3, 1, True, 1, [WRONG_VALUE]),
    "4.0.7 stopped, the ports held by another program": (OWN_PORTS_4, 1, False, 1, OWN_PORTS_4),
    "3.0.2 stopped, the ports held by another program": (OWN_PORTS_3, 1, False, 1, OWN_PORTS_3),
    "valid, running": ([], 0, True, 0, []),
    "valid, stopped": ([], 0, False, 0, []),
    "another port in use, running": (
        ["restapi.listen 0.0.0.0:8008 didn't pass validation: Port 8008 is already in use, by nginx"],
        1, True, 1,
        ["restapi.listen 0.0.0.0:8008 didn't pass validation: Port 8008 is already in use, by nginx"],
    ),
}


def run(tmp_path, lines: list[str], patroni_rc: int, running: bool) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "out.txt").write_text("".join(f"{line}\n" for line in lines))
    (bin_dir / "runuser").write_text(f"#!/bin/sh\ncat {tmp_path / 'out.txt'}\nexit {patroni_rc}\n")
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\nexit {0 if running else 3}\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", validate_command("/etc/patroni/.pg-1.yml.candidate")],
                          env=env, capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize(("lines", "patroni_rc", "running", "rc", "reported"), CASES.values(), ids=CASES)
def test_validate_command(tmp_path, lines, patroni_rc, running, rc, reported):
    result = run(tmp_path, lines, patroni_rc, running)
    assert result.returncode == rc, result
    assert [line for line in result.stderr.splitlines() if line] == reported
