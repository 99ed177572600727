"""Deploy steps every component uses: packages installed without starting their services, a
file (rendered on the control machine by pgha.rendering) put in place, checked by its daemon
first when it has a checker, a service running and refreshed only when its files changed."""

from __future__ import annotations

from collections.abc import Callable

from pyinfra.operations import systemd

from pgha import SCRIPTS_DIR
from pgha.common.operations import directory_in_place, file_in_place, packages_installed, unit_running, unit_state


def scripts_directory(role: str) -> None:
    """The directory of pgha's own scripts on a node (pgha.SCRIPTS_DIR)."""
    directory_in_place(name=f"{role}: {SCRIPTS_DIR}", path=SCRIPTS_DIR, mode="755")


def install_packages_without_starting(role: str, packages: list[str], release: str) -> None:
    packages_installed(name=f"{role}: Debian {release} (debian_release) with {' '.join(packages)}",
                       packages=packages, release=release)


def checked_file(what: str, path: str, content: str, validate: Callable[[str], str] | None,
                 user: str, group: str, mode: str):
    """``content`` at ``path``; with ``validate`` (the daemon's checker: the command for a
    candidate's path), checked on a candidate before it replaces the live file. Returns the
    operation: its did_change() says whether the live file changed."""
    return file_in_place(
        name=f"{what}: {path}" + (" (checked by its daemon before it goes live)" if validate else ""),
        path=path,
        content=content,
        validate=validate("{candidate}") if validate else None,
        user=user,
        group=group,
        mode=mode,
    )


def running_and_refreshed(what: str, service: str, changed: Callable[[], bool],
                          refresh: str = "reloaded", **arguments) -> None:
    """``service`` enabled and running; when it was running before this deploy and
    ``changed()`` (its configuration changed), ``refresh`` ("reloaded" or "restarted") once.
    ``arguments`` go to the refresh (e.g. ``_serial=True``)."""
    was_running, _ = unit_state(f"{service}.service")
    unit_running(name=f"{what}: enabled and running", unit=f"{service}.service")
    systemd.service(
        name=f"{what}: {refresh.removesuffix('ed')} (its configuration changed)",
        service=service,
        _if=lambda: was_running and changed(),
        reloaded=refresh == "reloaded",
        restarted=refresh == "restarted",
        **arguments,
    )
