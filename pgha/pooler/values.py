"""PgBouncer on every Patroni node: the values of its files, computed from the settings and
the release. templates/ beside this file only print them.

Placement: a client connects to PgBouncer on any Patroni node; PgBouncer connects to that
node's own HAProxy (127.0.0.1: 5432 for the read-write pool, 5433 for the read-only one),
which hands it on to the leader or a replica. A client's connection is to PgBouncer, so it
outlives a switchover: paused, PgBouncer holds the client's next query, lets go of its
server connections, and after the resume opens new ones through HAProxy to the new leader.
"""

from __future__ import annotations

from pathlib import Path

from pgha import releases
from pgha.cluster import Cluster
from pgha.firewall import values as firewall_values
from pgha.pki import values as pki
from pgha.postgres.roles import literal, password_from_file_sql
from pgha.rendering import render

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGES = ["pgbouncer", "nftables"]
UNIT = "pgbouncer.service"
CONFIG_DIR = "/etc/pgbouncer"
CONFIG_FILE = f"{CONFIG_DIR}/pgbouncer.ini"
# where it listens: its own file, included, because a change there needs a restart (every
# other setting is taken by a reload)
LISTEN_FILE = f"{CONFIG_DIR}/pgha-listen.ini"
AUTH_FILE = f"{CONFIG_DIR}/userlist.txt"  # the auth user's own password (auth_query does the others)
# the auth user's pgpass line: the deploy checks its login with it, and the server reads
# the password from it (pgha.postgres.roles)
AUTH_PGPASS = f"{CONFIG_DIR}/.auth-pgpass"
USER = "postgres"  # Debian's pgbouncer runs as postgres
TLS_SERVICE = "pgbouncer"  # its copy of the node's certificate (pgha.pki)
SECRET_KEY = "pgbouncer_auth_password"
READ_ONLY_SUFFIX = "_ro"  # <database>_ro: the read-only pool of <database>
AUTH_DATABASE = "postgres"  # where the lookup function lives
# the SECURITY DEFINER function that hands PgBouncer a role's SCRAM verifier: owned by a
# role of its own (which may read pg_authid's needed columns and nothing else), executable
# by the auth user only; superusers and expired passwords are never handed out
LOOKUP_OWNER = "pgha_pooler_lookup"
LOOKUP_SCHEMA = "pgha_pooler"
LOOKUP_FUNCTION = f"{LOOKUP_SCHEMA}.lookup(text)"
LOOKUP_SEARCH_PATH = "pg_catalog, pg_temp"
LOOKUP_BODY = (" SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid WHERE rolname = username"
               " AND rolcanlogin AND NOT rolsuper AND (rolvaliduntil IS NULL OR rolvaliduntil >= now()) ")
AUTHID_COLUMNS = ("rolname", "rolpassword", "rolcanlogin", "rolsuper", "rolvaliduntil")
DEFAULT_PREPARED_STATEMENTS = 200
# a server login refused (no leader yet behind HAProxy) is tried again after this many
# seconds: PgBouncer's 15 s default would hold every client that long after a failover
SERVER_LOGIN_RETRY = 1


def version(cluster: Cluster) -> tuple[int, int]:
    return releases.release(cluster.settings["debian_release"]).pgbouncer


def has_auth_dbname(cluster: Cluster) -> bool:
    return version(cluster) >= (1, 20)


def has_prepared_statements(cluster: Cluster) -> bool:
    return version(cluster) >= (1, 21)


def prepared_statements(cluster: Cluster) -> int:
    chosen = cluster.settings["pgbouncer_max_prepared_statements"]
    if chosen is None:
        return DEFAULT_PREPARED_STATEMENTS if has_prepared_statements(cluster) else 0
    return chosen


def databases(cluster: Cluster) -> list[dict]:
    """[databases]: each of pgbouncer_databases as itself (read-write, HAProxy's 5432) and as
    <name>_ro (read-only, 5433: replicas within the lag, else the leader)."""
    s = cluster.settings
    pools = []
    for name in s["pgbouncer_databases"]:
        pools.append({"name": name, "port": s["haproxy_rw_port"], "dbname": name})
        pools.append({"name": name + READ_ONLY_SUFFIX, "port": s["haproxy_ro_port"], "dbname": name})
    return pools


def config(cluster: Cluster) -> dict:
    s = cluster.settings
    return {
        "listen_file": LISTEN_FILE,
        "databases": databases(cluster),
        "auth_file": AUTH_FILE,
        "auth_user": s["pgbouncer_auth_user"],
        "auth_query": f"SELECT * FROM {LOOKUP_SCHEMA}.lookup($1)",
        "auth_dbname": AUTH_DATABASE if has_auth_dbname(cluster) else None,
        "pool_mode": s["pgbouncer_pool_mode"],
        "pool_size": s["pgbouncer_pool_size"],
        "max_client_conn": s["pgbouncer_max_client_conn"],
        "max_prepared_statements": prepared_statements(cluster) if has_prepared_statements(cluster) else None,
        "server_login_retry": SERVER_LOGIN_RETRY,
        "client_cert": pki.cert_file(TLS_SERVICE),
        "client_key": pki.key_file(TLS_SERVICE),
        "ca_file": pki.CA_FILE,
    }


def listen(cluster: Cluster) -> dict:
    return {"port": cluster.settings["pgbouncer_port"]}


def auth_file(cluster: Cluster) -> str:
    """The auth user's line of the auth file (its password as is: PgBouncer logs in to
    PostgreSQL with it, by SCRAM). Secrets are URL-safe: nothing to escape."""
    return f'"{cluster.settings["pgbouncer_auth_user"]}" "{cluster.secrets[SECRET_KEY]}"\n'


def auth_pgpass(cluster: Cluster) -> str:
    """Its lines for PostgreSQL itself and for PgBouncer, both on 127.0.0.1."""
    s = cluster.settings
    password = cluster.secrets[SECRET_KEY]
    return f"{pgpass_prefix(cluster)}{password}\n127.0.0.1:{s['pgbouncer_port']}:*:{s['pgbouncer_auth_user']}:{password}\n"


def pgpass_prefix(cluster: Cluster) -> str:
    s = cluster.settings
    return f"127.0.0.1:{s['postgresql_port']}:*:{s['pgbouncer_auth_user']}:"


def auth_role_sql(cluster: Cluster) -> str:
    """The auth user, created if missing, logging in with its secret and nothing more."""
    return password_from_file_sql(cluster.settings["pgbouncer_auth_user"], AUTH_PGPASS, pgpass_prefix(cluster),
                                  attributes=["nosuperuser", "nocreatedb", "nocreaterole", "noreplication"])


def lookup_sql(cluster: Cluster) -> str:
    """The lookup function and its owner, as wanted (run as the superuser on the leader)."""
    auth_user = cluster.settings["pgbouncer_auth_user"]
    columns = ", ".join(AUTHID_COLUMNS)
    return (
        f"DO $pgha$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(LOOKUP_OWNER)}) THEN "
        f"CREATE ROLE {LOOKUP_OWNER} NOLOGIN; END IF; END $pgha$; "
        f"ALTER ROLE {LOOKUP_OWNER} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION; "
        f"GRANT SELECT ({columns}) ON pg_catalog.pg_authid TO {LOOKUP_OWNER}; "
        f"CREATE SCHEMA IF NOT EXISTS {LOOKUP_SCHEMA} AUTHORIZATION {LOOKUP_OWNER}; "
        f"REVOKE ALL ON SCHEMA {LOOKUP_SCHEMA} FROM PUBLIC; "
        f"GRANT USAGE ON SCHEMA {LOOKUP_SCHEMA} TO {auth_user}; "
        f"CREATE OR REPLACE FUNCTION {LOOKUP_SCHEMA}.lookup(username text, OUT usename text, OUT passwd text) "
        f"RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {LOOKUP_SEARCH_PATH} "
        f"AS $body${LOOKUP_BODY}$body$; "
        f"ALTER FUNCTION {LOOKUP_FUNCTION} OWNER TO {LOOKUP_OWNER}; "
        f"REVOKE ALL ON FUNCTION {LOOKUP_FUNCTION} FROM PUBLIC; "
        f"GRANT EXECUTE ON FUNCTION {LOOKUP_FUNCTION} TO {auth_user}"
    )


def lookup_wanted(cluster: Cluster) -> dict:
    """What the PoolerLookup fact reads when the function is as lookup_sql makes it."""
    auth_user = cluster.settings["pgbouncer_auth_user"]
    return {
        "body": LOOKUP_BODY,
        "security_definer": True,
        "config": [f"search_path={LOOKUP_SEARCH_PATH}"],
        "owner": LOOKUP_OWNER,
        "executors": sorted([LOOKUP_OWNER, auth_user]),
        "public_execute": False,
        "schema_users": sorted([LOOKUP_OWNER, auth_user]),
        "authid_columns": sorted(AUTHID_COLUMNS),
    }


def pooled_check_command(cluster: Cluster, timeout: int = 30) -> str:
    """A shell loop: the auth user, through this node's PgBouncer (TLS verify-full), reaches a
    writable leader in the read-write pool and a server in the read-only pool."""
    s = cluster.settings
    first = s["pgbouncer_databases"][0]
    probes = []
    for database, wanted in ((first, "f"), (first + READ_ONLY_SUFFIX, "[tf]")):
        dsn = (f"host=127.0.0.1 port={s['pgbouncer_port']} dbname={database} user={s['pgbouncer_auth_user']} "
               f"sslmode=verify-full sslrootcert={pki.CA_FILE} connect_timeout=2")
        probes.append(f"runuser -u {USER} -- env PGPASSFILE={AUTH_PGPASS} psql -X -w -Atc 'SELECT pg_is_in_recovery()' "
                      f"'{dsn}' 2>&1 | grep -qx '{wanted}'")
    return (f"for i in $(seq {timeout}); do {{ {' && '.join(probes)}; }} && exit 0; sleep 1; done; "
            f"echo 'no pooled connection reached the leader and a server of the read-only pool within {timeout}s' >&2; exit 1")


def firewall(cluster: Cluster) -> dict:
    """PgBouncer's port answers the Patroni nodes and client_networks only, like HAProxy's."""
    s = cluster.settings
    sources = [n.address for n in cluster.patroni] + list(s["client_networks"])
    return firewall_values.table(
        "pooler", "PgBouncer answers the Patroni nodes and client_networks only.",
        {"clients": ([s["pgbouncer_port"]], sources)},
    )


def problems(cluster: Cluster) -> list[str]:
    """What PgBouncer of this release cannot do, refused before any host is touched (only
    once the settings it reads have their types: the type check reports the others)."""
    from pgha.pooler.settings import SETTINGS

    s = cluster.settings
    needed = ("pgbouncer_max_prepared_statements", "pgbouncer_databases", "pgbouncer_auth_user")
    if s.get("debian_release") not in releases.RELEASES or not all(
            name in s and SETTINGS[name][0](s[name]) for name in needed):
        return []
    release = s["debian_release"]
    found = []
    shipped = ".".join(map(str, version(cluster)))
    chosen = s["pgbouncer_max_prepared_statements"]
    if chosen and not has_prepared_statements(cluster):
        found.append(f"pgbouncer_max_prepared_statements = {chosen!r}: PgBouncer {shipped} ({release}) has no "
                     "protocol-level prepared statements (1.21 and later): expected None or 0 on this release")
    if not has_auth_dbname(cluster) and list(s["pgbouncer_databases"]) != [AUTH_DATABASE]:
        found.append(f"pgbouncer_databases = {list(s['pgbouncer_databases'])!r}: PgBouncer {shipped} ({release}) "
                     f"has no auth_dbname (1.20 and later) and looks roles up in the database asked for, where "
                     f"pgha's lookup function is not: expected [{AUTH_DATABASE!r}] on this release")
    names = [d for name in s["pgbouncer_databases"] for d in (name, name + READ_ONLY_SUFFIX)]
    clashing = sorted({n for n in names if names.count(n) > 1})
    if clashing:
        found.append(f"pgbouncer_databases = {list(s['pgbouncer_databases'])!r}: {', '.join(clashing)} would be both a "
                     f"database and another's read-only pool (<name>{READ_ONLY_SUFFIX}): expected distinct names")
    if s["pgbouncer_auth_user"] in (s.get("patroni_superuser"), s.get("patroni_admin_user"),
                                    s.get("patroni_replication_user")):
        found.append(f"pgbouncer_auth_user = {s['pgbouncer_auth_user']!r}: a role of Patroni's: expected a role of its own")
    return found


def config_text(cluster: Cluster) -> str:
    """CONFIG_FILE as the deploy writes it (and `pgha diff` compares it)."""
    return render(TEMPLATES / "pgbouncer.ini.j2", config(cluster))
