"""The pooler's deploy steps on every Patroni node: PgBouncer installed, its firewall, its
TLS copy, its files; on the leader its auth user and the lookup function; then running,
reloaded on a change (restarted when where it listens changes), a pooled connection seen."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import server, systemd

from pgha.cluster import Cluster
from pgha.common.deploy import install_packages_without_starting
from pgha.common.operations import file_in_place, unit_running, unit_state
from pgha.common.step import step
from pgha.firewall.deploy import firewall as firewall_table
from pgha.patroni import operations as patroni_ops
from pgha.pki import deploy as pki
from pgha.pooler import operations as pooler_ops
from pgha.pooler import values
from pgha.rendering import render


@step("pooler: install")
def install(cluster: Cluster):
    install_packages_without_starting("pooler", values.PACKAGES, cluster.settings["debian_release"])
    firewall_table("pooler", values.firewall(cluster), before=values.UNIT)


@step("pooler: files")
def files(cluster: Cluster):
    """PgBouncer has no checker of its own: a file it rejects at a reload is logged and
    the running values are kept; the check at the end of the role fails the deploy."""
    node = cluster.node(host.name)
    certificate = pki.certificate(cluster, node, values.TLS_SERVICE, values.USER, values.USER)
    secrets = [
        file_in_place(name=f"pooler: {values.AUTH_FILE} (the auth user's password)", path=values.AUTH_FILE,
                      content=values.auth_file(cluster), user=values.USER, group=values.USER, mode="600"),
        file_in_place(name=f"pooler: {values.AUTH_PGPASS} (the auth user's pgpass lines)", path=values.AUTH_PGPASS,
                      content=values.auth_pgpass(cluster), user=values.USER, group=values.USER, mode="600"),
    ]
    config = file_in_place(name=f"pooler: {values.CONFIG_FILE}", path=values.CONFIG_FILE,
                           content=values.config_text(cluster),
                           user="root", group=values.USER, mode="640")
    listen = file_in_place(name=f"pooler: {values.LISTEN_FILE} (where it listens)", path=values.LISTEN_FILE,
                           content=render(values.TEMPLATES / "listen.ini.j2", values.listen(cluster)),
                           user="root", group=values.USER, mode="640")
    return [*certificate, *secrets, config], listen


@step("pooler: auth user and lookup function")
def lookup(cluster: Cluster):
    s = cluster.settings
    role = patroni_ops.role_password(
        name=f"pooler: role {s['pgbouncer_auth_user']} logs in with its password (on the leader)",
        role=s["pgbouncer_auth_user"], attributes=[], passfile=values.AUTH_PGPASS, sql=values.auth_role_sql(cluster),
        port=s["postgresql_port"], restapi_port=s["patroni_restapi_port"], superuser=s["patroni_superuser"],
    )
    function = pooler_ops.lookup_function(
        name=f"pooler: {values.LOOKUP_FUNCTION} (SECURITY DEFINER, owned by {values.LOOKUP_OWNER}, "
             f"executed by {s['pgbouncer_auth_user']} only) on the leader",
        wanted=values.lookup_wanted(cluster), sql=values.lookup_sql(cluster), auth_user=s["pgbouncer_auth_user"],
        port=s["postgresql_port"], restapi_port=s["patroni_restapi_port"], superuser=s["patroni_superuser"],
    )
    return [role, function]


@step("pooler: start")
def start(cluster: Cluster, reloaded_by: list, listen, database_side: list):
    was_running, _ = unit_state(values.UNIT)
    started = unit_running(name="pooler: pgbouncer enabled and running", unit=values.UNIT)
    restart = lambda: was_running and listen.did_change()  # noqa: E731
    systemd.service(name="pooler: restart (where it listens changed)", service="pgbouncer", restarted=True,
                    _if=restart)
    changed = lambda: any(op.did_change() for op in reloaded_by)  # noqa: E731
    systemd.service(name="pooler: reload (its files changed)", service="pgbouncer", reloaded=True,
                    _if=lambda: was_running and changed() and not restart())
    server.shell(name="pooler: a pooled connection reaches the leader, and one the read-only pool",
                 commands=[values.pooled_check_command(cluster)],
                 _if=lambda: started.did_change() or listen.did_change() or changed()
                 or any(op.did_change() for op in database_side))


def deploy_pooler(cluster: Cluster) -> None:
    """The whole role on the current host, if it is a Patroni member."""
    if "patroni" not in host.groups:
        return
    install(cluster)
    reloaded_by, listen = files(cluster)
    database_side = lookup(cluster)
    start(cluster, reloaded_by, listen, database_side)
