"""Prometheus's HTTP API from the control machine (in client_networks): the firing alerts for
`pgha status`, instant queries for the tests and the benchmarks. TLS checked against the
cluster CA, basic auth with the monitoring password (never on a command line)."""

from __future__ import annotations

import requests

from pgha.cluster import Cluster
from pgha.monitor import values
from pgha.pki.authority import client_ca


def base_url(cluster: Cluster) -> str:
    node = values.monitor_host(cluster)
    return f"https://{node.address}:{cluster.settings['prometheus_port']}"


def overview_url(cluster: Cluster) -> str:
    node = values.monitor_host(cluster)
    return f"https://{node.connect_name}:{cluster.settings['prometheus_port']}/consoles/pgha.html"


def _get(cluster: Cluster, path: str, timeout: float, **params) -> dict:
    response = requests.get(f"{base_url(cluster)}{path}", params=params or None, timeout=timeout,
                            auth=(cluster.settings["monitoring_user"], cluster.secrets[values.SECRET_KEY]),
                            verify=str(client_ca(cluster)))
    response.raise_for_status()
    return response.json()["data"]


def query(cluster: Cluster, expression: str, timeout: float = 5) -> list[dict]:
    """An instant query: ``[{"metric": {...}, "value": float}]``."""
    data = _get(cluster, "/api/v1/query", timeout, query=expression)
    return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]


def alerts(cluster: Cluster, timeout: float = 5) -> list[dict]:
    """The active alerts (pending and firing): ``{"name", "state", "severity", "instance",
    "summary", "since", "labels"}``."""
    found = []
    for alert in _get(cluster, "/api/v1/alerts", timeout)["alerts"]:
        labels = alert["labels"]
        found.append({
            "name": labels["alertname"], "state": alert["state"], "severity": labels.get("severity", ""),
            "instance": labels.get("instance", ""), "summary": alert.get("annotations", {}).get("summary", ""),
            "since": alert.get("activeAt", ""), "labels": labels,
        })
    return sorted(found, key=lambda a: (a["state"] != "firing", a["name"], a["instance"]))


def firing_report(cluster: Cluster) -> tuple[list[str], list[str]]:
    """`pgha status`'s alerts section (one line per firing alert, or why there is none) and
    its problems: every firing alert but the informational ones."""
    try:
        firing = [a for a in alerts(cluster) if a["state"] == "firing"]
    except (requests.RequestException, KeyError, ValueError) as error:
        reason = f"Prometheus at {base_url(cluster)} does not answer ({type(error).__name__})"
        return [f"alerts: {reason}"], [reason]
    lines = [f"alerts: {len(firing)} firing" if firing else "alerts: none firing"]
    lines += [f"  - {a['severity']:<8} {a['name']}: {a['summary']}" for a in firing]
    problems = [f"alert {a['name']} firing: {a['summary']}" for a in firing if a["severity"] != "info"]
    return lines, problems
