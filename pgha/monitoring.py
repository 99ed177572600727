"""What the other components know of the monitoring (pgha.monitor): whether there is a
monitoring host, its address for their firewalls, the password's key for HAProxy's metrics,
the PostgreSQL exporter's way in for pg_hba. The bottom of the monitoring, imported by etcd,
HAProxy, Patroni and pgBackRest, importing none of them (pgha.monitor imports them)."""

from __future__ import annotations

from pgha.cluster import Cluster

GROUP = "monitor"
SECRET_KEY = "monitoring_password"
USER = "prometheus"  # every Debian Prometheus package runs its daemon as this user
POSTGRES_IDENT_MAP = "pgha_monitoring"


def enabled(cluster: Cluster) -> bool:
    """No `monitor` host, no monitoring (as no `backup` host, no backups)."""
    return bool(cluster.groups.get(GROUP))


def scrapers(cluster: Cluster) -> list[str]:
    """The addresses every exporter port answers: the monitoring host's."""
    return [n.address for n in cluster.groups.get(GROUP, [])]


def monitoring_set(cluster: Cluster, ports: list[int]) -> dict:
    """A role's firewall set that lets the monitoring host reach ``ports`` (its metrics and
    the TLS endpoints it probes); nothing without one."""
    if not enabled(cluster):
        return {}
    return {"monitoring": (ports, scrapers(cluster))}


def postgres_access(cluster: Cluster) -> dict:
    """What Patroni's pg_hba and pg_ident get: the exporter's OS user logs in as its role over
    the local socket, and as nothing else."""
    if not enabled(cluster):
        return {"pg_hba": [], "pg_ident": []}
    role = cluster.settings["monitoring_postgres_role"]
    return {
        "pg_hba": [f"local postgres {role} peer map={POSTGRES_IDENT_MAP}"],
        "pg_ident": [f"{POSTGRES_IDENT_MAP} {USER} {role}"],
    }
