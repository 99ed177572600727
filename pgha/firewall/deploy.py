"""A role's firewall table: rendered, checked with `nft -c` before it goes live, applied by
a systemd unit at boot (before the role's service), reloaded when it changes."""

from __future__ import annotations

from pyinfra.operations import systemd

from pgha.common.deploy import checked_file, running_and_refreshed
from pgha.common.operations import directory_in_place
from pgha.firewall import values
from pgha.rendering import render


def firewall(role: str, config: dict, before: str) -> None:
    """The table of ``role`` (values.table(...)) on the current host."""
    directory_in_place(name=f"{role}: {values.DIRECTORY}", path=values.DIRECTORY, mode="755")
    rules = checked_file(f"{role} firewall", values.rules_file(role), render(values.TEMPLATES / "table.nft.j2", config),
                         validate=lambda candidate: f"nft -c -f {candidate}", user="root", group="root", mode="644")
    unit = checked_file(f"{role} firewall unit", values.unit_file(role),
                        render(values.TEMPLATES / "table.service.j2", values.unit(role, before)),
                        validate=None, user="root", group="root", mode="644")
    systemd.daemon_reload(name=f"{role}: systemd reload (firewall unit)", _if=unit.did_change)
    running_and_refreshed(f"{role}: firewall", values.unit_name(role), rules.did_change)
