"""HAProxy on every Patroni node: the values of haproxy.cfg, computed from the topology.
templates/haproxy.cfg.j2 beside this file only prints them."""

from __future__ import annotations

from pathlib import Path

from pgha import SCRIPTS_DIR, monitoring
from pgha.cluster import Cluster
from pgha.firewall import values as firewall_values
from pgha.haproxy import hold
from pgha.patroni.rest import LEADER_CHECK, REPLICA_CHECK
from pgha.pki import values as pki
from pgha.rendering import render

TEMPLATES = Path(__file__).resolve().parent / "templates"
CONFIG_FILE = "/etc/haproxy/haproxy.cfg"
TLS_SERVICE = "haproxy"  # the stats page's certificate and key, one PEM (pgha.pki)
ADMIN_SOCKET = "/run/haproxy/admin.sock"
# the servers' states, saved at each reload and read by the new process: a reload does not
# start every server as up until its first check (writes routed to a replica for ~100 ms)
STATE_FILE = "/var/lib/haproxy/server-state"
RELOAD_DROPIN = "/etc/systemd/system/haproxy.service.d/pgha.conf"
PRIMARY_BACKEND = "primary"
REPLICAS_BACKEND = "replicas"
# pgha.rollout holds HAProxy's view of the members while Patroni restarts paused: the
# program (hold.py, shipped as is) and its settings
HOLD_SCRIPT = f"{SCRIPTS_DIR}/haproxy-hold"
HOLD_PROGRAM = Path(hold.__file__)
HOLD_CONFIG = hold.CONFIG
PACKAGES = ["haproxy", "nftables"]
UNIT = "haproxy.service"


def config(cluster: Cluster) -> dict:
    s = cluster.settings
    secrets = cluster.secrets
    return {
        "admin_socket": ADMIN_SOCKET,
        "primary": PRIMARY_BACKEND,
        "replicas": REPLICAS_BACKEND,
        "stats_port": s["haproxy_stats_port"],
        "stats_pem": pki.pem_file(TLS_SERVICE),
        "stats_user": s["haproxy_stats_user"],
        "stats_password": secrets["haproxy_stats_password"],
        "etcd_port": s["haproxy_etcd_port"],
        "etcd_servers": [
            {"name": n.name, "address": f"{n.address}:{s['etcd_client_port']}"} for n in cluster.etcd
        ],
        "rw_port": s["haproxy_rw_port"],
        "ro_port": s["haproxy_ro_port"],
        "restapi_port": s["patroni_restapi_port"],
        "leader_check": LEADER_CHECK,
        "replica_check": f"{REPLICA_CHECK}?lag={replica_max_lag(cluster)}",
        "state_file": STATE_FILE,
        # Patroni's REST API over HTTPS, its certificate checked against the cluster CA and
        # for the member's name (HAProxy checks DNS names only, and every certificate
        # carries the Patroni name)
        "pg_servers": [
            {
                "name": n.patroni_name,
                "address": f"{n.address}:{s['postgresql_port']}",
                "rest_tls": f"check-ssl verify required ca-file {pki.CA_FILE} verifyhost {n.patroni_name}",
            }
            for n in cluster.patroni
        ],
        "metrics": metrics_frontend(cluster),
        "check": (
            f"inter {s['haproxy_check_inter']} fastinter {s['haproxy_check_fastinter']} "
            f"downinter {s['haproxy_check_downinter']} "
            f"rise {s['haproxy_check_rise']} fall {s['haproxy_check_fall']}"
        ),
    }


def replica_max_lag(cluster: Cluster) -> int:
    """Bytes a replica may lag and still serve the read-only port."""
    s = cluster.settings
    chosen = s.get("haproxy_replica_max_lag")
    return int(s["patroni_maximum_lag_on_failover"] if chosen is None else chosen)


def reload_dropin() -> dict:
    """haproxy.service's reload: check the file, save the servers' states, then reload."""
    return {"save_state": f"{HOLD_SCRIPT} save-state", "state_file": STATE_FILE}


def metrics_frontend(cluster: Cluster) -> dict | None:
    """With a monitoring host: HAProxy's own Prometheus exporter on a port of its own, TLS
    and basic auth. The password is compared as is (like the stats page's): a bcrypt hash
    would cost HAProxy's event loop tens of milliseconds at every scrape."""
    if not monitoring.enabled(cluster):
        return None
    return {
        "port": cluster.settings["haproxy_metrics_port"],
        "user": cluster.settings["monitoring_user"],
        "password": cluster.secrets[monitoring.SECRET_KEY],
    }


def hold_settings(cluster: Cluster) -> dict:
    """The hold program's settings (its JSON file)."""
    return {
        "socket": ADMIN_SOCKET,
        "primary": PRIMARY_BACKEND,
        "replicas": REPLICAS_BACKEND,
        "state_file": STATE_FILE,
        "settle_timeout": 15,  # seconds for a freshly reloaded HAProxy to see its leader
        "release_after": 300,  # the hold ends by itself if the deploy stops before releasing it
    }


def firewall(cluster: Cluster) -> dict:
    """The client boundary of a Patroni node: HAProxy's ports, PostgreSQL's and Patroni's
    REST API answer the Patroni nodes and client_networks only (HAProxy connects to
    PostgreSQL from the node's own address, which pg_hba trusts, so pg_hba alone cannot
    keep other sources out of 5432 and 5433; the REST API's GET endpoints need no password).
    The control machine asks the REST API for `pgha status`: it must be in client_networks."""
    s = cluster.settings
    ports = [
        s["haproxy_rw_port"], s["haproxy_ro_port"], s["haproxy_stats_port"],
        s["postgresql_port"], s["patroni_restapi_port"],
    ]
    sources = [n.address for n in cluster.patroni] + list(s["client_networks"])
    probed = [s["patroni_restapi_port"], s["haproxy_stats_port"], s["haproxy_metrics_port"]]
    return firewall_values.table(
        "haproxy",
        "The Patroni node's client ports (HAProxy, PostgreSQL, Patroni's REST API) answer the "
        "Patroni nodes and client_networks only (and the monitoring host: metrics, TLS probes).",
        {"clients": (ports, sources), **monitoring.monitoring_set(cluster, probed)},
    )


def config_text(cluster: Cluster) -> str:
    """CONFIG_FILE as the deploy writes it (and `pgha diff` compares it)."""
    return render(TEMPLATES / "haproxy.cfg.j2", config(cluster))
