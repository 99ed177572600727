"""What a converge asks of a Patroni node about PgBouncer, read in its snapshot, and the
lookup function's state on the leader."""

from __future__ import annotations

import json

from pyinfra.api import FactBase

from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan, fact
from pgha.firewall import values as firewall_values
from pgha.patroni.facts import PatroniRole
from pgha.pooler import values
from pgha.postgres.facts import RoleLogin, make_psql_command


def lookup_query(auth_user: str) -> str:
    """The lookup function as PoolerLookup reports it (one JSON object, or nothing)."""
    return (
        "SELECT json_build_object("
        "'body', p.prosrc, 'security_definer', p.prosecdef, 'config', p.proconfig, "
        "'owner', p.proowner::regrole::text, "
        "'executors', (SELECT json_agg(r.rolname ORDER BY r.rolname) FROM pg_roles r "
        "WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE') AND NOT r.rolsuper "
        f"AND r.rolname IN ({values.literal(values.LOOKUP_OWNER)}, {values.literal(auth_user)}, 'pg_monitor')), "
        "'public_execute', coalesce(p.proacl IS NULL OR p.proacl::text ~ '(^|[{,])=X', true), "
        "'schema_users', (SELECT json_agg(r.rolname ORDER BY r.rolname) FROM pg_roles r "
        "WHERE has_schema_privilege(r.oid, n.oid, 'USAGE') AND NOT r.rolsuper "
        f"AND r.rolname IN ({values.literal(values.LOOKUP_OWNER)}, {values.literal(auth_user)}, 'pg_monitor')), "
        "'authid_columns', (SELECT json_agg(a.attname ORDER BY a.attname) FROM pg_attribute a "
        "WHERE a.attrelid = 'pg_catalog.pg_authid'::regclass AND a.attnum > 0 "
        f"AND has_column_privilege({values.literal(values.LOOKUP_OWNER)}, a.attrelid, a.attnum, 'SELECT'))) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE p.oid = to_regprocedure({values.literal(values.LOOKUP_FUNCTION)})"
    )


class PoolerLookup(FactBase):
    """The lookup function on this server: ``{"body", "security_definer", "config", "owner",
    "executors", "public_execute", "schema_users", "authid_columns"}``, or None when it (or its
    owner) is missing or the server does not answer. ``executors`` and ``schema_users`` are
    among the lookup owner, the auth user and pg_monitor (a stand-in for any other role)."""

    def command(self, auth_user: str, port: int, superuser: str) -> str:
        sql = (f"SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = {values.literal(values.LOOKUP_OWNER)}) "
               f"THEN ({lookup_query(auth_user)}) END")
        return f"{make_psql_command(sql, port, user=superuser)} 2>/dev/null || true"

    def process(self, output):
        try:
            found = json.loads(output[0])
        except (IndexError, ValueError):
            return None
        if not isinstance(found, dict):
            return None
        return {**found, **{k: found.get(k) or [] for k in ("executors", "schema_users", "authid_columns", "config")}}


def observed(cluster: Cluster, node: Node) -> Plan:
    s = cluster.settings
    return Plan(
        paths=(values.CONFIG_DIR, *firewall_values.paths(["pooler"])),
        units=(values.UNIT, *firewall_values.units(["pooler"])),
        packages=tuple(values.PACKAGES),
        facts=(
            fact(PatroniRole, port=s["patroni_restapi_port"]),
            fact(RoleLogin, role=s["pgbouncer_auth_user"], port=s["postgresql_port"], passfile=values.AUTH_PGPASS,
                 attributes=[]),
            fact(PoolerLookup, auth_user=s["pgbouncer_auth_user"], port=s["postgresql_port"],
                 superuser=s["patroni_superuser"]),
        ),
    )
