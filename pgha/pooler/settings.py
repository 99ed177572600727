"""The pooler's settings: name -> (predicate, what is expected). Values: group_data/all.py."""

from __future__ import annotations

import re

from pgha.validators import PORT, Setting, is_int, is_list_of

POOL_MODES = ("transaction", "session")


def is_identifier(value) -> bool:
    """A plain SQL identifier: PgBouncer's configuration and the SQL take it unquoted."""
    return isinstance(value, str) and re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value) is not None


SETTINGS: dict[str, Setting] = {
    "pgbouncer_port": PORT,
    "pgbouncer_pool_mode": (lambda v: v in POOL_MODES, "transaction or session"),
    "pgbouncer_pool_size": (is_int(1), "an integer, at least 1 (server connections a database and user, per node)"),
    "pgbouncer_max_client_conn": (is_int(1), "an integer, at least 1 (client connections per node)"),
    "pgbouncer_databases": (lambda v: is_list_of(is_identifier)(v) and len(v) > 0,
                            "a non-empty list of database names (lower case, digits, _), such as [\"postgres\", \"app\"]"),
    "pgbouncer_max_prepared_statements": (lambda v: v is None or is_int(0)(v),
                                          "None (200 where PgBouncer supports them, else off) or an integer, 0 or more"),
    "pgbouncer_auth_user": (is_identifier, "a role name (lower case, digits, _)"),
    "pgbouncer_pause_timeout": (is_int(1), "an integer number of seconds, at least 1"),
}
