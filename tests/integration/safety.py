"""Which integration tests may change the cluster they run against, and the guard that holds
them to it.

Two runs share these tests: the read-only verification (`make verify`, `pgha verify`: safe on
a production cluster) and the drills (`make drills`, and the lab's `make test`), which fail
members over, restore, rebuild and change parameters. A test that changes the cluster must be
marked ``destructive``; the verification deselects those. Nothing relies on remembering it:

- at run time, every step that changes the cluster (a deploy, a command that stops, restarts,
  edits or removes something on a node, a drill, a CLI command that acts) asks ``require``,
  which fails the test when it is not marked ``destructive``;
- tests/unit/test_destructive_markers.py reads every integration test and fails when one
  reaches such a step without the marker.

Harmless probes stay allowed in the verification: reads, a test key (``TEST_KEY_NAME``)
written and deleted again, ``txid_current()`` through 5432, rows in the test schema.
"""

from __future__ import annotations

import re

MARKER = "destructive"
# the only etcd keys a read-only test may write (and must delete again): under the test
# prefix, or named pgha-test-... (inside Patroni's namespace, which Patroni ignores)
TEST_KEY_PREFIX = "/pgha-test/"
TEST_KEY_NAME = "pgha-test"

# A shell command on a node that changes it. Reads (systemctl show/is-active, patronictl
# list/show-config, cat, grep, ss, journalctl...) do not match.
_MUTATING = [
    r"\bsystemctl\s+(?:--\S+\s+)*(stop|start|restart|reload|kill|disable|enable|mask|unmask|daemon-reload)\b",
    r"\bpatronictl\b.*\b(edit-config|switchover|failover|restart|reinit|pause|resume|remove|reload)\b",
    r"\bpg_ctl(cluster)?\b.*\b(stop|start|restart|promote|kill)\b",
    r"(^|[;&|]\s*|\bsudo\s+)(kill|pkill|killall)\s",
    r"(^|[;&|]\s*)rm\s+(?!(-f\s+)?(/tmp/pgha-test[^\s;&|]*\s*)+($|[;&|]))",
    r"\bnft\s+(-f|add|delete|flush|insert|replace)\b",
    r"\bip\s+(link|addr|route)\s+(add|del|set|flush)\b",
    r"\biptables\b",
    r"\bpgbackrest\s+(?:--\S+\s+)*(restore|backup|expire|stanza-create|stanza-delete|stanza-upgrade|stop)\b",
    r"\bapt(-get)?\s+(install|remove|purge|upgrade)\b",
    r"\blxc-(stop|start|destroy|copy|create|attach|freeze|unfreeze)\b",
    r"\betcdctl\b.*\b(member\s+(add|remove|update)|user\s+(add|delete|passwd|grant-role|revoke-role)|"
    r"role\s+(add|delete|grant-permission|revoke-permission)|auth\s+(enable|disable)|defrag|snapshot\s+restore)\b",
]
_MUTATING_RE = re.compile("|".join(f"(?:{p})" for p in _MUTATING))
_ETCD_WRITE = re.compile(r"\betcdctl\b.*\s(put|del)\s+['\"]?(\S+?)['\"]?(\s|$)")

# the pgha commands that act on the cluster (the others only read)
ACTING_COMMANDS = {"switchover", "failover", "backup", "restore", "reinit", "rotate", "restart",
                   "pause", "resume", "upgrade"}
# pyinfra sub-commands that only read
READING_PYINFRA = {"fact"}


def command_changes(command: str) -> str | None:
    """Why a shell command run on a node changes it (None: it only reads or probes)."""
    match = _MUTATING_RE.search(command)
    if match:
        return f"runs {match.group(0).strip()!r}"
    write = _ETCD_WRITE.search(command)
    if write and TEST_KEY_NAME not in write.group(2):
        return f"writes etcd key {write.group(2)!r}, not a test key ({TEST_KEY_NAME}...)"
    return None


def pyinfra_changes(deploy: str, extra: tuple = ()) -> str | None:
    """Why a pyinfra run changes the cluster: any deploy file (a second run that should change
    nothing is still a deploy), or `exec`."""
    name = str(deploy)
    if name in READING_PYINFRA:
        return None
    if name == "exec":
        return command_changes(" ".join(map(str, extra))) or None
    return f"runs the deploy {name}"


def pgha_changes(args) -> str | None:
    command = next((str(a) for a in args if not str(a).startswith("-")), "")
    return f"runs `pgha {command}`" if command in ACTING_COMMANDS else None


class Guard:
    """The test being run (set by conftest for each test) and its markers."""

    def __init__(self):
        self.item = None

    def require(self, what: str | None) -> None:
        """Fail the running test if ``what`` (a reason it changes the cluster) is not None and
        the test is not marked destructive."""
        if what is None or self.item is None:
            return
        if self.item.get_closest_marker(MARKER) is None:
            import pytest

            pytest.fail(
                f"{self.item.nodeid} {what}, which changes the cluster, but is not marked "
                f"@pytest.mark.{MARKER}: the read-only verification would run it",
                pytrace=False,
            )


GUARD = Guard()


class GuardedHost:
    """A testinfra host whose commands go through the guard first."""

    def __init__(self, host):
        self._host = host

    def run(self, command: str, *args, **kwargs):
        GUARD.require(command_changes(command % args if args else command))
        return self._host.run(command, *args, **kwargs)

    def check_output(self, command: str, *args, **kwargs):
        GUARD.require(command_changes(command % args if args else command))
        return self._host.check_output(command, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._host, name)
