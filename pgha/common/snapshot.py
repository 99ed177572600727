"""What a converge needs to know of a host, asked in one round trip: the owner, mode and
checksum of every file and directory the deploy manages there, its units' states, its
packages, its Debian release, and the facts its operations ask (etcd's members and logins,
Patroni's REST API, the roles' logins, ...), those run side by side on the host.

Without it a no-op deploy asks pyinfra about two facts per operation, one SSH round trip
each (pyinfra 3 caches no fact). With it, an operation that has nothing to do reads what it
needs here and decides without a round trip.

What each host's snapshot holds is planned from the registry (pgha.rollout primes it: each
component's ``observe``). The snapshot is taken once, the first time a deploy asks it, and it
holds until the first operation of the run changes something anywhere: from then on every
lookup asks the host again (pyinfra's own facts), as before. So a no-op converge is read in
one round trip per host, and a converge that changes things is exactly as careful as ever.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.lock
from pyinfra import host as current_host
from pyinfra import logger
from pyinfra import state as current_state
from pyinfra.api import FactBase
from pyinfra.api.exceptions import DeployError
from pyinfra.api.state import BaseStateCallback
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host

MISSING = "__pgha_missing_command__"


@dataclass(frozen=True)
class Plan:
    """What one host's snapshot reads: ``paths`` (files, and directories with their direct
    entries), ``units`` (systemd units), ``facts`` ((fact class, its keyword arguments))."""

    paths: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # Debian packages whose installed versions it reads
    facts: tuple[tuple[type, str], ...] = ()  # (fact class, its keyword arguments as JSON)

    def __add__(self, other: Plan) -> Plan:
        def merged(a, b):
            return tuple(dict.fromkeys(a + b))

        return Plan(merged(self.paths, other.paths), merged(self.units, other.units),
                    merged(self.packages, other.packages), merged(self.facts, other.facts))


def fact(cls: type, **kwargs) -> tuple[type, str]:
    """A fact for Plan.facts: its class and its arguments, as an operation asks it."""
    return cls, json.dumps(kwargs, sort_keys=True)


def _key(cls: type, kwargs: dict) -> str:
    return f"{cls.__module__}.{cls.__name__}({get_kwargs_str(kwargs)})"


def _fact_command(cls: type, kwargs: dict) -> str:
    instance = cls()
    command = str(instance.command(**kwargs))
    required = instance.requires_command(**kwargs) if hasattr(instance, "requires_command") else None
    if required:
        command = f"if command -v {shlex.quote(str(required))} >/dev/null 2>&1; then {command}; else echo {MISSING}; fi"
    return command


class HostSnapshot(FactBase):
    """The host's state for a converge, in sections (see the module's docstring)."""

    def command(self, paths: list[str], units: list[str], packages: list[str], facts: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        parts = ["echo '=== files'"]
        if paths:
            parts.append(f"find {quoted} -maxdepth 1 \\( -type f -o -type d -o -type l \\) "
                         "-printf '%p|%y|%u|%g|%m|%l\\n' 2>/dev/null")
            parts += ["echo '=== sha1'", f"find {quoted} -maxdepth 1 -type f -print0 2>/dev/null | xargs -0r sha1sum"]
        if units:
            parts += ["echo '=== units'", "systemctl show -p Id -p LoadState -p ActiveState -p UnitFileState "
                      + " ".join(shlex.quote(u) for u in units) + " 2>/dev/null"]
        parts += ["echo '=== packages'", "dpkg-query -W -f='${Package}|${Version}|${db:Status-Abbrev}\\n' "
                  + " ".join(shlex.quote(p.split("=")[0]) for p in packages) + " 2>/dev/null",
                  "echo '=== os'", "grep -E '^VERSION_CODENAME=' /etc/os-release 2>/dev/null"]
        if facts:
            # the facts run side by side, each into its own file, then are printed in order
            runs = [f"{{ ( {command} ) > \"$d/{i}\" 2>/dev/null; echo $? > \"$d/{i}.rc\"; }} &"
                    for i, command in enumerate(facts)]
            parts += ['d=$(mktemp -d)', *runs, "wait",
                      f"for i in $(seq 0 {len(facts) - 1}); do echo \"=== fact $i $(cat \"$d/$i.rc\")\"; "
                      # a last line without its newline would swallow the next header
                      "cat \"$d/$i\"; [ -n \"$(tail -c1 \"$d/$i\")\" ] && echo; done", 'rm -rf "$d"']
        return "\n".join(parts) + "\ntrue"

    def process(self, output):
        sections: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line.startswith("=== "):
                current = line[4:]
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
        return sections


def _files(sections: dict[str, list[str]]) -> dict[str, dict]:
    found = {}
    for line in sections.get("files", []):
        path, kind, user, group, mode, target = (line.split("|") + [""] * 6)[:6]
        found[path] = {"type": {"f": "file", "d": "directory", "l": "link"}.get(kind, kind), "user": user,
                       "group": group, "mode": int(mode) if mode.isdigit() else None, "link_target": target or None}
    for line in sections.get("sha1", []):
        checksum, _, path = line.partition("  ")
        if path in found:
            found[path]["sha1"] = checksum
    return found


def _units(sections: dict[str, list[str]]) -> dict[str, dict]:
    units: dict[str, dict] = {}
    current: dict[str, str] = {}
    for line in sections.get("units", []) + [""]:
        if not line.strip():
            if current.get("Id"):
                units[current["Id"]] = current
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    return units


def _packages(sections: dict[str, list[str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in sections.get("packages", []):
        name, version, status = (line.split("|") + ["", ""])[:3]
        if status.startswith("ii"):
            found.setdefault(name.split(":")[0], []).append(version)
    return found


@dataclass
class Snapshot:
    """One host's parsed snapshot."""

    files: dict[str, dict] = field(default_factory=dict)
    units: dict[str, dict] = field(default_factory=dict)
    packages: dict[str, list[str]] = field(default_factory=dict)
    release: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # _key -> processed value
    paths: tuple[str, ...] = ()
    asked_packages: tuple[str, ...] = ()

    def covers(self, path: str) -> bool:
        """Whether the snapshot read ``path`` (so that its absence means it does not exist)."""
        parent = path.rsplit("/", 1)[0] or "/"
        return path in self.paths or parent in self.paths


def _parse(plan: Plan, sections: dict[str, list[str]]) -> Snapshot:
    snapshot = Snapshot(files=_files(sections), units=_units(sections), packages=_packages(sections),
                        paths=plan.paths, asked_packages=tuple(p.split("=")[0] for p in plan.packages))
    for line in sections.get("os", []):
        snapshot.release = line.partition("=")[2].strip().strip('"') or None
    for index, (cls, arguments) in enumerate(plan.facts):
        header = next((h for h in sections if h.startswith(f"fact {index} ")), None)
        if header is None or header.split()[-1] != "0":
            continue  # it failed: asked again live, where pyinfra reports the failure
        lines = sections[header]
        if lines == [MISSING]:
            continue
        instance = cls()
        snapshot.facts[_key(cls, json.loads(arguments))] = instance.process(lines) if lines else instance.default()
    return snapshot


class _Run:
    """The snapshots of this pyinfra run, and whether they still hold."""

    def __init__(self):
        self.plans: dict[str, Plan] = {}
        self.taken: dict[str, Snapshot] = {}
        self.locks: dict[str, gevent.lock.Semaphore] = {}
        self.stale = False
        self.watching = False
        self.ready: gevent.event.Event | None = None
        self.live_lookups: list[str] = []  # what a no-op run still asked live (the benchmark shows it)


RUN = _Run()


class _Watcher(BaseStateCallback):
    """The first operation that runs a command anywhere ends the snapshots."""

    @staticmethod
    def operation_end(state, op_hash):
        for ops in state.ops.values():
            data = ops.get(op_hash)
            if data is not None and data.operation_meta.is_complete() and data.operation_meta.executed:
                RUN.stale = True
                return


def prime(state, plans: dict[str, Plan]) -> None:
    """The plan of each host (by inventory name), before any lookup; then every snapshot is
    taken at once, one round trip per host side by side (a deploy file runs once per host:
    the first call does it, the others find them taken)."""
    for name, plan in plans.items():
        RUN.plans.setdefault(name, plan)
    if not RUN.watching:
        state.add_callback_handler(_Watcher())
        RUN.watching = True
    if RUN.ready is None:
        RUN.ready = gevent.event.Event()
        # a host pyinfra could not connect to is out of the run (it said so): no snapshot
        hosts = [h for h in state.inventory if h.name in RUN.plans and h not in state.failed_hosts]
        started = time.monotonic()
        gevent.joinall([gevent.spawn(_take_on, h) for h in hosts], raise_error=True)
        logger.debug(f"pgha: {len(hosts)} host snapshots taken in {time.monotonic() - started:.2f}s")
        RUN.ready.set()
    RUN.ready.wait()


def _take_on(target) -> None:
    with ctx_host.use(target):
        of(target)


def of(host) -> Snapshot | None:
    """``host``'s snapshot (taken now if not yet), or None once it no longer holds."""
    if RUN.stale or host.name not in RUN.plans:
        return None
    lock = RUN.locks.setdefault(host.name, gevent.lock.Semaphore())
    with lock:
        if host.name not in RUN.taken:
            plan = RUN.plans[host.name]
            sections = host.get_fact(HostSnapshot, paths=list(plan.paths), units=list(plan.units),
                                     packages=list(plan.packages),
                                     facts=[_fact_command(cls, json.loads(args)) for cls, args in plan.facts])
            RUN.taken[host.name] = _parse(plan, sections or {})
    return None if RUN.stale else RUN.taken[host.name]


def get(cls: type, host=None, **kwargs) -> Any:
    """``host.get_fact(cls, **kwargs)``, answered from the snapshot while it holds. Another
    host that pyinfra could not connect to stops the run before any operation: its state is
    what this host's plan depends on."""
    target = host or current_host
    if host is not None and host in current_state.failed_hosts:
        raise DeployError(
            f"{current_host.name} needs the state of {host.name} ({host.data.get('ssh_hostname', host.name)}), "
            "which pyinfra could not connect to (above): nothing was changed. Start it again and run the deploy "
            "again, or take it out of the inventory")
    snapshot = of(target)
    key = _key(cls, kwargs)
    if snapshot is not None and key in snapshot.facts:
        return snapshot.facts[key]
    if snapshot is not None:
        RUN.live_lookups.append(key)
    return target.get_fact(cls, **kwargs)


def first_then_live():
    """A fact lookup for a check that polls: the snapshot's answer the first time a fact is
    asked (a converged cluster passes at once), the host's own on every later try."""
    asked: set[str] = set()

    def ask(cls: type, **kwargs):
        key = _key(cls, kwargs)
        if key in asked:
            return current_host.get_fact(cls, **kwargs)
        asked.add(key)
        return get(cls, **kwargs)

    return ask
