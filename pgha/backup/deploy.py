"""The pgBackRest role's deploy steps: on the repository host and on every Patroni node,
the package, the firewall, the certificates, the configuration (checked by pgBackRest's own
parser before it goes live) and the TLS server; on the repository host the backup timers;
after Patroni is up, the stanza and `pgbackrest check`."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import systemd

from pgha import monitoring
from pgha.backup import operations as backup_ops
from pgha.backup import values
from pgha.backup.facts import peers
from pgha.cluster import Cluster, Node
from pgha.common.deploy import (
    checked_file,
    install_packages_without_starting,
    running_and_refreshed,
    scripts_directory,
)
from pgha.common.operations import absent, directory_in_place, file_in_place, unit_running, unit_state
from pgha.common.step import step
from pgha.firewall import values as firewall_values
from pgha.firewall.deploy import firewall as firewall_table
from pgha.pki import deploy as pki
from pgha.pki.authority import common_names
from pgha.rendering import render


def _role(cluster: Cluster) -> str | None:
    if not values.enabled(cluster):
        return None
    if "backup" in host.groups:
        return "repository"
    return "member" if "patroni" in host.groups else None


@step("pgbackrest: install")
def install(cluster: Cluster, node: Node):
    install_packages_without_starting("pgbackrest", values.PACKAGES, cluster.settings["debian_release"])
    if "backup" in node.groups:
        backup_ops.system_account(name=f"pgbackrest: system user {values.REPO_USER} (owns the repository)",
                                  user=values.REPO_USER, home=cluster.settings["pgbackrest_repo_path"])


@step("pgbackrest: firewall")
def firewall(cluster: Cluster, node: Node):
    port = cluster.settings["pgbackrest_tls_port"]
    firewall_table("pgbackrest", firewall_values.table(
        "pgbackrest",
        "pgBackRest's TLS server answers the other side of the repository only (the "
        "repository host reaches the Patroni nodes, they reach it; the monitoring host probes its TLS).",
        {"peers": ([port], values.firewall_sources(cluster, node)), **monitoring.monitoring_set(cluster, [port])},
    ), before=f"{values.SERVER_UNIT}.service")


def validate_command(candidate: str) -> str:
    """pgBackRest's own parser: a bad value is an error, an unknown option a warning; both
    refuse the file."""
    checks = " && ".join(
        f"out=$(pgbackrest --config={candidate} --log-level-console=warn help {command} {option} 2>&1) && "
        f"! printf '%s\\n' \"$out\" | grep -E '(WARN|ERROR):' >&2"
        for command, option in (("backup", "process-max"), ("archive-push", "archive-async"), ("server", "tls-server-port"))
    )
    return f"cd /tmp && {checks}"


@step("pgbackrest: configure")
def configure(cluster: Cluster, node: Node, role: str):
    user = values.user_of(node)
    if role == "repository":
        directory_in_place(name="pgbackrest: the repository", path=cluster.settings["pgbackrest_repo_path"],
                           user=user, group=user, mode="750")
        config = values.repository_config(cluster, common_names(cluster))
    else:
        directory_in_place(name="pgbackrest: the archive spool", path=values.SPOOL_PATH, user=user, group=user,
                           mode="750")
        scripts_directory("pgbackrest")
        file_in_place(
            name="pgbackrest: pgbackrest-if-reachable (restore_command and replica creation fail at once "
                 "when the repository is away)",
            path=values.IF_REACHABLE, mode="755",
            content=render(values.TEMPLATES / "if-reachable.sh.j2", values.if_reachable_script(cluster)),
        )
        file_in_place(
            name="pgbackrest: pgbackrest-archive-push (archive_command: a stale segment of an abandoned "
                 "timeline does not block archiving)",
            path=values.ARCHIVE_PUSH, mode="755",
            content=render(values.TEMPLATES / "archive-push.sh.j2", values.archive_push_script()),
        )
        config = values.member_config(cluster, common_names(cluster))
    directory_in_place(name="pgbackrest: its log directory", path=values.LOG_PATH, user=user, group=user, mode="770")
    directory_in_place(name="pgbackrest: /etc/pgbackrest", path="/etc/pgbackrest", mode="755")
    # the repository host's file holds the repository's passphrase: its user's alone
    return checked_file("pgbackrest", values.CONFIG_FILE, render(values.TEMPLATES / "pgbackrest.conf.j2", config),
                        validate=validate_command, user="root", group=user, mode="640")


@step("pgbackrest: TLS server")
def tls_server(node: Node, changes: list):
    unit = file_in_place(name="pgbackrest: TLS server unit", path=values.SERVER_UNIT_FILE,
                         content=render(values.TEMPLATES / "server.service.j2", values.server_unit(node)))
    systemd.daemon_reload(name="pgbackrest: systemd reload (server unit)", _if=unit.did_change)
    running_and_refreshed("pgbackrest: TLS server", values.SERVER_UNIT,
                          lambda: unit.did_change() or any(op.did_change() for op in changes),
                          refresh="restarted")


@step("pgbackrest: backup timers")
def timers(cluster: Cluster):
    scheduled = {timer["type"]: timer for timer in values.timers(cluster)}
    reload_needed = []
    for backup_type in values.BACKUP_TYPES:
        name = values.timer_name(backup_type)
        timer = scheduled.get(backup_type)
        if timer is None:
            running, enabled = unit_state(f"{name}.timer")
            if running or enabled:
                systemd.service(name=f"pgbackrest: no {backup_type} backup timer (no schedule)",
                                service=f"{name}.timer", running=False, enabled=False)
            for suffix in ("timer", "service"):
                reload_needed.append(absent(name=f"pgbackrest: no {name}.{suffix}",
                                            path=f"/etc/systemd/system/{name}.{suffix}"))
            continue
        for suffix in ("service", "timer"):
            reload_needed.append(file_in_place(
                name=f"pgbackrest: {name}.{suffix}" + (f" ({timer['schedule']})" if suffix == "timer" else ""),
                path=f"/etc/systemd/system/{name}.{suffix}",
                content=render(values.TEMPLATES / f"backup.{suffix}.j2", timer),
            ))
    systemd.daemon_reload(name="pgbackrest: systemd reload (timers)",
                          _if=lambda: any(op.did_change() for op in reload_needed))
    for timer in scheduled.values():
        unit_running(name=f"pgbackrest: {timer['name']}.timer enabled and active", unit=f"{timer['name']}.timer")


def deploy_backup_hosts(cluster: Cluster):
    """Before Patroni: pgBackRest on the repository host and every Patroni node, each TLS
    server running, so that the first archived WAL file has somewhere to go."""
    role = _role(cluster)
    if role is None:
        return
    node = cluster.node(host.name)
    install(cluster, node)
    backup_ops.peers_resolve(
        name="pgbackrest: the other side's names resolve to their addresses (checked against certificates)",
        peers=peers(cluster, node),
    )
    firewall(cluster, node)
    certificate = pki.certificate(cluster, node, values.TLS_SERVICE, values.user_of(node), values.user_of(node))
    config = configure(cluster, node, role)
    tls_server(node, certificate + [config])
    if role == "repository":
        timers(cluster)


@step("pgbackrest: stanza and check")
def stanza_and_check(cluster: Cluster):
    """After Patroni: the stanza exists (created once, from the repository host) and
    `pgbackrest check` passes (a WAL file archived and found in the repository)."""
    if _role(cluster) != "repository":
        return
    s = cluster.settings
    stanza = values.stanza(s)
    backup_ops.stanza_created(name=f"pgbackrest: stanza {stanza} exists", stanza=stanza)
    backup_ops.first_backup(
        name="pgbackrest: a first full backup when the repository has none (replicas are built from it)",
        stanza=stanza,
    )
    backup_ops.check_passes(
        name="pgbackrest: check (WAL archiving reaches the repository, the configuration agrees)",
        stanza=stanza, members=[n.name for n in cluster.patroni], port=s["postgresql_port"],
        restapi_port=s["patroni_restapi_port"], superuser=s["patroni_superuser"],
    )
