"""Deploy steps every component uses: packages installed without starting their services,
and a configuration rendered from a template and checked by its daemon before it goes live."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Callable

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import apt, files, systemd

from pgha import SCRIPTS_DIR
from pgha.common.operations import release_is, validated_copy

POLICY_RC_D = "/usr/sbin/policy-rc.d"


def scripts_directory(role: str) -> None:
    """The directory of pgha's own scripts on a node (pgha.SCRIPTS_DIR)."""
    files.directory(name=f"{role}: {SCRIPTS_DIR}", path=SCRIPTS_DIR, mode="755")


def install_packages_without_starting(role: str, packages: list[str], release: str) -> None:
    """Install Debian packages without letting their maintainer scripts start services.

    Debian starts etcd (single node), PostgreSQL (cluster main on 5432) and HAProxy (default
    config) on install; policy-rc.d forbids it for the time of the install. Nothing runs at
    all once every package is present, so a second deploy reports no change.
    """
    release_is(name=f"{role}: the node runs Debian {release} (debian_release)", expected=release)
    installed = host.get_fact(DebPackages)
    missing = [p for p in packages if p.split("=")[0] not in installed]
    if not missing:
        apt.packages(name=f"{role}: packages are installed", packages=packages)
        return
    files.put(
        name=f"{role}: forbid services from starting during the install",
        src=StringIO("#!/bin/sh\nexit 101\n"),
        dest=POLICY_RC_D,
        mode="755",
    )
    apt.packages(
        name=f"{role}: install {' '.join(missing)}",
        packages=packages,
        no_recommends=True,
        update=True,
    )
    files.file(name=f"{role}: allow services to start again", path=POLICY_RC_D, present=False)


def validated_template(
    what: str,
    template: Path,
    live: str,
    validate: Callable[[str], str],
    user: str,
    group: str,
    mode: str,
    config: dict,
):
    """Render ``template`` (a component's templates/ file, given its values as ``config``)
    into a candidate next to ``live``; only once ``validate(candidate)``
    (the daemon's own checker) accepts it does it replace ``live``. Returns the operation
    that installs it: its did_change() says whether the live file changed."""
    directory, name = live.rsplit("/", 1)
    candidate = f"{directory}/.{name}.candidate"
    files.template(
        name=f"{what}: render the configuration (candidate)",
        src=str(template),
        dest=candidate,
        user=user,
        group=group,
        mode=mode,
        config=config,
    )
    return validated_copy(
        name=f"{what}: check the candidate with the daemon's checker and install it",
        candidate=candidate,
        live=live,
        validate=validate(candidate),
        user=user,
        group=group,
        mode=mode,
    )


def running_and_refreshed(what: str, service: str, changed: Callable[[], bool],
                          refresh: str = "reloaded", **arguments) -> None:
    """``service`` enabled and running; when it was running before this deploy and
    ``changed()`` (its configuration changed), ``refresh`` ("reloaded" or "restarted") once.
    ``arguments`` go to the refresh (e.g. ``_serial=True``)."""
    was_running = host.get_fact(SystemdStatus).get(f"{service}.service", False)
    systemd.service(name=f"{what}: enabled and running", service=service, running=True, enabled=True)
    systemd.service(
        name=f"{what}: {refresh.removesuffix('ed')} (its configuration changed)",
        service=service,
        _if=lambda: was_running and changed(),
        **{refresh: True},
        **arguments,
    )
