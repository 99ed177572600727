"""What the monitoring is made of, computed from the topology: where it runs, its files and
packages, who may reach its ports, its password's hash. Free of pyinfra; the exporters'
values are in pgha.monitor.exporters, Prometheus's scrape jobs in pgha.monitor.scrape, the
alert rules in pgha.monitor.rules.

Everything speaks TLS with the node's certificate from the cluster CA and asks for basic auth
(`monitoring_user`, `monitoring_password` from the secrets file) through one web
configuration file per node, the exporter toolkit's format, which every Prometheus binary
reads again at each request: a new password needs no restart. etcd's and Patroni's metrics
have TLS and no password (neither daemon has one for them): their firewall answers the
monitoring host and the cluster's own clients only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from pathlib import Path

import bcrypt

from pgha.cluster import Cluster, Node
from pgha.monitoring import GROUP, SECRET_KEY, USER, enabled, scrapers  # noqa: F401 (pgha.monitor's names)
from pgha.pki import values as pki
from pgha.rendering import yaml_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
TLS_SERVICE = "monitoring"  # the exporters' copy of the node's certificate (pgha.pki)
DIRECTORY = "/etc/pgha/monitoring"
WEB_CONFIG = f"{DIRECTORY}/web.yml"  # TLS and basic auth of every exporter on the node
BCRYPT_COST = 10


def monitor_host(cluster: Cluster) -> Node:
    return cluster.groups[GROUP][0]


@functools.lru_cache(maxsize=8)
def password_hash(password: str) -> str:
    """bcrypt of the monitoring password, with a salt drawn from the password itself: the same
    password gives the same file (a second deploy changes nothing), a new one a new salt."""
    digest = hmac.new(password.encode(), b"pgha monitoring web configuration", hashlib.sha256).digest()
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    standard = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    salt = base64.b64encode(digest[:16]).decode().rstrip("=").translate(str.maketrans(standard, alphabet))
    return bcrypt.hashpw(password.encode(), f"$2b${BCRYPT_COST:02d}${salt[:22]}".encode()).decode()


def web_config(cluster: Cluster, tls_service: str = TLS_SERVICE) -> str:
    """The exporter toolkit's web configuration: the node's certificate (``tls_service``'s
    copy), TLS 1.2 at least, and the monitoring user's bcrypt hash."""
    return yaml_file(["Managed by pgha (pgha/monitor): TLS and basic auth of this node's Prometheus daemons."], {
        "tls_server_config": {
            "cert_file": pki.cert_file(tls_service),
            "key_file": pki.key_file(tls_service),
            "min_version": "TLS12",
        },
        "basic_auth_users": {cluster.settings["monitoring_user"]: password_hash(cluster.secrets[SECRET_KEY])},
    })


def problems(cluster: Cluster) -> list[str]:
    """The monitoring host against the topology: one host at most, of its own."""
    hosts = cluster.groups.get(GROUP, [])
    found = []
    if len(hosts) > 1:
        found.append(f"inventory: group 'monitor' has {len(hosts)} hosts ({', '.join(n.name for n in hosts)}): "
                     "expected one monitoring host (or none)")
    for node in hosts:
        others = sorted(node.groups & {"etcd", "patroni", "backup"})
        if others:
            found.append(f"inventory: host {node.name!r} is in groups 'monitor' and {', '.join(map(repr, others))}: "
                         "expected a monitoring host of its own (it must see the cluster when a node is lost)")
    s = cluster.settings
    if s.get("alert_email_to") and not (s.get("alert_email_from") and s.get("alert_email_smarthost")):
        found.append(f"group_data: alert_email_to = {s['alert_email_to']!r} without alert_email_from and "
                     "alert_email_smarthost: expected all three (or alert_email_to = None)")
    return found
