"""The monitoring's settings: name -> (predicate, what is expected). Values: group_data/all.py.

Two components share them (pgha.components): the exporters on every node, and Prometheus,
Alertmanager and the blackbox exporter on the `monitor` host."""

from __future__ import annotations

import re

from pgha.validators import BOOL, PORT, Setting, is_int, is_name

# Prometheus's durations: 30s, 5m, 1h30m, 15d
PROM_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
DURATION_EXPECTED = "a Prometheus duration such as 30s, 5m, 1h or 15d"


def is_prom_duration(value) -> bool:
    return isinstance(value, str) and PROM_DURATION.match(value) is not None


def _url(value) -> bool:
    return value is None or (isinstance(value, str) and re.match(r"^https?://[^\s/]+(/\S*)?$", value) is not None)


def _address(value) -> bool:
    return value is None or (isinstance(value, str) and re.match(r"^[A-Za-z0-9.-]+:\d{1,5}$", value) is not None)


def _email(value) -> bool:
    return value is None or (isinstance(value, str) and re.match(r"^[^@\s,]+@[^@\s,]+$", value) is not None)


DURATION: Setting = (is_prom_duration, DURATION_EXPECTED)

# on every node (the exporters), and the metrics listeners of etcd and HAProxy
EXPORTER_SETTINGS: dict[str, Setting] = {
    "node_exporter_port": PORT,
    "postgres_exporter_port": PORT,
    "pgbackrest_exporter_port": PORT,
    "etcd_metrics_port": PORT,
    "haproxy_metrics_port": PORT,
    "monitoring_postgres_role": (is_name, "a PostgreSQL role name (the exporter's, a member of pg_monitor only)"),
}

# on the monitoring host
MONITOR_SETTINGS: dict[str, Setting] = {
    "prometheus_port": PORT,
    "alertmanager_port": PORT,
    "blackbox_exporter_port": PORT,
    "monitoring_user": (is_name, "a user name (basic auth of Prometheus, Alertmanager and every exporter)"),
    "monitoring_scrape_interval": DURATION,
    "monitoring_retention": DURATION,
    "alert_webhook_url": (_url, "None or an http(s) URL Alertmanager posts the alerts to"),
    "alert_email_to": (_email, "None or an e-mail address the alerts are sent to"),
    "alert_email_from": (_email, "None or the sender's e-mail address"),
    "alert_email_smarthost": (_address, "None or the SMTP relay as host:port"),
    "alert_email_require_tls": BOOL,
    "alert_repeat_interval": DURATION,
    "alert_group_interval": DURATION,
    "alert_down_for": DURATION,
    "alert_paused_for": DURATION,
    "alert_pending_restart_for": DURATION,
    "alert_failover_window": DURATION,
    "alert_backup_max_age": (
        lambda v: v is None or is_prom_duration(v),
        f"None (the longest gap between the scheduled backups, plus alert_backup_grace) or {DURATION_EXPECTED}",
    ),
    "alert_backup_grace": DURATION,
    "alert_certificate_days": (is_int(1), "a number of days, at least 1"),
    "alert_filesystem_free_percent": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 50, "a percentage from 1 to 50",
    ),
}


UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration in seconds."""
    if not is_prom_duration(duration):
        raise ValueError(f"{duration!r}: expected {DURATION_EXPECTED}")
    return sum(int(number) * UNITS[unit] for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))
