"""The Patroni role's own deploy steps: install, configure, ordered bootstrap, reloads for a
changed file or certificate, dynamic configuration, check, the roles' passwords. What
crosses components (a change of the DCS section: pause, HAProxy's hold, restart, resume)
is pgha.rollout's, which calls these in order."""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.context import ctx_host
from pyinfra.operations import server, systemd

from pgha.cluster import Cluster, Node
from pgha.common import snapshot
from pgha.common.deploy import checked_file, install_packages_without_starting, scripts_directory
from pgha.common.operations import absent, directory_in_place, file_in_place, link_in_place, live_file, unit_running
from pgha.common.step import step
from pgha.errors import ConfigError
from pgha.patroni import operations as patroni_ops
from pgha.patroni import removal
from pgha.patroni import values as patroni
from pgha.patroni.facts import PatroniCluster, PatroniDynamicConfig, TextFileHeader, WatchdogHost
from pgha.postgres import data_dir
from pgha.postgres.facts import make_psql_command
from pgha.rendering import render


def no_default_cluster() -> None:
    """Read by pg_createcluster when postgresql-N is installed: no `main` cluster on 5432.
    In place before any install of PostgreSQL's packages."""
    directory_in_place(name=f"patroni: {patroni.CREATECLUSTER_DIR}", path=patroni.CREATECLUSTER_DIR)
    file_in_place(name="patroni: PostgreSQL packages create no default cluster", path=patroni.CREATECLUSTER_FILE,
                  content="# Managed by pgha: Patroni creates the cluster\ncreate_main_cluster = false\n")


@step("patroni: install")
def install(cluster: Cluster):
    version = cluster.settings["postgresql_version"]
    no_default_cluster()
    install_packages_without_starting("patroni", patroni.packages(cluster.settings), cluster.settings["debian_release"])
    main_start_conf = f"/etc/postgresql/{version}/main/start.conf"
    if live_file(main_start_conf):
        # left by an earlier install: stopped and never started again, its data kept
        server.shell(
            name=f"patroni: stop the package's default cluster {version}/main (data kept)",
            commands=[f"grep -q '^manual' {main_start_conf} || {{ pg_ctlcluster {version} main stop || true; "
                      f"echo manual > {main_start_conf}; }}"],
        )
    directory_in_place(name=f"patroni: /var/lib/postgresql/{version} owned by postgres",
                       path=f"/var/lib/postgresql/{version}", user="postgres", group="postgres", mode="750")


# Patroni's own checker; on a running member it also reports its own ports as in use,
# which is expected: only those two findings are set aside then. Patroni 3.0.2 quotes the
# reason ('Port 8008 is already in use.'), 4.0.7 does not. (4.x also has
# --ignore-listen-port, 3.0.2 does not; it would hide a port another program holds.)
OWN_PORTS_IN_USE = r"^(restapi|postgresql)\.listen .* didn't pass validation: '?Port [0-9]+ is already in use\.'?$"


def validate_command(candidate: str) -> str:
    check = f"runuser -u postgres -- patroni --validate-config {candidate} 2>&1"
    return (
        f"cd /tmp && out=$({check}); rc=$?; "
        "if systemctl is-active -q patroni; then "
        f"out=$(printf '%s\\n' \"$out\" | grep -v -E \"{OWN_PORTS_IN_USE}\" | grep -v '^$'); "
        '[ -z "$out" ] && rc=0; fi; '
        '[ "$rc" = 0 ] || { printf \'%s\\n\' "$out" >&2; exit 1; }'
    )


def _secret_file(what: str, template: str, dest: str, config: dict) -> None:
    """A file holding a secret: the postgres user's alone (0600)."""
    file_in_place(name=f"patroni: {what}", path=dest, content=render(patroni.TEMPLATES / template, config),
                  user="postgres", group="postgres", mode="600")


def watchdog_mode(cluster: Cluster) -> str:
    """The watchdog mode written into this member's file: patroni_watchdog, but "off" on a
    container, which has no watchdog of its own (softdog would load into the kernel it shares
    with its host); "required" is refused there, before anything changes."""
    mode = cluster.settings["patroni_watchdog"]
    if mode == "off":
        return mode
    container = snapshot.get(WatchdogHost)["container"]
    if container and mode == "required":
        raise ConfigError([
            f"patroni_watchdog = 'required': {host.name} is a container ({container}), which has no "
            "watchdog device, so it could never lead: expected 'automatic' (off on containers, used on "
            "machines) or 'off'"
        ])
    return patroni.member_watchdog_mode(cluster.settings, container)


@step("patroni: watchdog")
def watchdog(mode: str):
    """On a machine with the watchdog on: softdog loaded (now and at boot) and /dev/watchdog
    given to postgres."""
    if mode == "off":
        return
    file_in_place(name="patroni: softdog loaded at boot (the watchdog device)", path=patroni.SOFTDOG_MODULES_FILE,
                  content="softdog\n")
    file_in_place(name="patroni: /dev/watchdog belongs to postgres (udev rule)", path=patroni.WATCHDOG_UDEV_RULE,
                  content=patroni.WATCHDOG_UDEV_TEXT)
    device = patroni.WATCHDOG_DEVICE
    owner = snapshot.get(WatchdogHost)["device"]
    server.shell(name="patroni: softdog loaded now, /dev/watchdog postgres's",
                 commands=[f"test -c {device} || modprobe softdog", "udevadm settle || true",
                           f"chown postgres:postgres {device} && chmod 600 {device}"],
                 _if=lambda: owner != "postgres")


@step("patroni: configure")
def configure(cluster: Cluster, node: Node, archiving: dict):
    live = patroni.config_file(node)
    mode = watchdog_mode(cluster)
    watchdog(mode)
    directory_in_place(name="patroni: /etc/patroni", path="/etc/patroni", user="root", group="postgres", mode="750")
    config = checked_file("patroni", live, patroni.config_text(cluster, node, archiving, mode), validate=validate_command,
                          user="postgres", group="postgres", mode="600")
    directory_in_place(name=f"patroni: {patroni.PATRONICTL_DIR}", path=patroni.PATRONICTL_DIR, mode="700")
    link_in_place(name="patroni: `patronictl` needs no arguments (root's patronictl.yaml)",
                  path=f"{patroni.PATRONICTL_DIR}/patronictl.yaml", target=live)
    if cluster.settings["patroni_switchover_on_stop"]:
        _secret_file("REST API credentials for the stop-time switchover", "restapi-curlrc.j2",
                     patroni.RESTAPI_CURLRC, patroni.restapi_credentials(cluster))
    else:
        absent(name="patroni: no stop-time switchover credentials", path=patroni.RESTAPI_CURLRC)
    for setting, (_, passfile, _, _) in patroni.ROLE_PASSWORDS.items():
        _secret_file(f"role {cluster.settings[setting]}'s password (pgpass file)", "role-pgpass.j2", passfile,
                     patroni.role_pgpass(cluster, setting))
    scripts_directory("patroni")
    file_in_place(name="patroni: stop-time switchover script (leader hands over before stopping)",
                  path=patroni.HANDOVER_SCRIPT, mode="755",
                  content=render(patroni.TEMPLATES / "handover.sh.j2", patroni.handover_script(cluster, node)))
    unit = file_in_place(name="patroni: systemd unit (KillMode=process, stop timeout)", path=patroni.UNIT_FILE,
                         content=render(patroni.TEMPLATES / "patroni.service.j2", patroni.systemd_unit(cluster, node)))
    systemd.daemon_reload(name="patroni: systemd reload", _if=unit.did_change)
    return config


def cluster_exists(cluster: Cluster) -> bool:
    """Whether any member already has a data directory (then there is nothing to bootstrap)."""
    path = f"{data_dir(cluster.settings)}/PG_VERSION"
    return any(_on(n.name, live_file, path) for n in cluster.patroni)


def _on(name: str, function, *args):
    """``function(*args)`` as seen from another host (its snapshot, else its facts)."""
    other = inventory.get_host(name)
    with ctx_host.use(other):
        return function(*args)


def header_of(cluster: Cluster, node: Node) -> dict:
    """The `# key: value` header of a member's live patroni.yml (its DCS digest, its REST API's scheme)."""
    return snapshot.get(TextFileHeader, host=inventory.get_host(node.name), path=patroni.config_file(node))


def restapi_scheme_changes(cluster: Cluster) -> bool:
    """Whether a running member's REST API still speaks another scheme than pgha's (plain
    HTTP before TLS): HAProxy's checks must switch with it, not before."""
    return any((live := header_of(cluster, other)) and live.get("restapi-scheme") != patroni.RESTAPI_SCHEME
               for other in cluster.patroni)


def dcs_changed_on(cluster: Cluster, other) -> bool:
    """Patroni reads its DCS section only at start: did it change in a running member's file?"""
    live = header_of(cluster, other)
    return bool(live) and live.get("dcs-digest") != patroni.dcs_digest(cluster)


@step("patroni: start the members")
def start_members(cluster: Cluster, node: Node):
    """The first member alone (it bootstraps a new cluster and takes the lock), then the
    others. Every step is registered on every member (skipped where it does not apply):
    pyinfra orders operations per host, so this is what makes "first member is leader" come
    before "the others start"."""
    first = node is cluster.patroni[0]
    bootstrap = not cluster_exists(cluster)
    unit_running(name="patroni: first member enabled and running", unit=patroni.UNIT, _if=lambda: first)
    patroni_ops.leader_elected(name="patroni: first member bootstraps and takes the lock",
                               port=cluster.settings["patroni_restapi_port"], _if=lambda: first and bootstrap)
    unit_running(name="patroni: other members enabled and running", unit=patroni.UNIT, _if=lambda: not first)


@step("patroni: reload for a changed file or certificate")
def reloaded(cluster: Cluster, was_running: bool, dcs_restart: bool, config, certificate_changed):
    """A reload for a change of the member's own file (its DCS section aside: that restarts
    it), and PostgreSQL reading its certificate again."""
    s = cluster.settings
    systemd.service(
        name="patroni: reload (local configuration or certificate changed)",
        service="patroni",
        reloaded=True,
        _if=lambda: was_running and not dcs_restart and (config.did_change() or certificate_changed()),
    )
    server.shell(
        name="patroni: PostgreSQL reads its certificate again (it changed)",
        commands=[make_psql_command("SELECT pg_reload_conf()", s["postgresql_port"], user=s["patroni_superuser"])],
        _if=lambda: was_running and certificate_changed(),
    )


@step("patroni: cluster-wide configuration")
def dynamic_configuration(cluster: Cluster, node: Node, local_parameters: dict, leader_guard=None):
    """``leader_guard``: around the leader's restart, if one is owed (pgha.rollout)."""
    s = cluster.settings
    only_first = lambda: node is cluster.patroni[0]  # noqa: E731
    live = patroni.config_file(node)
    port = s["patroni_restapi_port"]
    patroni_ops.dynamic_config_applied(
        name="patroni: DCS configuration (ttl, loop_wait, ..., parameters) matches group_data",
        wanted=patroni.dynamic_config(s),
        config_file=live,
        port=port,
        pg_port=s["postgresql_port"],
        settle_seconds=2 * s["patroni_loop_wait"] + 5,
        _if=only_first,
    )
    patroni_ops.pending_restarts_applied(
        name="patroni: rolling restart of members waiting for one (replicas first)",
        scope=s["patroni_scope"],
        config_file=live,
        port=port,
        settle_seconds=s["patroni_loop_wait"] + 5,
        local_parameters=local_parameters,
        pg_port=s["postgresql_port"],
        leader_guard=leader_guard,
        _if=only_first,
    )


def unlisted_members(cluster: Cluster) -> list[dict]:
    """The running members this run removes, from the first member's snapshot (a run
    limited to other hosts decides nothing); a refusal (pgha.patroni.removal) is raised as
    the deploy plans, before any operation runs."""
    first = inventory.get_host(cluster.patroni[0].name) if cluster.patroni else None
    if first is None or not host.state.is_host_in_limit(first):
        return []  # decided only by a run that reaches the first member
    port = cluster.settings["patroni_restapi_port"]
    return removal.removals(cluster, snapshot.get(PatroniCluster, host=first, port=port),
                            snapshot.get(PatroniDynamicConfig, host=first, port=port))


@step("patroni: remove the members the inventory no longer lists")
def remove_members(cluster: Cluster, node: Node, units: list[str]):
    """``units``: what a member runs (Patroni, and the components beside it)."""
    s = cluster.settings
    patroni_ops.members_removed(
        name=f"patroni: stop, disable and remove the members the inventory no longer lists ({removal.SETTING})",
        members=unlisted_members(cluster), units=units, ssh=removal.ssh_of(cluster),
        port=s["patroni_restapi_port"], pg_port=s["postgresql_port"], config_file=patroni.config_file(node),
        timeout=s["patroni_ttl"] + 60, loop_wait=s["patroni_loop_wait"],
    )


def members(cluster: Cluster) -> list[dict]:
    """The inventory's Patroni members as the checks name them."""
    return [{"name": n.patroni_name, "host": n.address} for n in cluster.patroni]


@step("patroni: check")
def check(cluster: Cluster, node: Node, connect: str):
    """``connect``: how clients connect (said last, with the member table)."""
    patroni_ops.cluster_healthy(
        name="patroni: exactly one leader, every replica streaming",
        expected=members(cluster),
        port=cluster.settings["patroni_restapi_port"],
        maximum_lag=cluster.settings["patroni_maximum_lag_on_failover"],
        connect=connect,
        _if=lambda: node is cluster.patroni[0],
    )


@step("patroni: role passwords")
def role_passwords(cluster: Cluster):
    """On the leader: each role of ROLE_PASSWORDS logs in with its secret, else gets it
    (the admin role is created first: Patroni 4 dropped bootstrap.users). Run before
    Patroni reloads a changed configuration, so that a rotated password is in the database
    before any member uses it, and again once a new cluster is up."""
    s = cluster.settings
    for setting, (_, passfile, attributes, _) in patroni.ROLE_PASSWORDS.items():
        role = s[setting]
        extra = f" ({', '.join(attributes)})" if attributes else ""
        patroni_ops.role_password(
            name=f"patroni: role {role}{extra} logs in with its password from the secrets file (on the leader)",
            role=role,
            attributes=list(attributes),
            passfile=passfile,
            sql=patroni.role_password_sql(cluster, setting),
            port=s["postgresql_port"],
            restapi_port=s["patroni_restapi_port"],
            superuser=s["patroni_superuser"],
        )


def note(what: str, owed: bool, applies) -> None:
    """A DCS change rolled out over steps a failed run can cut short: a marker file says
    what is still owed (patroni.DCS_CHANGE_MARKERS)."""
    path = patroni.DCS_CHANGE_MARKERS[what]
    command = f"mkdir -p {patroni.MARKERS_DIR} && touch {path}" if owed else f"rm -f {path}"
    server.shell(name=f"patroni: {'note' if owed else 'done'}: {what} (DCS change)", commands=[command], _if=applies)


def owed(what: str) -> bool:
    return bool(live_file(patroni.DCS_CHANGE_MARKERS[what]))


def paused_by_user(cluster: Cluster) -> bool:
    """The cluster was in maintenance mode before this run, and no earlier run put it there
    (`pgha pause`, or patronictl's): the deploy leaves it paused."""
    first = cluster.patroni[0]
    config = snapshot.get(PatroniDynamicConfig, host=inventory.get_host(first.name),
                          port=cluster.settings["patroni_restapi_port"])
    return bool((config or {}).get("pause")) and not _on(first.name, owed, "paused")


def on_patroni_host(cluster: Cluster) -> bool:
    return "patroni" in host.groups
