"""HAProxy's settings: name -> (predicate, what is expected). Values: group_data/all.py."""

from __future__ import annotations

from pgha.validators import PORT, Setting, is_duration, is_int, is_name

SETTINGS: dict[str, Setting] = {
    "haproxy_etcd_port": PORT,
    "haproxy_rw_port": PORT,
    "haproxy_ro_port": PORT,
    "haproxy_stats_port": PORT,
    "haproxy_stats_user": (is_name, "a user name"),
    "haproxy_check_inter": (is_duration, "a duration such as 2s or 500ms"),
    "haproxy_check_fastinter": (is_duration, "a duration such as 1s or 250ms"),
    "haproxy_check_downinter": (is_duration, "a duration such as 500ms or 1s"),
    "haproxy_check_rise": (is_int(1), "an integer, at least 1"),
    "haproxy_check_fall": (is_int(1), "an integer, at least 1"),
    "haproxy_replica_max_lag": (lambda v: v is None or is_int(0)(v),
                                "None (patroni_maximum_lag_on_failover) or a number of bytes, 0 or more"),
}
