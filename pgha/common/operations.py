"""Operations every component uses: a file, a directory, a link and packages in place, a
unit running, a barrier between roles, the node's Debian release.

Each reads the host's snapshot (pgha.common.snapshot) while it holds, else pyinfra's own
facts, and yields commands only when something differs. A file's new content is uploaded
beside it as a candidate, checked by the daemon's own checker when one is given, and only
then moved over the live file: a rejected file never goes live.
"""

from __future__ import annotations

import hashlib
import shlex
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Link, Sha1File
from pyinfra.facts.server import LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from pgha.common import snapshot

POLICY_RC_D = "/usr/sbin/policy-rc.d"


def _quote(*values: str) -> str:
    return " ".join(shlex.quote(str(v)) for v in values)


def live_file(path: str) -> dict | None:
    """``{"type", "user", "group", "mode", "sha1"}`` of ``path`` on the host, or None."""
    taken = snapshot.of(host)
    if taken is not None and taken.covers(path):
        return taken.files.get(path)
    found = host.get_fact(File, path=path)
    if not found:
        directory = host.get_fact(Directory, path=path)
        return {"type": "directory", **directory} if directory else None
    return {"type": "file", **found, "sha1": host.get_fact(Sha1File, path=path)}


def file_sha1(path: str) -> str | None:
    """The SHA-1 of ``path`` on the host (None: no such file)."""
    taken = snapshot.of(host)
    if taken is not None and taken.covers(path):
        return (taken.files.get(path) or {}).get("sha1")
    return host.get_fact(Sha1File, path=path)


def _owned(found: dict | None, user: str, group: str, mode: str) -> bool:
    if not found:
        return False
    return (found.get("user"), found.get("group"), str(found.get("mode"))) == (user, group, str(int(mode)))


def candidate_of(path: str) -> str:
    directory, name = path.rsplit("/", 1)
    return f"{directory}/.{name}.candidate"


@operation()
def file_in_place(path: str, content: str | bytes, user: str = "root", group: str = "root", mode: str = "644",
                  validate: str | None = None):
    """``path`` holds ``content`` with this owner and mode. ``validate``: a command with
    ``{candidate}`` where the candidate's path goes, which fails on a bad file."""
    data = content.encode() if isinstance(content, str) else content
    found = live_file(path)
    if found and found.get("sha1") == hashlib.sha1(data).hexdigest():
        if _owned(found, user, group, mode):
            host.noop(f"{path} is up to date")
            return
        yield f"chown {_quote(f'{user}:{group}', path)} && chmod {_quote(mode, path)}"
        return
    candidate = candidate_of(path)
    if found is None:  # perhaps its directory too (as pyinfra's files.put creates it)
        yield f"mkdir -p {_quote(path.rsplit('/', 1)[0] or '/')}"
    yield FileUploadCommand(BytesIO(data), candidate, remote_temp_filename=host.get_temp_filename(candidate))
    if validate:
        yield validate.replace("{candidate}", shlex.quote(candidate))
    yield f"chown {_quote(f'{user}:{group}', candidate)} && chmod {_quote(mode, candidate)} && mv -f {_quote(candidate, path)}"


@operation()
def directory_in_place(path: str, user: str = "root", group: str = "root", mode: str = "755"):
    found = live_file(path)
    if found and found.get("type") == "directory" and _owned(found, user, group, mode):
        host.noop(f"{path} is a directory of {user}:{group} {mode}")
        return
    if found and found.get("type") != "directory":
        raise OperationError(f"{path} exists on {host.name} and is not a directory")
    yield f"mkdir -p {_quote(path)} && chown {_quote(f'{user}:{group}', path)} && chmod {_quote(mode, path)}"


@operation()
def absent(path: str):
    """Nothing at ``path`` (a file, a link, or a directory and all it holds)."""
    found = live_file(path)
    if found is None:
        host.noop(f"{path} does not exist")
        return
    yield f"rm -{'r' if found.get('type') == 'directory' else ''}f {_quote(path)}"


@operation()
def link_in_place(path: str, target: str):
    taken = snapshot.of(host)
    found = taken.files.get(path) if taken is not None and taken.covers(path) else None
    if taken is None or not taken.covers(path):
        live = host.get_fact(Link, path=path)
        found = {"type": "link", "link_target": live.get("link_target")} if live else None
    if found and found.get("type") == "link" and found.get("link_target") == target:
        host.noop(f"{path} points at {target}")
        return
    yield f"ln -sfn {_quote(target, path)}"


def installed_packages(packages: list[str]) -> dict:
    """The installed versions of ``packages`` (and maybe others): the snapshot's when it
    asked them all."""
    taken = snapshot.of(host)
    if taken is not None and all(p.split("=")[0] in taken.asked_packages for p in packages):
        return taken.packages
    return host.get_fact(DebPackages)


def node_release() -> str | None:
    taken = snapshot.of(host)
    if taken is not None and taken.release:
        return taken.release
    return ((host.get_fact(LinuxDistribution) or {}).get("release_meta") or {}).get("VERSION_CODENAME")


@operation()
def packages_installed(packages: list[str], release: str):
    """Debian's ``packages`` on a node of ``release`` (debian_release: the deploy never moves a
    node from one release to another), installed without their maintainer scripts starting a
    service (Debian starts etcd, a `main` PostgreSQL cluster and a default HAProxy on
    install): policy-rc.d forbids it for the time of the install."""
    found = node_release()
    if found != release:
        raise OperationError(
            f"{host.name} runs Debian {found or '(unknown release)'}, but debian_release = "
            f"{release!r}: expected the release the nodes run (this deploy does not upgrade "
            "a node from one release to another)"
        )
    installed = installed_packages(packages)
    missing = [p for p in packages if p.split("=")[0] not in installed]
    if not missing:
        host.noop(f"Debian {release} with {', '.join(packages)}")
        return
    yield install_command(packages)


def install_command(packages: list[str], only_upgrade: bool = False) -> str:
    """The one apt-get line of the deploy and of pgha upgrade: ``packages`` installed (or,
    ``only_upgrade``, updated, the node's package lists being fresh) while policy-rc.d forbids
    their maintainer scripts to start, stop or restart a service; the caller restarts what
    it must, when it must. A configuration file pgha changed is kept (--force-confold)."""
    forbid = f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}"
    apt = "DEBIAN_FRONTEND=noninteractive apt-get"
    if only_upgrade:
        install = (f"{apt} install -y -q --only-upgrade -o Dpkg::Options::=--force-confold "
                   f"-o Dpkg::Options::=--force-confdef {_quote(*packages)}")
    else:
        install = f"{apt} update -q && {apt} install -y -q --no-install-recommends {_quote(*packages)}"
    return f"{forbid} && {{ {install}; status=$?; rm -f {POLICY_RC_D}; exit $status; }}"


def unit_state(unit: str) -> tuple[bool, bool]:
    """(running, enabled) of a systemd unit (``patroni.service``), from the snapshot while it holds."""
    taken = snapshot.of(host)
    if taken is not None and unit in taken.units:
        state = taken.units[unit]
        return state.get("ActiveState") == "active", state.get("UnitFileState") == "enabled"
    return bool(host.get_fact(SystemdStatus).get(unit)), bool(host.get_fact(SystemdEnabled).get(unit))


@operation()
def unit_running(unit: str, enabled: bool = True):
    """The systemd ``unit`` (with its suffix) is running, and enabled at boot."""
    running, is_enabled = unit_state(unit)
    if running and (is_enabled or not enabled):
        host.noop(f"{unit} is running{' and enabled' if enabled else ''}")
        return
    if enabled and not is_enabled:
        yield f"systemctl enable {_quote(unit)}"
    if not running:
        yield f"systemctl start {_quote(unit)}"


@operation()
def barrier(what: str):
    """Changes nothing. Registered on every host between two roles: pyinfra orders
    operations host by host, so a step every host shares makes the next role wait for the
    previous one everywhere (e.g. Patroni starts only once etcd is healthy)."""
    host.noop(what)
    yield from ()
