"""The component registry: what each deployable part of the cluster brings, in one place.

Per component: the inventory groups of its hosts and where it runs, its settings (their
schema; their values are in group_data/all.py), its checks across settings and topology, the
ports it listens on and who may reach each (the distinct-port check, the firewalls' and the
port scan's expectations), its secrets, its operations module (tested by
tests/unit/operations/<name>.*) and its deploy file. The settings check, Cluster ports,
the secrets file and the operation-test runner read it; tests/unit/test_components.py fails
when a registered component lacks its deploy file, its line in deploys/all.py, its defaults
or its row in docs/settings.md.

Adding a component: its package pgha/<name>/ (settings.py, values.py, facts.py,
operations.py, deploy.py, templates/), its deploy file deploys/<name>.py, an entry here,
its line in deploys/all.py, its defaults in group_data/all.py (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgha.backup import facts as backup_facts
from pgha.backup import settings as backup_settings
from pgha.backup import values as backup_values
from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan
from pgha.etcd import checks as etcd_checks
from pgha.etcd import facts as etcd_facts
from pgha.etcd import settings as etcd_settings
from pgha.etcd import values as etcd_values
from pgha.haproxy import facts as haproxy_facts
from pgha.haproxy import settings as haproxy_settings
from pgha.haproxy import values as haproxy_values
from pgha.monitor import exporters as monitor_exporters
from pgha.monitor import facts as monitor_facts
from pgha.monitor import rules as monitor_rules
from pgha.monitor import server as monitor_server
from pgha.monitor import settings as monitor_settings
from pgha.monitor import values as monitor_values
from pgha.patroni import checks as patroni_checks
from pgha.patroni import facts as patroni_facts
from pgha.patroni import settings as patroni_settings
from pgha.patroni import values as patroni_values
from pgha.pooler import facts as pooler_facts
from pgha.pooler import settings as pooler_settings
from pgha.pooler import values as pooler_values
from pgha.validators import Setting

# Who may reach a port: the networks of client_networks, those of etcd_client_networks (and
# the Patroni nodes), the cluster's own nodes only, the monitoring host only, or nobody but
# the host itself.
CLIENTS, ETCD_CLIENTS, MEMBERS, MONITOR, LOOPBACK = "clients", "etcd clients", "members", "monitoring host", "loopback"
AUDIENCES = (CLIENTS, ETCD_CLIENTS, MEMBERS, MONITOR, LOOPBACK)


@dataclass(frozen=True)
class Port:
    """A port only some of a component's nodes listen on."""

    audience: str
    where: Callable[[Cluster, Node], bool]


def audience_of(port: str | Port) -> str:
    return port.audience if isinstance(port, Port) else port


@dataclass(frozen=True)
class Secret:
    key: str  # in the secrets file
    added_later: bool = False  # generated into an existing secrets file at the next deploy
    fixed: str | None = None  # why it can never be rotated (None: `pgha rotate` changes it)


@dataclass(frozen=True)
class Component:
    name: str
    summary: str
    groups: tuple[str, ...]  # the inventory groups it brings
    runs_on: Callable[[Cluster, Node], bool]
    settings: dict[str, Setting]
    # port setting -> who may reach it (a Port: and on which of its nodes it listens)
    ports: dict[str, str | Port] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()
    problems: Callable[[Cluster], list[str]] | None = None
    # what a converge reads of a node where it runs, in one round trip (pgha.common.snapshot)
    observe: Callable[[Cluster, Node], Plan] | None = None
    # the Debian packages it installs where it runs (pgha.rollout installs them all at once)
    packages: Callable[[Cluster, Node], list[str]] = lambda cluster, node: []
    # its daemons where it runs, and how an update of its packages refreshes each ("restart"
    # or "reload"; pgha.upgrade: Patroni's and etcd's one member at a time)
    units: Callable[[Cluster, Node], dict[str, str]] = lambda cluster, node: {}
    operations: str | None = None  # the module of its @operation()s
    deploy: str = ""  # its deploy file, from the repository root


def _in(group: str) -> Callable[[Cluster, Node], bool]:
    return lambda cluster, node: group in node.groups


def _pgbackrest_runs_on(cluster: Cluster, node: Node) -> bool:
    return "backup" in node.groups or ("patroni" in node.groups and backup_values.enabled(cluster))


def _patroni_observed(cluster: Cluster, node: Node) -> Plan:
    archiving = backup_values.patroni_config(cluster)
    return patroni_facts.observed(cluster, node, patroni_values.local_parameters(archiving))


COMPONENTS: tuple[Component, ...] = (
    Component(
        name="etcd",
        summary="the DCS: three (or five) etcd members, TLS and logins",
        groups=("etcd",),
        runs_on=_in("etcd"),
        settings=etcd_settings.SETTINGS,
        ports={"etcd_client_port": ETCD_CLIENTS, "etcd_peer_port": MEMBERS},
        secrets=(Secret("etcd_root_password", added_later=True), Secret("etcd_patroni_password", added_later=True)),
        problems=etcd_checks.problems,
        observe=etcd_facts.observed,
        packages=lambda cluster, node: etcd_values.PACKAGES,
        units=lambda cluster, node: {etcd_values.UNIT: "restart"},
        operations="pgha.etcd.operations",
        deploy="deploys/etcd.py",
    ),
    Component(
        name="haproxy",
        summary="on every Patroni node: 5432 to the leader, 5433 to the replicas, stats, the etcd proxy",
        groups=(),
        runs_on=_in("patroni"),
        settings=haproxy_settings.SETTINGS,
        ports={"haproxy_rw_port": CLIENTS, "haproxy_ro_port": CLIENTS, "haproxy_stats_port": CLIENTS,
               "haproxy_etcd_port": LOOPBACK},
        secrets=(Secret("haproxy_stats_password"),),
        observe=haproxy_facts.observed,
        packages=lambda cluster, node: haproxy_values.PACKAGES,
        units=lambda cluster, node: {haproxy_values.UNIT: "reload"},  # master-worker: the new binary, no session lost
        deploy="deploys/haproxy.py",
    ),
    Component(
        name="patroni",
        summary="PostgreSQL and Patroni on the `patroni` group: one leader, streaming replicas",
        groups=("patroni",),
        runs_on=_in("patroni"),
        settings=patroni_settings.SETTINGS,
        ports={"postgresql_port": CLIENTS, "patroni_restapi_port": CLIENTS},
        secrets=(Secret("superuser_password"), Secret("replication_password"), Secret("admin_password"),
                 Secret("restapi_password")),
        problems=patroni_checks.problems,
        observe=_patroni_observed,
        packages=lambda cluster, node: patroni_values.packages(cluster.settings),
        units=lambda cluster, node: {patroni_values.UNIT: "restart"},
        operations="pgha.patroni.operations",
        deploy="deploys/patroni.py",
    ),
    Component(
        name="backup",
        summary="pgBackRest: the repository host, WAL archiving, backups, point-in-time recovery",
        groups=("backup",),
        runs_on=_pgbackrest_runs_on,
        settings=backup_settings.SETTINGS,
        ports={"pgbackrest_tls_port": MEMBERS},
        secrets=(Secret(backup_values.SECRET_KEY, added_later=True, fixed=backup_values.FIXED_REASON),),
        problems=backup_values.problems,
        observe=backup_facts.observed,
        packages=lambda cluster, node: backup_values.PACKAGES,
        units=lambda cluster, node: {f"{backup_values.SERVER_UNIT}.service": "restart"},
        operations="pgha.backup.operations",
        deploy="deploys/backup.py",
    ),
    Component(
        name="pooler",
        summary="PgBouncer on every Patroni node: pooled connections that outlive a switchover",
        groups=(),
        runs_on=_in("patroni"),
        settings=pooler_settings.SETTINGS,
        ports={"pgbouncer_port": CLIENTS},
        secrets=(Secret(pooler_values.SECRET_KEY, added_later=True),),
        problems=pooler_values.problems,
        observe=pooler_facts.observed,
        packages=lambda cluster, node: pooler_values.PACKAGES,
        units=lambda cluster, node: {pooler_values.UNIT: "restart"},
        operations="pgha.pooler.operations",
        deploy="deploys/pooler.py",
    ),
    Component(
        name="exporters",
        summary="with a monitoring host: the exporters on every node, etcd's and HAProxy's metrics",
        groups=(),
        runs_on=lambda cluster, node: monitor_values.enabled(cluster),
        settings=monitor_settings.EXPORTER_SETTINGS,
        ports={"node_exporter_port": MONITOR,
               "postgres_exporter_port": Port(MONITOR, _in("patroni")),
               "pgbackrest_exporter_port": Port(MONITOR, lambda cluster, node: "backup" in node.groups
                                                and monitor_exporters.has_pgbackrest_exporter(cluster)),
               "etcd_metrics_port": Port(MONITOR, _in("etcd")),
               "haproxy_metrics_port": Port(MONITOR, _in("patroni"))},
        secrets=(Secret(monitor_values.SECRET_KEY, added_later=True),),
        problems=monitor_values.problems,
        observe=monitor_facts.observed,
        packages=monitor_exporters.packages,
        units=lambda cluster, node: {f"{d.unit}.service": "restart" for d in monitor_exporters.daemons(cluster, node)},
        operations="pgha.monitor.operations",
        deploy="deploys/exporters.py",
    ),
    Component(
        name="monitor",
        summary="Prometheus, Alertmanager and the TLS probes on the `monitor` host; the overview page",
        groups=("monitor",),
        runs_on=_in("monitor"),
        settings=monitor_settings.MONITOR_SETTINGS,
        ports={"prometheus_port": CLIENTS, "alertmanager_port": CLIENTS, "blackbox_exporter_port": LOOPBACK},
        problems=monitor_rules.problems,
        observe=monitor_facts.monitor_observed,
        packages=monitor_server.packages,
        units=lambda cluster, node: {f"{d.unit}.service": "restart" for d in monitor_server.daemons(cluster, node)},
        operations="pgha.monitor.operations",
        deploy="deploys/monitor.py",
    ),
)

# every inventory group of the cluster, in deploy order
GROUPS: tuple[str, ...] = tuple(g for c in COMPONENTS for g in c.groups)


def component(name: str) -> Component:
    return next(c for c in COMPONENTS if c.name == name)


def settings() -> dict[str, Setting]:
    """Every component's settings schema, merged."""
    return {key: value for c in COMPONENTS for key, value in c.settings.items()}


def secrets() -> tuple[Secret, ...]:
    return tuple(s for c in COMPONENTS for s in c.secrets)


def packages_of(cluster: Cluster, node: Node) -> list[str]:
    """Every Debian package the components that run on ``node`` install."""
    return list(dict.fromkeys(p for c in COMPONENTS if c.runs_on(cluster, node) for p in c.packages(cluster, node)))


def units_to_refresh(cluster: Cluster, node: Node, updated: set[str]) -> dict[str, str]:
    """The daemons of ``node`` to restart or reload once ``updated`` (package names) are
    installed: those of each component one of whose own packages updated (a package several
    of the node's components install, such as nftables, runs no daemon of theirs)."""
    running = [c for c in COMPONENTS if c.runs_on(cluster, node)]
    listed = [p for c in running for p in c.packages(cluster, node)]
    shared = {p for p in listed if listed.count(p) > 1}
    units: dict[str, str] = {}
    for c in running:
        if (set(c.packages(cluster, node)) - shared) & updated:
            units.update(c.units(cluster, node))
    return units


def ports_of(cluster: Cluster, node: Node, audiences: tuple[str, ...] | None = None) -> dict[str, int | None]:
    """Every port ``node`` listens on, by setting name (only those for ``audiences``)."""
    return {
        setting: cluster.settings.get(setting)
        for c in COMPONENTS if c.runs_on(cluster, node)
        for setting, port in c.ports.items()
        if (not isinstance(port, Port) or port.where(cluster, node))
        and (audiences is None or audience_of(port) in audiences)
    }


def problems(cluster: Cluster) -> list[str]:
    return [p for c in COMPONENTS if c.problems for p in c.problems(cluster)]
