"""The exporters on the cluster's nodes, computed from the topology: the node exporter on
every node, the PostgreSQL exporter on every Patroni node, pgBackRest's on the repository host,
and the firewall table that lets the monitoring host alone reach them. (Patroni, etcd and
HAProxy serve their own metrics: pgha.monitor.scrape scrapes them.) Free of pyinfra."""

from __future__ import annotations

from pgha.backup.values import CONFIG_FILE as BACKREST_CONFIG
from pgha.backup.values import REPO_USER
from pgha.cluster import Cluster, Node
from pgha.firewall import values as firewall_values
from pgha.monitor import values
from pgha.monitor.daemons import Daemon, config_path, web_arguments
from pgha.postgres import SOCKET_DIR
from pgha.rendering import yaml_file

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's, read by the node exporter
POSTGRES_QUERIES = config_path("postgres-queries.yml")
# on bookworm (no pgBackRest exporter): a timer writes its metrics for the node exporter
PGBACKREST_TEXTFILE = f"{TEXTFILE_DIR}/pgbackrest.prom"
PGBACKREST_TEXTFILE_UNIT = "pgha-pgbackrest-metrics"
PGBACKREST_TEXTFILE_SCRIPT = "/usr/local/lib/pgha/pgbackrest-metrics"
PGBACKREST_WEB_CONFIG = config_path("web-pgbackrest.yml")  # readable by the repository's user
PGBACKREST_TLS_SERVICE = "monitoring-pgbackrest"
# seconds between two `pgbackrest info` of the exporter (Debian's default: 600)
PGBACKREST_COLLECT_SECONDS = 60

# What the PostgreSQL exporter asks besides its defaults: the same on bookworm's 0.11 and
# trixie's 0.17, which differ in their own replication metrics (0.11 has none that says
# whether a replica streams). pg_monitor reads all three.
POSTGRES_QUERIES_DOCUMENT = {
    "pgha_postgres": {
        "query": (
            "SELECT CASE WHEN pg_is_in_recovery() THEN 0 ELSE 1 END AS primary, "
            "(SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming, "
            "(SELECT CASE WHEN last_failed_time > coalesce(last_archived_time, 'epoch') THEN 1 ELSE 0 END "
            "FROM pg_stat_archiver) AS archiving_failing"
        ),
        "metrics": [
            {"primary": {"usage": "GAUGE", "description": "1 when PostgreSQL runs as a primary (not in recovery)"}},
            {"streaming": {"usage": "GAUGE", "description": "1 when the WAL receiver streams from the primary"}},
            {"archiving_failing": {"usage": "GAUGE",
                                   "description": "1 when the last archive_command failed after the last success"}},
        ],
    },
}


def has_pgbackrest_exporter(cluster: Cluster) -> bool:
    """Debian ships prometheus-pgbackrest-exporter from trixie on."""
    return cluster.settings.get("debian_release") != "bookworm"


def postgres_dsn(cluster: Cluster) -> str:
    """The local socket, as the exporter's role (peer authentication through the ident map):
    no password anywhere. Single spaces: the exporter splits the DSN on them."""
    s = cluster.settings
    return f"host={SOCKET_DIR} port={s['postgresql_port']} user={s['monitoring_postgres_role']} dbname=postgres"


def daemons(cluster: Cluster, node: Node) -> list[Daemon]:
    """The exporters pgha runs on ``node`` (none without a monitoring host)."""
    if not values.enabled(cluster):
        return []
    s = cluster.settings
    found = [Daemon(
        unit="prometheus-node-exporter", package="prometheus-node-exporter",
        why="the node's metrics (and the text files of pgha's timers), TLS and basic auth",
        arguments=(*web_arguments(s["node_exporter_port"]), f"--collector.textfile.directory={TEXTFILE_DIR}"),
        port_setting="node_exporter_port",
    )]
    if "patroni" in node.groups:
        found.append(Daemon(
            unit="prometheus-postgres-exporter", package="prometheus-postgres-exporter",
            why="PostgreSQL's statistics over the local socket, as a pg_monitor role; TLS and basic auth",
            arguments=(*web_arguments(s["postgres_exporter_port"]), f"--extend.query-path={POSTGRES_QUERIES}"),
            port_setting="postgres_exporter_port",
            environment={"DATA_SOURCE_NAME": postgres_dsn(cluster)},
            reloads=False,
        ))
    if "backup" in node.groups and has_pgbackrest_exporter(cluster):
        found.append(Daemon(
            unit="prometheus-pgbackrest-exporter", package="prometheus-pgbackrest-exporter",
            why="the repository's backups and WAL archive (pgbackrest info, as the repository's user)",
            arguments=(*web_arguments(s["pgbackrest_exporter_port"], PGBACKREST_WEB_CONFIG),
                       f"--backrest.config={BACKREST_CONFIG}", f"--collect.interval={PGBACKREST_COLLECT_SECONDS}"),
            port_setting="pgbackrest_exporter_port",
            user=REPO_USER, tls_service=PGBACKREST_TLS_SERVICE, web_config=PGBACKREST_WEB_CONFIG,
            reloads=False,
        ))
    return found


def pgbackrest_textfile(cluster: Cluster, node: Node) -> bool:
    """Whether the repository host writes pgBackRest's metrics for the node exporter instead."""
    return values.enabled(cluster) and "backup" in node.groups and not has_pgbackrest_exporter(cluster)


def packages(cluster: Cluster, node: Node) -> list[str]:
    found = [d.package for d in daemons(cluster, node)]
    if pgbackrest_textfile(cluster, node):
        found.append("jq")  # the timer's script reads `pgbackrest info --output=json`
    return found + (["nftables"] if found else [])


def queries_text() -> str:
    return yaml_file(["Managed by pgha (pgha/monitor): the PostgreSQL exporter's own queries."],
                     POSTGRES_QUERIES_DOCUMENT)


def firewall(cluster: Cluster, node: Node) -> dict | None:
    """The exporters' ports answer the monitoring host only."""
    ports = [cluster.settings[d.port_setting] for d in daemons(cluster, node) if d.port_setting]
    if not ports:
        return None
    return firewall_values.table(
        "exporters",
        "the exporters answer the monitoring host only (besides their TLS and password).",
        {"monitoring": (ports, values.scrapers(cluster))},
    )


def textfile_values(cluster: Cluster) -> dict:
    """The bookworm timer's script: the same metric names as trixie's exporter."""
    return {
        "stanza": cluster.settings["patroni_scope"],
        "config": BACKREST_CONFIG,
        "output": PGBACKREST_TEXTFILE,
        "interval": PGBACKREST_COLLECT_SECONDS,
        "user": REPO_USER,
        "script": PGBACKREST_TEXTFILE_SCRIPT,
        "unit": PGBACKREST_TEXTFILE_UNIT,
    }
