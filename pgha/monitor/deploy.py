"""The monitoring's deploy steps: on every node its exporters (their TLS copy, web
configuration, firewall, drop-ins), on the leader the exporter's role; on the monitoring host
Prometheus, Alertmanager and the blackbox exporter, each configuration checked by its daemon's
own tool before it goes live and taken by a reload, then every target seen up."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import server as server_ops
from pyinfra.operations import systemd

from pgha.cluster import Cluster, Node
from pgha.common.deploy import checked_file, install_packages_without_starting
from pgha.common.operations import directory_in_place, file_in_place, unit_running, unit_state
from pgha.common.step import step
from pgha.firewall.deploy import firewall as firewall_table
from pgha.monitor import exporters, rules, server, values
from pgha.monitor import operations as monitor_ops
from pgha.monitor.daemons import Daemon, dropin
from pgha.monitor.facts import PROMETHEUS_CURLRC
from pgha.pki import deploy as pki
from pgha.pki import values as pki_values
from pgha.rendering import render


def _web_configs(cluster: Cluster, daemons: list[Daemon]) -> None:
    """Each distinct web configuration of these daemons, with its copy of the node's
    certificate (the password's bcrypt hash: readable by the daemon's user only). The exporter
    toolkit reads both again at each request: a change needs no restart."""
    node = cluster.node(host.name)
    for daemon in {d.web_config: d for d in daemons}.values():
        pki.certificate(cluster, node, daemon.tls_service, daemon.user, daemon.user)
        checked_file("monitoring", daemon.web_config, values.web_config(cluster, daemon.tls_service), validate=None,
                     user="root", group=daemon.user, mode="640")


def _daemon(daemon: Daemon, config_changed) -> None:
    """Its drop-in, then running; when it ran before, restarted if its drop-in changed (or
    its configuration, for a daemon that cannot reload), else reloaded if its configuration
    changed."""
    dropin_file = file_in_place(name=f"{daemon.unit}: drop-in with pgha's arguments", path=daemon.dropin_file,
                                content=render(values.TEMPLATES / "dropin.conf.j2", dropin(daemon)))
    systemd.daemon_reload(name=f"{daemon.unit}: systemd reload (drop-in)", _if=dropin_file.did_change)
    was_running, _ = unit_state(f"{daemon.unit}.service")
    unit_running(name=f"{daemon.unit}: enabled and running", unit=f"{daemon.unit}.service")
    restart = lambda: was_running and (dropin_file.did_change() or (not daemon.reloads and config_changed()))  # noqa: E731
    systemd.service(name=f"{daemon.unit}: restart (its arguments changed)", service=daemon.unit, restarted=True,
                    _if=restart)
    if daemon.reloads:
        systemd.service(name=f"{daemon.unit}: reload (its configuration changed)", service=daemon.unit, reloaded=True,
                        _if=lambda: was_running and config_changed() and not restart())


@step("exporters: install and configure")
def install_exporters(cluster: Cluster, node: Node, daemons: list[Daemon]):
    install_packages_without_starting("exporters", exporters.packages(cluster, node), cluster.settings["debian_release"])
    directory_in_place(name=f"monitoring: {values.DIRECTORY}", path=values.DIRECTORY, mode="755")
    firewall = exporters.firewall(cluster, node)
    if firewall:
        firewall_table("exporters", firewall, before=" ".join(f"{d.unit}.service" for d in daemons))
    queries = None
    if "patroni" in node.groups:
        queries = file_in_place(name="prometheus-postgres-exporter: pgha's queries", path=exporters.POSTGRES_QUERIES,
                                content=exporters.queries_text())
    _web_configs(cluster, daemons)
    for daemon in daemons:
        watched = [queries] if daemon.unit == "prometheus-postgres-exporter" and queries is not None else []
        _daemon(daemon, lambda watched=watched: any(op.did_change() for op in watched))


@step("exporters: pgBackRest's metrics from a timer (no pgBackRest exporter on this release)")
def pgbackrest_textfile(cluster: Cluster):
    config = exporters.textfile_values(cluster)
    script = file_in_place(name="pgbackrest metrics: the script", path=config["script"], mode="755",
                           content=render(values.TEMPLATES / "pgbackrest-metrics.sh.j2", config))
    units = [file_in_place(name=f"pgbackrest metrics: {config['unit']}.{suffix}",
                           path=f"/etc/systemd/system/{config['unit']}.{suffix}",
                           content=render(values.TEMPLATES / f"pgbackrest-metrics.{suffix}.j2", config))
             for suffix in ("service", "timer")]
    systemd.daemon_reload(name="pgbackrest metrics: systemd reload", _if=lambda: any(u.did_change() for u in units))
    unit_running(name=f"pgbackrest metrics: {config['unit']}.timer enabled and active", unit=f"{config['unit']}.timer")
    server_ops.shell(name="pgbackrest metrics: written once now", commands=[f"systemctl start {config['unit']}.service"],
                     _if=lambda: script.did_change() or any(u.did_change() for u in units))


@step("exporters: the PostgreSQL exporter's role")
def exporter_role(cluster: Cluster):
    s = cluster.settings
    monitor_ops.exporter_role(
        name=f"postgres exporter: role {s['monitoring_postgres_role']} (pg_monitor, no password: the local "
             "socket's ident map) on the leader",
        role=s["monitoring_postgres_role"], port=s["postgresql_port"], restapi_port=s["patroni_restapi_port"],
        superuser=s["patroni_superuser"],
    )


def deploy_exporters(cluster: Cluster) -> None:
    """The exporters of the current host (nothing without a monitoring host)."""
    if host.name not in {n.name for n in cluster.nodes}:
        return
    node = cluster.node(host.name)
    daemons = exporters.daemons(cluster, node)
    if not daemons:
        return
    install_exporters(cluster, node, daemons)
    if exporters.pgbackrest_textfile(cluster, node):
        pgbackrest_textfile(cluster)
    if "patroni" in node.groups:
        exporter_role(cluster)


def _prometheus_curlrc(cluster: Cluster) -> str:
    login = f"{cluster.settings['monitoring_user']}:{cluster.secrets[values.SECRET_KEY]}"
    quoted = login.replace("\\", "\\\\").replace('"', '\\"')
    return (f"# Managed by pgha: curl's login to the local Prometheus (the deploy's check).\n"
            f'user = "{quoted}"\ncacert = "{pki_values.CA_FILE}"\n')


@step("monitor: Prometheus, Alertmanager, the blackbox exporter")
def monitor_host(cluster: Cluster, node: Node):
    s = cluster.settings
    daemons = server.daemons(cluster, node)
    install_packages_without_starting("monitor", server.packages(cluster, node), s["debian_release"])
    firewall_table("monitor", server.firewall(cluster), before=" ".join(f"{d.unit}.service" for d in daemons[:2]))
    for path in (server.CONSOLES_DIR, server.CONSOLE_LIBRARIES_DIR):
        directory_in_place(name=f"monitor: {path}", path=path, mode="755")
    secret = file_in_place(name=f"monitor: {server.PASSWORD_FILE} (Prometheus's logins)", path=server.PASSWORD_FILE,
                           content=cluster.secrets[values.SECRET_KEY], group=values.USER, mode="640")
    file_in_place(name=f"monitor: {PROMETHEUS_CURLRC}", path=PROMETHEUS_CURLRC, content=_prometheus_curlrc(cluster),
                  mode="600")
    changed = {
        "prometheus": [
            checked_file("prometheus", server.RULES_FILE, rules.rules_text(cluster),
                         validate=lambda c: f"promtool check rules {c}", user="root", group=values.USER, mode="644"),
            checked_file("prometheus", server.PROMETHEUS_CONFIG, server.prometheus_config(cluster),
                         validate=lambda c: f"promtool check config {c}", user="root", group=values.USER, mode="644"),
            file_in_place(name=f"prometheus: the overview page {server.CONSOLES_DIR}/{server.OVERVIEW_PAGE}",
                          path=f"{server.CONSOLES_DIR}/{server.OVERVIEW_PAGE}",
                          content=(values.TEMPLATES / server.OVERVIEW_PAGE).read_bytes()),
            secret,
        ],
        "prometheus-alertmanager": [
            checked_file("alertmanager", server.ALERTMANAGER_CONFIG, server.alertmanager_config(cluster),
                         validate=lambda c: f"amtool check-config {c}", user="root", group=values.USER, mode="640"),
        ],
        "prometheus-blackbox-exporter": [
            checked_file("blackbox", server.BLACKBOX_CONFIG, server.blackbox_config(),
                         validate=lambda c: f"prometheus-blackbox-exporter --config.check --config.file={c}",
                         user="root", group=values.USER, mode="644"),
        ],
    }
    _web_configs(cluster, daemons)
    for daemon in daemons:
        _daemon(daemon, lambda ops=changed[daemon.unit]: any(op.did_change() for op in ops))


def jobs(cluster: Cluster) -> list[str]:
    return [job["job_name"] for job in server.scrape_jobs(cluster)]


def deploy_monitor(cluster: Cluster) -> None:
    """The monitoring host's daemons, then every target up."""
    if values.GROUP not in host.groups:
        return
    monitor_host(cluster, cluster.node(host.name))
    monitor_ops.targets_up(name="monitor: Prometheus scrapes every target, and every TLS probe passes",
                           port=cluster.settings["prometheus_port"], jobs=jobs(cluster))
