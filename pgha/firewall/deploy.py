"""A role's firewall table: rendered, checked with `nft -c` before it goes live, applied by
a systemd unit at boot (before the role's service), reloaded when it changes."""

from __future__ import annotations

from pyinfra.operations import files, systemd

from pgha.common.deploy import running_and_refreshed, validated_template
from pgha.firewall import values


def firewall(role: str, config: dict, before: str) -> None:
    """The table of ``role`` (values.table(...)) on the current host."""
    files.directory(name=f"{role}: /etc/pgha", path="/etc/pgha", mode="755")
    rules = validated_template(
        f"{role} firewall",
        values.TEMPLATES / "table.nft.j2",
        live=values.rules_file(role),
        validate=lambda candidate: f"nft -c -f {candidate}",
        user="root",
        group="root",
        mode="644",
        config=config,
    )
    unit = files.template(
        name=f"{role}: firewall unit",
        src=str(values.TEMPLATES / "table.service.j2"),
        dest=values.unit_file(role),
        config=values.unit(role, before),
    )
    systemd.daemon_reload(name=f"{role}: systemd reload (firewall unit)", _if=unit.did_change)
    running_and_refreshed(f"{role}: firewall", values.unit_name(role), rules.did_change)
