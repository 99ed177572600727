"""The order of the roles, and the steps that cross components: one owner for the rollout.

The deploy files call these in order (deploys/all.py all of them). Each component's own
steps are in its package (pgha.<component>.deploy); what one component's change asks of
another is here:

- a change of Patroni's DCS section (etcd's address, TLS, its user or password) restarts the
  daemons, in maintenance mode so that PostgreSQL keeps running and the leader its role:
  paused before etcd changes (etcd may refuse the running daemons before they restart),
  HAProxy holds its view of the members meanwhile (their REST API is silent while they
  restart), resumed and released once every daemon runs the new section;
- Patroni's REST API moving to HTTPS: HAProxy reloads its checks right after Patroni does;
- Patroni's archiving and replica creation come from the backup component;
- the pooler comes after Patroni (its auth user and lookup function are made on the leader),
  and every PgBouncer is paused around a restart of the leader in place;
- with a monitoring host, the exporters come after Patroni (the PostgreSQL exporter's role is
  made on the leader), Prometheus last.

``begin`` primes every host's snapshot (pgha.common.snapshot) from the registry, and refuses
a removal of Patroni members that it may not do (pgha.patroni.removal); ``patroni`` removes
the others first, stopping what such a member runs: Patroni, PgBouncer, HAProxy.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from pyinfra import host, logger, state
from pyinfra.operations import server, systemd

from pgha import SCRIPTS_DIR, client, components
from pgha.backup import values as backup_values
from pgha.backup.deploy import deploy_backup_hosts, stanza_and_check
from pgha.cluster import Cluster, Node
from pgha.common import op_order, snapshot
from pgha.common.deploy import install_packages_without_starting
from pgha.common.operations import unit_state
from pgha.etcd.deploy import deploy_etcd
from pgha.firewall import values as firewall_values
from pgha.haproxy import values as haproxy_values
from pgha.haproxy.deploy import deploy_haproxy
from pgha.monitor.deploy import deploy_exporters, deploy_monitor
from pgha.patroni import deploy as patroni_deploy
from pgha.patroni import operations as patroni_ops
from pgha.patroni import values as patroni_values
from pgha.pki import deploy as pki
from pgha.pki import values as pki_values
from pgha.pooler import api as pooler_api
from pgha.pooler import values as pooler_values
from pgha.pooler.deploy import deploy_pooler

HOLD = f"{haproxy_values.HOLD_SCRIPT} hold"
RELEASE = f"{haproxy_values.HOLD_SCRIPT} release"
# stopped and disabled on a Patroni member the inventory no longer lists
REMOVED_MEMBER_UNITS = [patroni_values.UNIT, pooler_values.UNIT, haproxy_values.UNIT]


def plan(cluster: Cluster, node: Node) -> snapshot.Plan:
    """What a converge reads of ``node`` in its snapshot: what every node has, and what each
    component that runs there observes."""
    base = snapshot.Plan(paths=(pki_values.TLS_DIR, firewall_values.DIRECTORY, SCRIPTS_DIR,
                                patroni_values.MARKERS_DIR))
    for component in components.COMPONENTS:
        if component.observe and component.runs_on(cluster, node):
            base = base + component.observe(cluster, node)
    return base


def begin(cluster: Cluster) -> None:
    """Every host's snapshot planned and taken before any step asks it (once per run), and
    pyinfra's operation order found without reading source files (pgha.common.op_order)."""
    op_order.install()
    snapshot.prime(state, {node.name: plan(cluster, node) for node in cluster.nodes})
    patroni_deploy.unlisted_members(cluster)  # a member removal it may not do: refused now


@dataclass(frozen=True)
class DcsChange:
    """What a change of Patroni's DCS section asks of this run (seen as it plans)."""

    anywhere: bool  # some member's section differs, or a pause is still owed
    here: bool  # this member's section differs, or its restart is still owed
    scheme: bool  # some member's REST API still speaks another scheme than pgha's


def dcs_change(cluster: Cluster, node: Node) -> DcsChange:
    anywhere = any(patroni_deploy.dcs_changed_on(cluster, other) for other in cluster.patroni)
    return DcsChange(
        anywhere=anywhere or patroni_deploy.owed("paused"),
        here=patroni_deploy.dcs_changed_on(cluster, node) or patroni_deploy.owed("restart"),
        scheme=patroni_deploy.restapi_scheme_changes(cluster),
    )


def packages(cluster: Cluster) -> None:
    """Every package the node's components install, in one step on every node at once: one
    `apt-get update` and one download a node instead of one a component (each component's
    own install step then finds them there)."""
    if host.name not in {n.name for n in cluster.nodes}:
        return
    node = cluster.node(host.name)
    if components.component("patroni").runs_on(cluster, node):
        patroni_deploy.no_default_cluster()
    wanted = components.packages_of(cluster, node)
    install_packages_without_starting("packages", wanted, cluster.settings["debian_release"])


def pause_before_dcs_change(cluster: Cluster) -> None:
    """Registered before the etcd role: when Patroni's DCS section changes, etcd may refuse
    the running daemons before they restart with the new section, and a paused leader that
    loses the DCS keeps PostgreSQL primary. ``patroni`` resumes once every daemon runs the
    new section."""
    if "patroni" not in host.groups:
        return
    node = cluster.node(host.name)
    if node is cluster.patroni[0] and any(patroni_deploy.dcs_changed_on(cluster, o) for o in cluster.patroni):
        pause = patroni_ops.paused(
            name="patroni: pause (its DCS section changes: etcd may refuse it until it restarts)",
            scope=cluster.settings["patroni_scope"],
            config_file=patroni_values.config_file(node),
        )
        patroni_deploy.note("paused", True, pause.did_change)


def etcd(cluster: Cluster) -> None:
    deploy_etcd(cluster)


def haproxy(cluster: Cluster) -> None:
    deploy_haproxy(cluster, defer_reload="patroni" in host.groups and patroni_deploy.restapi_scheme_changes(cluster))


def backup(cluster: Cluster) -> None:
    deploy_backup_hosts(cluster)


def _restart_for_dcs_change(cluster: Cluster, node: Node, change: DcsChange, was_running: bool, config) -> None:
    """Pause, hold HAProxy's view, let the running daemon take the new file by a reload
    (PostgreSQL's TLS, the REST API's scheme), reload HAProxy if the scheme moved, restart
    the daemon for its DCS section."""
    s = cluster.settings
    first = node is cluster.patroni[0]
    pause = patroni_ops.paused(
        name="patroni: pause (the DCS section changed: daemons restart)",
        scope=s["patroni_scope"], config_file=patroni_values.config_file(node),
        _if=lambda: first and change.anywhere,
    )
    patroni_deploy.note("paused", True, pause.did_change)
    # Paused, no leader can change; HAProxy would still mark the leader down while its
    # REST API changes scheme or restarts: every HAProxy keeps the members that pass their
    # check now up (again after HAProxy's own reload, which forgets it), until released
    server.shell(name="haproxy: keep the current leader and replicas up while Patroni restarts",
                 commands=[HOLD], _if=lambda: change.anywhere)
    # A new daemon connects to the running PostgreSQL with the new file's settings (TLS
    # required): the running daemon applies the file first, by a reload.
    reload_first = lambda: was_running and change.here and config.did_change()  # noqa: E731
    systemd.service(
        name="patroni: reload first (PostgreSQL and the REST API take the new file before the restart)",
        service="patroni", reloaded=True, _if=reload_first,
    )
    patroni_ops.postgres_settings_applied(
        name="patroni: PostgreSQL runs the reloaded TLS settings",
        settings={"ssl": patroni_values.TLS_PARAMETERS["ssl"]}, port=s["postgresql_port"], _if=reload_first,
    )
    systemd.service(name="haproxy: reload (Patroni's REST API now speaks HTTPS: HAProxy's checks follow)",
                    service="haproxy", reloaded=True, _if=lambda: change.scheme)
    server.shell(name="haproxy: keep the current leader and replicas up while Patroni restarts (reloaded HAProxy)",
                 commands=[HOLD], _if=lambda: change.anywhere and change.scheme)
    systemd.service(name="patroni: restart the daemon (its DCS section changed)", service="patroni",
                    restarted=True, _if=lambda: was_running and change.here)
    patroni_deploy.note("restart", False, lambda: change.here)


def _resume_after_dcs_change(cluster: Cluster, node: Node, change: DcsChange) -> None:
    """Resumed only when this deploy (or an earlier one cut short) paused: a maintenance
    mode the user set stays on."""
    s = cluster.settings
    first = node is cluster.patroni[0]
    kept = patroni_deploy.paused_by_user(cluster)
    if kept:
        patroni_ops.maintenance_mode_kept(name="patroni: maintenance mode kept (pgha pause)", _if=lambda: first)
    patroni_ops.paused(name="patroni: resume", scope=s["patroni_scope"],
                       config_file=patroni_values.config_file(node), pause=False,
                       _if=lambda: first and change.anywhere and not kept)
    patroni_deploy.note("paused", False, lambda: first and change.anywhere)
    patroni_ops.cluster_healthy(
        name="patroni: every daemon answers again (one leader, every replica streaming)",
        expected=patroni_deploy.members(cluster), port=s["patroni_restapi_port"],
        _if=lambda: first and change.anywhere,
    )
    server.shell(name="haproxy: health checks of the members resume", commands=[RELEASE],
                 _if=lambda: change.anywhere)


@contextmanager
def pooled_clients_wait(cluster: Cluster):
    """Around a restart of the leader in place: every PgBouncer paused (its clients' queries
    wait), resumed once the restarted leader takes writes through every node's HAProxy. A
    PgBouncer not deployed yet (the first deploy) or not answering: the restart goes on
    unpaused, as before the pooler."""
    try:
        pooler_api.pause(cluster)
    except pooler_api.PoolerError as error:
        logger.warning(f"    PgBouncer not paused for the leader's restart: {error}")
        yield
        return
    try:
        yield
        client.wait_for_writes_everywhere(cluster, timeout=120)
    finally:
        for problem in pooler_api.resume(cluster, list(cluster.patroni)):
            logger.warning(f"    PgBouncer not resumed (run RESUME on its admin console): {problem}")


def patroni(cluster: Cluster) -> None:
    """PostgreSQL and Patroni on the current host, if it is a member: the whole role with
    the steps a DCS change needs around it."""
    if "patroni" not in host.groups:
        return
    node = cluster.node(host.name)
    archiving = backup_values.patroni_config(cluster)
    local_parameters = patroni_values.local_parameters(archiving)
    change = dcs_change(cluster, node)
    was_running, _ = unit_state(patroni_values.UNIT)
    patroni_deploy.remove_members(cluster, node, REMOVED_MEMBER_UNITS)
    patroni_deploy.install(cluster)
    certificate = pki.certificate(cluster, node, patroni_values.TLS_SERVICE, "postgres", "postgres")
    changes_dcs = patroni_deploy.dcs_changed_on(cluster, node)
    patroni_deploy.note("restart", True, lambda: changes_dcs)  # before the new section goes live
    config = patroni_deploy.configure(cluster, node, archiving)
    patroni_deploy.role_passwords(cluster)
    patroni_deploy.start_members(cluster, node)
    _restart_for_dcs_change(cluster, node, change, was_running, config)
    patroni_deploy.reloaded(cluster, was_running, change.here, config, pki.changed(certificate))
    _resume_after_dcs_change(cluster, node, change)
    patroni_deploy.dynamic_configuration(cluster, node, local_parameters,
                                         leader_guard=lambda: pooled_clients_wait(cluster))
    patroni_deploy.check(cluster, node, client.connect_text(cluster))
    patroni_deploy.role_passwords(cluster)


def backup_checks(cluster: Cluster) -> None:
    """After Patroni: the stanza, its first backup, `pgbackrest check`."""
    stanza_and_check(cluster)


def pooler(cluster: Cluster) -> None:
    """After Patroni (the auth user and the lookup function are made on the leader):
    PgBouncer on every Patroni node."""
    deploy_pooler(cluster)


def exporters(cluster: Cluster) -> None:
    """After Patroni (the PostgreSQL exporter's role is made on the leader): the exporters of
    every node, when there is a monitoring host."""
    deploy_exporters(cluster)


def monitor(cluster: Cluster) -> None:
    """Last: Prometheus, Alertmanager and the TLS probes on the monitoring host, which then
    sees every target up."""
    deploy_monitor(cluster)
