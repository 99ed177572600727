"""The Patroni role's deploy steps: install, configure, ordered bootstrap, dynamic
configuration, check."""

from __future__ import annotations

from io import StringIO

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindInFile
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, server, systemd

from pgha.client import connect_text
from pgha.common.deploy import install_packages_without_starting, scripts_directory, validated_template
from pgha.haproxy import values as haproxy_values
from pgha.patroni import operations as patroni_ops
from pgha.patroni import values as patroni
from pgha.patroni.facts import TextFileHeader
from pgha.pki import deploy as pki
from pgha.postgres.facts import make_psql_command


def packages(settings) -> list[str]:
    # curl: the facts and the stop-time switchover script ask the local REST API with it
    return [f"postgresql-{settings['postgresql_version']}", "patroni", "python3-etcd", "curl"]


@deploy("patroni: install")
def install(cluster):
    version = cluster.settings["postgresql_version"]
    # read by pg_createcluster when postgresql-N is installed: no `main` cluster on 5432
    files.put(
        name="patroni: PostgreSQL packages create no default cluster",
        src=StringIO("# Managed by pgha: Patroni creates the cluster\ncreate_main_cluster = false\n"),
        dest="/etc/postgresql-common/createcluster.d/pgha.conf",
    )
    install_packages_without_starting("patroni", packages(cluster.settings), cluster.settings["debian_release"])
    main_start_conf = f"/etc/postgresql/{version}/main/start.conf"
    if host.get_fact(File, path=main_start_conf) and not host.get_fact(
        FindInFile, path=main_start_conf, pattern="^manual"
    ):
        # left by an earlier install: stopped and never started again, its data kept
        server.shell(
            name=f"patroni: stop the package's default cluster {version}/main (data kept)",
            commands=[f"pg_ctlcluster {version} main stop || true", f"echo manual > {main_start_conf}"],
        )
    files.directory(
        name=f"patroni: /var/lib/postgresql/{version} owned by postgres",
        path=f"/var/lib/postgresql/{version}",
        user="postgres",
        group="postgres",
        mode="750",
    )


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


@deploy("patroni: configure")
def configure(cluster, node):
    live = patroni.config_file(node)
    files.directory(name="patroni: /etc/patroni", path="/etc/patroni", user="root", group="postgres", mode="750")
    config = validated_template(
        "patroni",
        patroni.TEMPLATES / "patroni.yml.j2",
        live=live,
        validate=validate_command,
        user="postgres",
        group="postgres",
        mode="600",
        config=patroni.config(cluster, node),
    )
    files.directory(name="patroni: /root/.config/patroni", path="/root/.config/patroni", mode="700")
    files.link(
        name="patroni: `patronictl` needs no arguments (root's patronictl.yaml)",
        path="/root/.config/patroni/patronictl.yaml",
        target=live,
    )
    def secret_file(what: str, template: str, dest: str, config: dict) -> None:
        """A file holding a secret: the postgres user's alone (0600)."""
        files.template(
            name=f"patroni: {what}", src=str(patroni.TEMPLATES / template), dest=dest,
            user="postgres", group="postgres", mode="600", config=config,
        )

    if cluster.settings["patroni_switchover_on_stop"]:
        secret_file("REST API credentials for the stop-time switchover", "restapi-curlrc.j2",
                    patroni.RESTAPI_CURLRC, patroni.restapi_credentials(cluster))
    else:
        files.file(name="patroni: no stop-time switchover credentials", path=patroni.RESTAPI_CURLRC, present=False)
    for setting, (_, passfile, _, _) in patroni.ROLE_PASSWORDS.items():
        secret_file(f"role {cluster.settings[setting]}'s password (pgpass file)", "role-pgpass.j2", passfile,
                    patroni.role_pgpass(cluster, setting))
    scripts_directory("patroni")
    files.template(
        name="patroni: stop-time switchover script (leader hands over before stopping)",
        src=str(patroni.TEMPLATES / "handover.sh.j2"),
        dest=patroni.HANDOVER_SCRIPT,
        mode="755",
        config=patroni.handover_script(cluster, node),
    )
    unit = files.template(
        name="patroni: systemd unit (KillMode=process, TimeoutSec=30)",
        src=str(patroni.TEMPLATES / "patroni.service.j2"),
        dest=patroni.UNIT_FILE,
        config=patroni.systemd_unit(cluster, node),
    )
    systemd.daemon_reload(name="patroni: systemd reload", _if=unit.did_change)
    return config


def _cluster_exists(cluster) -> bool:
    """Whether any member already has a data directory (then there is nothing to bootstrap)."""
    path = f"{patroni.data_dir(cluster.settings)}/PG_VERSION"
    return any(inventory.get_host(n.name).get_fact(File, path=path) for n in cluster.patroni)


def _owed(what: str) -> bool:
    return bool(host.get_fact(File, path=patroni.DCS_CHANGE_MARKERS[what]))


def _note(what: str, owed: bool, applies) -> None:
    files.file(
        name=f"patroni: {'note' if owed else 'done'}: {what} (DCS change)",
        path=patroni.DCS_CHANGE_MARKERS[what],
        present=owed,
        create_remote_dir=True,
        _if=applies,
    )


def restapi_scheme_changes(cluster) -> bool:
    """Whether a running member's REST API still speaks another scheme than pgha's (plain
    HTTP before TLS): HAProxy's checks must switch with it, not before."""
    for other in cluster.patroni:
        live = inventory.get_host(other.name).get_fact(TextFileHeader, path=patroni.config_file(other))
        if live and live.get("restapi-scheme") != patroni.RESTAPI_SCHEME:
            return True
    return False


def _dcs_changed_on(cluster, other) -> bool:
    """Patroni reads its DCS section only at start: did it change in a running member's file?"""
    live = inventory.get_host(other.name).get_fact(TextFileHeader, path=patroni.config_file(other))
    return bool(live) and live.get("dcs-digest") != patroni.dcs_digest(cluster)


@deploy("patroni: start")
def start(cluster, node, config, certificate_changed):
    s = cluster.settings
    scheme_changes = restapi_scheme_changes(cluster)
    port = s["patroni_restapi_port"]
    first = node is cluster.patroni[0]
    bootstrap = not _cluster_exists(cluster)
    was_running = host.get_fact(SystemdStatus).get("patroni.service", False)
    any_dcs_change = any(_dcs_changed_on(cluster, other) for other in cluster.patroni) or _owed("paused")
    dcs_changed_here = _dcs_changed_on(cluster, node) or _owed("restart")
    live = patroni.config_file(node)

    # Every step is registered on every member (skipped where it does not apply): pyinfra
    # orders operations per host, so this is what makes "first member is leader" come
    # before "the others start".
    def enabled_and_running(members: str, applies) -> None:
        systemd.service(
            name=f"patroni: {members} enabled and running", service="patroni", running=True, enabled=True, _if=applies
        )

    enabled_and_running("first member", lambda: first)
    patroni_ops.leader_elected(
        name="patroni: first member bootstraps and takes the lock",
        port=port,
        _if=lambda: first and bootstrap,
    )
    enabled_and_running("other members", lambda: not first)
    # Patroni reads its DCS section at start only: restart the daemons, in maintenance mode
    # so that PostgreSQL keeps running and the leader keeps its role.
    pause = patroni_ops.paused(
        name="patroni: pause (the DCS section changed: daemons restart)",
        scope=s["patroni_scope"],
        config_file=live,
        _if=lambda: first and any_dcs_change,
    )
    _note("paused", True, pause.did_change)
    # Paused, no leader can change; HAProxy would still mark the leader down while its
    # REST API changes scheme or restarts: every HAProxy keeps the members that pass their
    # check now up (again after HAProxy's own reload, which forgets it), until released below
    server.shell(
        name="haproxy: keep the current leader and replicas up while Patroni restarts",
        commands=[f"{haproxy_values.HOLD_SCRIPT} hold"],
        _if=lambda: any_dcs_change,
    )
    # A new daemon connects to the running PostgreSQL with the new file's settings (TLS
    # required): the running daemon applies the file first, by a reload.
    reload_first = lambda: was_running and dcs_changed_here and config.did_change()  # noqa: E731
    systemd.service(
        name="patroni: reload first (PostgreSQL and the REST API take the new file before the restart)",
        service="patroni",
        reloaded=True,
        _if=reload_first,
    )
    patroni_ops.postgres_settings_applied(
        name="patroni: PostgreSQL runs the reloaded TLS settings",
        settings={"ssl": patroni.TLS_PARAMETERS["ssl"]},
        port=s["postgresql_port"],
        _if=reload_first,
    )
    systemd.service(
        name="haproxy: reload (Patroni's REST API now speaks HTTPS: HAProxy's checks follow)",
        service="haproxy",
        reloaded=True,
        _if=lambda: scheme_changes,
    )
    server.shell(
        name="haproxy: keep the current leader and replicas up while Patroni restarts (reloaded HAProxy)",
        commands=[f"{haproxy_values.HOLD_SCRIPT} hold"],
        _if=lambda: any_dcs_change and scheme_changes,
    )
    systemd.service(
        name="patroni: restart the daemon (its DCS section changed)",
        service="patroni",
        restarted=True,
        _if=lambda: was_running and dcs_changed_here,
    )
    _note("restart", False, lambda: dcs_changed_here)
    systemd.service(
        name="patroni: reload (local configuration or certificate changed)",
        service="patroni",
        reloaded=True,
        _if=lambda: was_running and not dcs_changed_here and (config.did_change() or certificate_changed()),
    )
    server.shell(
        name="patroni: PostgreSQL reads its certificate again (it changed)",
        commands=[make_psql_command("SELECT pg_reload_conf()", s["postgresql_port"], user=s["patroni_superuser"])],
        _if=lambda: was_running and certificate_changed(),
    )
    patroni_ops.paused(
        name="patroni: resume",
        scope=s["patroni_scope"],
        config_file=live,
        pause=False,
        _if=lambda: first and any_dcs_change,
    )
    _note("paused", False, lambda: first and any_dcs_change)
    patroni_ops.cluster_healthy(
        name="patroni: every daemon answers again (one leader, every replica streaming)",
        expected=members(cluster),
        port=port,
        _if=lambda: first and any_dcs_change,
    )
    server.shell(
        name="haproxy: health checks of the members resume",
        commands=[f"{haproxy_values.HOLD_SCRIPT} release"],
        _if=lambda: any_dcs_change,
    )


@deploy("patroni: pause before the DCS changes")
def paused_before_dcs_change(cluster):
    """Registered before the etcd role: when Patroni's DCS section changes (etcd's address,
    TLS, its user or password), etcd may refuse the running daemons before they restart
    with the new section, and a paused leader that loses the DCS keeps PostgreSQL primary.
    deploy_patroni resumes once every daemon runs the new section."""
    if "patroni" not in host.groups:
        return
    node = cluster.node(host.name)
    if node is cluster.patroni[0] and any(_dcs_changed_on(cluster, other) for other in cluster.patroni):
        pause = patroni_ops.paused(
            name="patroni: pause (its DCS section changes: etcd may refuse it until it restarts)",
            scope=cluster.settings["patroni_scope"],
            config_file=patroni.config_file(node),
        )
        _note("paused", True, pause.did_change)


@deploy("patroni: cluster-wide configuration")
def dynamic_configuration(cluster, node):
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
        local_parameters=patroni.config(cluster, node)["local_parameters"],
        pg_port=s["postgresql_port"],
        _if=only_first,
    )


def members(cluster) -> list[dict]:
    """The inventory's Patroni members as the checks name them."""
    return [{"name": n.patroni_name, "host": n.address} for n in cluster.patroni]


@deploy("patroni: check")
def check(cluster, node):
    patroni_ops.cluster_healthy(
        name="patroni: exactly one leader, every replica streaming",
        expected=members(cluster),
        port=cluster.settings["patroni_restapi_port"],
        maximum_lag=cluster.settings["patroni_maximum_lag_on_failover"],
        connect=connect_text(cluster),
        _if=lambda: node is cluster.patroni[0],
    )


@deploy("patroni: role passwords")
def role_passwords(cluster):
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


def deploy_patroni(cluster):
    """The whole role on the current host, if it is a Patroni member."""
    if "patroni" not in host.groups:
        return
    node = cluster.node(host.name)
    install(cluster)
    certificate = pki.certificate(cluster, node, patroni.TLS_SERVICE, "postgres", "postgres")
    changes_dcs = _dcs_changed_on(cluster, node)
    _note("restart", True, lambda: changes_dcs)  # before the new section goes live
    config = configure(cluster, node)
    role_passwords(cluster)
    start(cluster, node, config, pki.changed(certificate))
    dynamic_configuration(cluster, node)
    check(cluster, node)
    role_passwords(cluster)
