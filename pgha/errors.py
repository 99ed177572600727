"""The exceptions pgha raises, in one place (as pyinfra keeps api/exceptions.py).

ConfigError derives from pyinfra's own error type so that pyinfra prints its message
without a traceback.
"""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class ConfigError(PyinfraError):
    """One or more settings are invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid pgha configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class EtcdPlanError(Exception):
    """The inventory asks etcd for something it cannot do in one run."""


class DrillError(Exception):
    """An HA drill could not run or its cluster did not behave."""


class SwitchoverError(Exception):
    """Patroni refused a switchover or no new leader accepted writes in time."""


class WaitTimeout(Exception):
    """A condition did not hold before its deadline; the message says what was last seen."""


class RemoteError(Exception):
    """A command on a node (pgha.remote) failed; the message names the node and says why."""


class BackupError(Exception):
    """A backup, a restore or a rebuild cannot go ahead, or failed: the message says why."""


class MaintenanceError(Exception):
    """A maintenance command (pause, resume, failover, restart, history) was refused or did
    not finish: the message says why and what was seen."""
