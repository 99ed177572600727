"""The pgBackRest role's deploy steps: on the repository host and on every Patroni node,
the package, the firewall, the certificates, the configuration (checked by pgBackRest's own
parser before it goes live) and the TLS server; on the repository host the backup timers;
after Patroni is up, the stanza and `pgbackrest check`."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd

from pgha.backup import operations as backup_ops
from pgha.backup import values
from pgha.common.deploy import (
    install_packages_without_starting,
    running_and_refreshed,
    scripts_directory,
    validated_template,
)
from pgha.firewall import values as firewall_values
from pgha.firewall.deploy import firewall as firewall_table
from pgha.pki import deploy as pki
from pgha.pki.authority import common_names

PACKAGES = ["pgbackrest", "nftables"]


def _role(cluster) -> str | None:
    if not values.enabled(cluster):
        return None
    if "backup" in host.groups:
        return "repository"
    return "member" if "patroni" in host.groups else None


@deploy("pgbackrest: install")
def install(cluster, node):
    install_packages_without_starting("pgbackrest", PACKAGES, cluster.settings["debian_release"])
    if "backup" in node.groups:
        user = values.REPO_USER
        server.group(name=f"pgbackrest: system group {user}", group=user, system=True)
        server.user(
            name=f"pgbackrest: system user {user} (owns the repository)",
            user=user, group=user, system=True, home=cluster.settings["pgbackrest_repo_path"],
            create_home=False, shell="/usr/sbin/nologin",
        )


@deploy("pgbackrest: firewall")
def firewall(cluster, node):
    port = cluster.settings["pgbackrest_tls_port"]
    firewall_table("pgbackrest", firewall_values.table(
        "pgbackrest",
        "pgBackRest's TLS server answers the other side of the repository only (the "
        "repository host reaches the Patroni nodes, they reach it).",
        {"peers": ([port], values.firewall_sources(cluster, node))},
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


@deploy("pgbackrest: configure")
def configure(cluster, node, role: str):
    user = values.user_of(node)
    if role == "repository":
        files.directory(name="pgbackrest: the repository", path=cluster.settings["pgbackrest_repo_path"],
                        user=user, group=user, mode="750")
        config = values.repository_config(cluster, common_names(cluster))
    else:
        files.directory(name="pgbackrest: the archive spool", path=values.SPOOL_PATH,
                        user=user, group=user, mode="750")
        scripts_directory("pgbackrest")
        files.template(
            name="pgbackrest: pgbackrest-if-reachable (restore_command and replica creation fail at once "
                 "when the repository is away)",
            src=str(values.TEMPLATES / "if-reachable.sh.j2"),
            dest=values.IF_REACHABLE,
            mode="755",
            config=values.if_reachable_script(cluster),
        )
        config = values.member_config(cluster, common_names(cluster))
    files.directory(name="pgbackrest: its log directory", path=values.LOG_PATH, user=user, group=user, mode="770")
    files.directory(name="pgbackrest: /etc/pgbackrest", path="/etc/pgbackrest", user="root", group="root", mode="755")
    # the repository host's file holds the repository's passphrase: its user's alone
    return validated_template(
        "pgbackrest", values.TEMPLATES / "pgbackrest.conf.j2", live=values.CONFIG_FILE,
        validate=validate_command, user="root", group=user, mode="640", config=config,
    )


@deploy("pgbackrest: TLS server")
def tls_server(node, changes: list):
    unit = files.template(
        name="pgbackrest: TLS server unit",
        src=str(values.TEMPLATES / "server.service.j2"),
        dest=values.SERVER_UNIT_FILE,
        config=values.server_unit(node),
    )
    systemd.daemon_reload(name="pgbackrest: systemd reload (server unit)", _if=unit.did_change)
    running_and_refreshed("pgbackrest: TLS server", values.SERVER_UNIT,
                          lambda: unit.did_change() or any(op.did_change() for op in changes),
                          refresh="restarted")


@deploy("pgbackrest: backup timers")
def timers(cluster):
    scheduled = {timer["type"]: timer for timer in values.timers(cluster)}
    reload_needed = []
    for backup_type in values.BACKUP_TYPES:
        name = values.timer_name(backup_type)
        timer = scheduled.get(backup_type)
        if timer is None:
            systemd.service(name=f"pgbackrest: no {backup_type} backup timer (no schedule)",
                            service=f"{name}.timer", running=False, enabled=False, _ignore_errors=True)
            for suffix in ("timer", "service"):
                reload_needed.append(files.file(name=f"pgbackrest: no {name}.{suffix}",
                                                path=f"/etc/systemd/system/{name}.{suffix}", present=False))
            continue
        for suffix in ("service", "timer"):
            reload_needed.append(files.template(
                name=f"pgbackrest: {name}.{suffix} ({timer['schedule']})" if suffix == "timer" else f"pgbackrest: {name}.{suffix}",
                src=str(values.TEMPLATES / f"backup.{suffix}.j2"),
                dest=f"/etc/systemd/system/{name}.{suffix}",
                config=timer,
            ))
    systemd.daemon_reload(name="pgbackrest: systemd reload (timers)",
                          _if=lambda: any(op.did_change() for op in reload_needed))
    for backup_type, timer in scheduled.items():
        systemd.service(name=f"pgbackrest: {timer['name']}.timer enabled and active",
                        service=f"{timer['name']}.timer", running=True, enabled=True)


def deploy_backup_hosts(cluster):
    """Before Patroni: pgBackRest on the repository host and every Patroni node, each TLS
    server running, so that the first archived WAL file has somewhere to go."""
    role = _role(cluster)
    if role is None:
        return
    node = cluster.node(host.name)
    install(cluster, node)
    peers = cluster.patroni if role == "repository" else cluster.backup
    backup_ops.peers_resolve(
        name="pgbackrest: the other side's names resolve to their addresses (checked against certificates)",
        peers={values.tls_name(peer): peer.address for peer in peers},
    )
    firewall(cluster, node)
    certificate = pki.certificate(cluster, node, values.TLS_SERVICE, values.user_of(node), values.user_of(node))
    config = configure(cluster, node, role)
    tls_server(node, certificate + [config])
    if role == "repository":
        timers(cluster)


@deploy("pgbackrest: stanza and check")
def stanza_and_check(cluster):
    """After Patroni: the stanza exists (created once, from the repository host) and
    `pgbackrest check` passes (a WAL file archived and found in the repository)."""
    if _role(cluster) != "repository":
        return
    backup_ops.stanza_created(
        name=f"pgbackrest: stanza {values.stanza(cluster.settings)} exists",
        stanza=values.stanza(cluster.settings),
    )
    backup_ops.first_backup(
        name="pgbackrest: a first full backup when the repository has none (replicas are built from it)",
        stanza=values.stanza(cluster.settings),
    )
    backup_ops.check_passes(
        name="pgbackrest: check (WAL archiving reaches the repository, the configuration agrees)",
        stanza=values.stanza(cluster.settings),
    )

