"""Patroni's and its PostgreSQL's settings: name -> (predicate, what is expected). Values:
group_data/all.py."""

from __future__ import annotations

from pgha.validators import BOOL, PORT, Setting, is_int, is_name

SETTINGS: dict[str, Setting] = {
    "postgresql_port": PORT,
    "patroni_restapi_port": PORT,
    "patroni_scope": (is_name, "a cluster name of letters, digits, '-', '_' or '.'"),
    "postgresql_version": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "None (the version debian_release ships) or a PostgreSQL major version such as 17",
    ),
    "patroni_ttl": (is_int(5), "an integer number of seconds, at least 5"),
    "patroni_loop_wait": (is_int(1), "an integer number of seconds, at least 1"),
    "patroni_retry_timeout": (is_int(1), "an integer number of seconds, at least 1"),
    "patroni_maximum_lag_on_failover": (is_int(0), "a number of bytes, 0 or more"),
    "patroni_synchronous_mode": BOOL,
    "patroni_synchronous_mode_strict": BOOL,
    "patroni_synchronous_node_count": (is_int(1), "an integer, at least 1"),
    "patroni_failsafe_mode": (
        lambda v: v is None or isinstance(v, bool),
        "None (on where the release's Patroni makes it reliable: trixie), True or False",
    ),
    "patroni_watchdog": (
        lambda v: v in ("off", "automatic", "required"),
        "'off', 'automatic' (Patroni uses the host's watchdog when it has one) or 'required' (a member "
        "without one cannot lead)",
    ),
    "patroni_restapi_username": (is_name, "a user name"),
    "patroni_superuser": (is_name, "a PostgreSQL role name"),
    "patroni_replication_user": (is_name, "a PostgreSQL role name"),
    "patroni_admin_user": (is_name, "a PostgreSQL role name"),
    "patroni_dcs_via_local_proxy": BOOL,
    "patroni_switchover_on_stop": BOOL,
    "patroni_allow_member_removal": BOOL,
    "postgresql_parameters": (
        lambda v: isinstance(v, dict)
        and all(isinstance(k, str) for k in v)
        and all(isinstance(x, (str, int, float, bool)) for x in v.values()),
        "a mapping of PostgreSQL parameter names to strings or numbers",
    ),
}
