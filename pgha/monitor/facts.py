"""What a converge asks of a node about the monitoring, read in its snapshot; and the facts
its operations ask live: the exporter's PostgreSQL role, Prometheus's targets."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan, fact
from pgha.firewall import values as firewall_values
from pgha.monitor import exporters, server, values
from pgha.patroni.facts import PatroniRole
from pgha.postgres.facts import make_psql_command

# curl's login to the local Prometheus (root only): the deploy's check asks its HTTP API
# (bookworm's promtool cannot log in)
PROMETHEUS_CURLRC = f"{values.DIRECTORY}/prometheus-curlrc"


class MonitoringRole(FactBase):
    """The exporter's role: ``{"exists": bool, "login": bool, "pg_monitor": bool,
    "other_rights": bool}`` (superuser, createrole, createdb or replication), or None when
    PostgreSQL does not answer."""

    def command(self, role: str, port: int) -> str:
        quoted = role.replace("'", "''")
        sql = ("select json_build_object('exists', count(*) > 0, 'login', coalesce(bool_or(rolcanlogin), false), "
               "'pg_monitor', coalesce(bool_or(pg_has_role(rolname, 'pg_monitor', 'member')), false), "
               "'other_rights', coalesce(bool_or(rolsuper or rolcreaterole or rolcreatedb or rolreplication), false)) "
               f"from pg_roles where rolname = '{quoted}'")
        return f"{make_psql_command(sql, port)} 2>/dev/null || true"

    def process(self, output):
        try:
            return json.loads("".join(output))
        except ValueError:
            return None


class PrometheusQuery(FactBase):
    """An instant query to the local Prometheus (curl, with its login file): the result's
    samples as ``[{"metric": {...}, "value": float}]``, or None when Prometheus does not answer."""

    def command(self, expression: str, port: int) -> str:
        return (f"curl -sf -K {PROMETHEUS_CURLRC} -G https://127.0.0.1:{port}/api/v1/query "
                f"--data-urlencode query={shlex.quote(expression)} 2>/dev/null || true")

    def process(self, output):
        try:
            samples = json.loads("".join(output))["data"]["result"]
        except (ValueError, KeyError, TypeError):
            return None
        return [{"metric": s.get("metric", {}), "value": float(s["value"][1])} for s in samples]


def exporter_paths(cluster: Cluster, node: Node) -> list[str]:
    daemons = exporters.daemons(cluster, node) + server.daemons(cluster, node)
    paths = [values.DIRECTORY, *(d.dropin_file.rsplit("/", 1)[0] for d in daemons)]
    if exporters.pgbackrest_textfile(cluster, node):
        paths += [f"/etc/systemd/system/{exporters.PGBACKREST_TEXTFILE_UNIT}.{s}" for s in ("service", "timer")]
    return paths


def observed(cluster: Cluster, node: Node) -> Plan:
    """The exporters' files, drop-ins, units and packages on any node."""
    daemons = exporters.daemons(cluster, node)
    if not daemons:
        return Plan()
    units = [f"{d.unit}.service" for d in daemons] + list(firewall_values.units(["exporters"]))
    if exporters.pgbackrest_textfile(cluster, node):
        units.append(f"{exporters.PGBACKREST_TEXTFILE_UNIT}.timer")
    facts = []
    if "patroni" in node.groups:
        s = cluster.settings
        facts = [fact(PatroniRole, port=s["patroni_restapi_port"]),
                 fact(MonitoringRole, role=s["monitoring_postgres_role"], port=s["postgresql_port"])]
    return Plan(paths=tuple(exporter_paths(cluster, node) + list(firewall_values.paths(["exporters"]))),
                units=tuple(units), packages=tuple(exporters.packages(cluster, node)), facts=tuple(facts))


def monitor_observed(cluster: Cluster, node: Node) -> Plan:
    """Prometheus's, Alertmanager's and the blackbox exporter's files on the monitoring host."""
    daemons = server.daemons(cluster, node)
    return Plan(
        paths=(values.DIRECTORY, server.CONSOLES_DIR, server.CONSOLE_LIBRARIES_DIR,
               *(d.dropin_file.rsplit("/", 1)[0] for d in daemons), *firewall_values.paths(["monitor"])),
        units=(*(f"{d.unit}.service" for d in daemons), *firewall_values.units(["monitor"])),
        packages=tuple(server.packages(cluster, node)),
    )
