"""The monitoring host's daemons and files, computed from the inventory: Prometheus's scrape
jobs (a node added appears at the next deploy), the blackbox exporter's TLS probes of every
TLS endpoint, Alertmanager's route to the receivers of group_data, and the firewall of
Prometheus's and Alertmanager's ports. Free of pyinfra."""

from __future__ import annotations

from typing import Any

from pgha.cluster import Cluster, Node
from pgha.firewall import values as firewall_values
from pgha.monitor import exporters, values
from pgha.monitor.daemons import Daemon, config_path, web_arguments
from pgha.monitor.settings import seconds
from pgha.pki import values as pki
from pgha.rendering import yaml_file

PROMETHEUS_CONFIG = config_path("prometheus.yml")
RULES_FILE = config_path("rules.yml")
ALERTMANAGER_CONFIG = config_path("alertmanager.yml")
BLACKBOX_CONFIG = config_path("blackbox.yml")
PASSWORD_FILE = config_path("password")  # Prometheus's own logins to the exporters and Alertmanager
CONSOLES_DIR = config_path("consoles")
CONSOLE_LIBRARIES_DIR = config_path("console_libraries")
OVERVIEW_PAGE = "pgha.html"  # the cluster overview, at /consoles/pgha.html
HEADER = ["Managed by pgha (deploys/monitor.py) -- changes here are overwritten."]

# the TLS probe (a blackbox exporter module): a TLS handshake, certificate checked against the
# cluster CA
TLS_MODULE = "tls"


def _labels(node: Node) -> dict:
    labels = {"instance": node.name}
    if node.patroni_name:
        labels["member"] = node.patroni_name
    return labels


def _targets(nodes: list[Node], port: int) -> list[dict]:
    return [{"targets": [f"{n.address}:{port}"], "labels": _labels(n)} for n in nodes]


def _job(name: str, nodes: list[Node], port: int, login: bool = True, path: str = "/metrics") -> dict:
    job: dict[str, Any] = {"job_name": name, "scheme": "https", "metrics_path": path,
                           "tls_config": {"ca_file": pki.CA_FILE}}
    if login:
        job["basic_auth"] = {"username": "{user}", "password_file": PASSWORD_FILE}
    job["static_configs"] = _targets(nodes, port)
    return job


def scrape_jobs(cluster: Cluster) -> list[dict]:
    """One job per kind of target; Patroni's and etcd's metrics have no password (neither
    daemon has one for them)."""
    s = cluster.settings
    monitor = [values.monitor_host(cluster)]
    jobs = [
        _job("node", cluster.nodes, s["node_exporter_port"]),
        _job("patroni", cluster.patroni, s["patroni_restapi_port"], login=False),
        _job("postgres", cluster.patroni, s["postgres_exporter_port"]),
        _job("haproxy", cluster.patroni, s["haproxy_metrics_port"]),
        _job("etcd", cluster.etcd, s["etcd_metrics_port"], login=False),
        _job("prometheus", monitor, s["prometheus_port"]),
        _job("alertmanager", monitor, s["alertmanager_port"]),
    ]
    if cluster.backup and exporters.has_pgbackrest_exporter(cluster):
        jobs.insert(5, _job("pgbackrest", cluster.backup, s["pgbackrest_exporter_port"]))
    jobs.append(tls_probe_job(cluster))
    for job in jobs:
        if "basic_auth" in job:
            job["basic_auth"]["username"] = s["monitoring_user"]
    return jobs


def tls_endpoints(cluster: Cluster, node: Node) -> list[tuple[str, int, str]]:
    """(what, port, module) of every TLS endpoint of ``node`` the monitoring host may reach.
    etcd's peer port carries the same certificate file as its client port and answers the
    members only: it is probed through the client port. PostgreSQL's TLS starts inside its own
    protocol (after an SSLRequest), which the blackbox exporter's line-based exchange cannot
    follow: PostgreSQL serves the same certificate file as Patroni's REST API, and both load
    it again at the same reload, so the REST API's probe stands for it."""
    s = cluster.settings
    found = [("node exporter", s["node_exporter_port"], TLS_MODULE)]
    if "etcd" in node.groups:
        found += [("etcd", s["etcd_client_port"], TLS_MODULE), ("etcd metrics", s["etcd_metrics_port"], TLS_MODULE)]
    if "patroni" in node.groups:
        found += [("patroni", s["patroni_restapi_port"], TLS_MODULE),
                  ("haproxy stats", s["haproxy_stats_port"], TLS_MODULE),
                  ("haproxy metrics", s["haproxy_metrics_port"], TLS_MODULE),
                  ("postgres exporter", s["postgres_exporter_port"], TLS_MODULE)]
    if ("patroni" in node.groups and cluster.backup) or "backup" in node.groups:
        found.append(("pgbackrest", s["pgbackrest_tls_port"], TLS_MODULE))
    if "backup" in node.groups and exporters.has_pgbackrest_exporter(cluster):
        found.append(("pgbackrest exporter", s["pgbackrest_exporter_port"], TLS_MODULE))
    if values.GROUP in node.groups:
        found += [("prometheus", s["prometheus_port"], TLS_MODULE), ("alertmanager", s["alertmanager_port"], TLS_MODULE)]
    return found


def tls_probe_job(cluster: Cluster) -> dict:
    """The blackbox exporter (on this host's loopback) probes each endpoint; the target's
    address goes to it as a parameter."""
    s = cluster.settings
    configs = [
        {"targets": [f"{node.address}:{port}"],
         "labels": {**_labels(node), "endpoint": what, "__param_module": module}}
        for node in cluster.nodes for what, port, module in tls_endpoints(cluster, node)
    ]
    return {
        "job_name": "tls",
        "scheme": "https",
        "metrics_path": "/probe",
        "tls_config": {"ca_file": pki.CA_FILE},
        "basic_auth": {"username": "{user}", "password_file": PASSWORD_FILE},
        "static_configs": configs,
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": f"127.0.0.1:{s['blackbox_exporter_port']}"},
        ],
    }


def prometheus_config(cluster: Cluster) -> str:
    s = cluster.settings
    interval = s["monitoring_scrape_interval"]
    timeout = interval if seconds(interval) < 10 else "10s"
    monitor = values.monitor_host(cluster)
    document = {
        "global": {"scrape_interval": interval, "scrape_timeout": timeout, "evaluation_interval": interval,
                   "external_labels": {"scope": s["patroni_scope"]}},
        "rule_files": [RULES_FILE],
        "alerting": {"alertmanagers": [{
            "scheme": "https",
            "tls_config": {"ca_file": pki.CA_FILE},
            "basic_auth": {"username": s["monitoring_user"], "password_file": PASSWORD_FILE},
            "static_configs": [{"targets": [f"{monitor.address}:{s['alertmanager_port']}"]}],
        }]},
        "scrape_configs": scrape_jobs(cluster),
    }
    return yaml_file(HEADER, document)


def blackbox_config() -> str:
    tls = {"ca_file": pki.CA_FILE}
    document = {"modules": {TLS_MODULE: {"prober": "tcp", "timeout": "5s", "tcp": {"tls": True, "tls_config": tls}}}}
    return yaml_file(HEADER, document)


def receiver(cluster: Cluster) -> dict:
    """Alertmanager's one receiver: the webhook and the e-mail address of group_data (none
    set: the alerts show in Prometheus, Alertmanager and `pgha status` only)."""
    s = cluster.settings
    found: dict = {"name": "pgha"}
    if s["alert_webhook_url"]:
        found["webhook_configs"] = [{"url": s["alert_webhook_url"], "send_resolved": True}]
    if s["alert_email_to"]:
        found["email_configs"] = [{"to": s["alert_email_to"], "send_resolved": True}]
    return found


def alertmanager_config(cluster: Cluster) -> str:
    s = cluster.settings
    document: dict = {}
    if s["alert_email_to"]:
        document["global"] = {"smtp_smarthost": s["alert_email_smarthost"], "smtp_from": s["alert_email_from"],
                              "smtp_require_tls": s["alert_email_require_tls"]}
    document["route"] = {
        "receiver": "pgha",
        # one notification per alert and member: a killed replica is named at once
        "group_by": ["alertname", "scope", "instance"],
        "group_wait": "10s",
        "group_interval": s["alert_group_interval"],
        "repeat_interval": s["alert_repeat_interval"],
    }
    document["receivers"] = [receiver(cluster)]
    return yaml_file(HEADER, document)


def daemons(cluster: Cluster, node: Node) -> list[Daemon]:
    """Prometheus, Alertmanager and the blackbox exporter, on the monitoring host."""
    if values.GROUP not in node.groups:
        return []
    s = cluster.settings
    name = node.connect_name
    return [
        Daemon(
            unit="prometheus", package="prometheus",
            why="Prometheus: pgha's scrape jobs, rules and console; TLS and basic auth",
            arguments=(f"--config.file={PROMETHEUS_CONFIG}", *web_arguments(s["prometheus_port"]),
                       f"--storage.tsdb.retention.time={s['monitoring_retention']}",
                       f"--web.console.templates={CONSOLES_DIR}", f"--web.console.libraries={CONSOLE_LIBRARIES_DIR}",
                       f"--web.external-url=https://{name}:{s['prometheus_port']}/"),
            port_setting="prometheus_port",
        ),
        Daemon(
            unit="prometheus-alertmanager", package="prometheus-alertmanager",
            why="Alertmanager: one instance (no cluster port), TLS and basic auth",
            arguments=(f"--config.file={ALERTMANAGER_CONFIG}", *web_arguments(s["alertmanager_port"]),
                       "--cluster.listen-address=", f"--web.external-url=https://{name}:{s['alertmanager_port']}/"),
            port_setting="alertmanager_port",
        ),
        Daemon(
            unit="prometheus-blackbox-exporter", package="prometheus-blackbox-exporter",
            why="the TLS probes of every endpoint's certificate, on the loopback only",
            arguments=(f"--config.file={BLACKBOX_CONFIG}",
                       f"--web.listen-address=127.0.0.1:{s['blackbox_exporter_port']}",
                       f"--web.config.file={values.WEB_CONFIG}"),
            port_setting="blackbox_exporter_port",
        ),
    ]


def packages(cluster: Cluster, node: Node) -> list[str]:
    """The daemons' packages, and curl for the deploy's check of Prometheus."""
    return [d.package for d in daemons(cluster, node)] + ["curl"]


def firewall(cluster: Cluster) -> dict:
    """Prometheus's and Alertmanager's pages and APIs answer client_networks only."""
    s = cluster.settings
    return firewall_values.table(
        "monitor",
        "Prometheus and Alertmanager answer client_networks only (besides their TLS and password).",
        {"clients": ([s["prometheus_port"], s["alertmanager_port"]], list(s["client_networks"]))},
    )


def checks(daemon: Daemon) -> str | None:
    """The daemon's own checker of a candidate configuration file (its command for ``{candidate}``)."""
    return {
        "prometheus": "promtool check config {candidate}",
        "prometheus-alertmanager": "amtool check-config {candidate}",
        "prometheus-blackbox-exporter": "prometheus-blackbox-exporter --config.check --config.file={candidate}",
    }.get(daemon.unit)
