"""Operations of the monitoring: the exporter's PostgreSQL role, and the check that Prometheus
scrapes every target."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from pgha.common import snapshot
from pgha.common.checks import check_until, executing
from pgha.monitor.facts import MonitoringRole, PrometheusQuery
from pgha.patroni.facts import PatroniRole
from pgha.postgres.facts import make_psql_command


def role_sql(role: str) -> str:
    """The role, created if missing: it logs in (through the local socket's ident map only,
    no password), reads the statistics (pg_monitor) and has no other right."""
    quoted = '"' + role.replace('"', '""') + '"'
    literal = role.replace("'", "''")
    return (f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{literal}') THEN "
            f"CREATE ROLE {quoted} LOGIN; END IF; END $$; "
            f"ALTER ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD NULL; "
            f"GRANT pg_monitor TO {quoted}")


@operation()
def exporter_role(role: str, port: int, restapi_port: int, superuser: str):
    """On the leader only (the replicas get it by replication): ``role`` exists, logs in and
    is a member of pg_monitor, with no other right."""
    if snapshot.get(PatroniRole, port=restapi_port)["role"] != "leader":
        host.noop(f"{host.name} is not the leader: the role is kept from the leader")
        return
    found = snapshot.get(MonitoringRole, role=role, port=port)
    if found == {"exists": True, "login": True, "pg_monitor": True, "other_rights": False}:
        host.noop(f"role {role} logs in and reads the statistics (pg_monitor)")
        return
    yield make_psql_command(role_sql(role), port, user=superuser)


@operation()
def targets_up(port: int, jobs: list[str], timeout: float = 90):
    """Every scrape job has its targets and every target is up (waited for: a new exporter
    is scraped at the next interval). Changes nothing."""
    if not executing():
        return

    def probe():
        samples = host.get_fact(PrometheusQuery, expression="up", port=port)
        if samples is None:
            return False, "Prometheus does not answer"
        down = sorted(f"{s['metric'].get('job')}/{s['metric'].get('instance')}"
                      f"{'/' + s['metric']['endpoint'] if 'endpoint' in s['metric'] else ''}"
                      for s in samples if s["value"] != 1)
        failing = host.get_fact(PrometheusQuery, expression="probe_success == 0", port=port) or []
        down += sorted(f"tls/{s['metric'].get('instance')}/{s['metric'].get('endpoint')} (probe fails)"
                       for s in failing)
        missing = sorted(set(jobs) - {s["metric"].get("job") for s in samples})
        problems = ([f"targets down: {', '.join(down)}"] if down else []) + \
                   ([f"jobs without targets yet: {', '.join(missing)}"] if missing else [])
        return not problems, "; ".join(problems) or f"{len(samples)} targets up"

    host.noop(check_until(probe, timeout, interval=2))
    yield from ()
