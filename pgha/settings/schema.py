"""What each group_data setting must look like: the type predicates and the schema.

Every setting is defined once, with its value, in group_data/all.py; this module only knows
its type and how to say what is expected.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from pgha.releases import RELEASES

DURATION = re.compile(r"^\d+(ms|s|m|h)?$")
PG_DURATION = re.compile(r"^\d+(ms|s|min|h|d)?$")
SIZE = re.compile(r"^\d+(KiB|MiB|GiB|TiB|KB|MB|GB|TB)$")
COMPRESS_TYPES = ("zst", "lz4", "gz", "bz2", "none")


def is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def is_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parses(parse: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        try:
            parse(value)
        except (ValueError, TypeError):  # AddressValueError is a ValueError
            return False
        return True

    return check


is_ipv4 = _parses(ipaddress.IPv4Address)
is_network = _parses(lambda v: ipaddress.ip_network(v, strict=True))
is_ipv4_network = _parses(lambda v: ipaddress.IPv4Network(v, strict=True))


def is_list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (list, tuple)) and all(check(x) for x in v)


def is_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value) is not None


PORT = (is_port, "an integer port number from 1 to 65535")
SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lab_bridge": (
        lambda v: is_name(v) and len(v) <= 15, "a network interface name of at most 15 characters"
    ),
    "lab_subnet": (is_ipv4_network, "an IPv4 network such as 10.0.3.0/24"),
    "lab_gateway": (is_ipv4, "an IPv4 address inside lab_subnet"),
    "lab_dhcp_range": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(is_ipv4(a) for a in v),
        "a [first, last] pair of IPv4 addresses",
    ),
    "lab_base_container": (is_name, "a container name"),
    "lab_base_packages": (is_list_of(is_name), "a list of Debian package names"),
    "debian_release": (
        lambda v: v in RELEASES, f"a supported Debian release: {' or '.join(sorted(RELEASES))}"
    ),
    "client_networks": (
        is_list_of(is_network),
        "the list of networks your PostgreSQL clients connect from, such as ['192.168.10.0/24'] "
        "(no default: set it in your inventory's group_data/all.py)",
    ),
    "etcd_client_port": PORT,
    "etcd_peer_port": PORT,
    "haproxy_etcd_port": PORT,
    "postgresql_port": PORT,
    "patroni_restapi_port": PORT,
    "haproxy_rw_port": PORT,
    "haproxy_ro_port": PORT,
    "haproxy_stats_port": PORT,
    "etcd_client_networks": (
        is_list_of(is_network),
        "the list of networks, besides the cluster's nodes, allowed to reach etcd, such as "
        "['192.168.10.5/32'] or [] (no default: set it in your inventory's group_data/all.py)",
    ),
    "etcd_cluster_token": (is_name, "a token of letters, digits, '-', '_' or '.'"),
    "etcd_allow_even_members": (lambda v: isinstance(v, bool), "true or false"),
    "etcd_allow_member_removal": (lambda v: isinstance(v, bool), "true or false"),
    "etcd_check_timeout": (is_int(1), "an integer number of seconds, at least 1"),
    "etcd_patroni_user": (
        lambda v: is_name(v) and v != "root",
        "a user name other than root (etcd's root user is the deploy's own)",
    ),
    "patroni_scope": (is_name, "a cluster name of letters, digits, '-', '_' or '.'"),
    "postgresql_version": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "None (the version debian_release ships) or a PostgreSQL major version such as 17",
    ),
    "patroni_ttl": (is_int(5), "an integer number of seconds, at least 5"),
    "patroni_loop_wait": (is_int(1), "an integer number of seconds, at least 1"),
    "patroni_retry_timeout": (is_int(1), "an integer number of seconds, at least 1"),
    "patroni_maximum_lag_on_failover": (is_int(0), "a number of bytes, 0 or more"),
    "patroni_synchronous_mode": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_synchronous_mode_strict": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_synchronous_node_count": (is_int(1), "an integer, at least 1"),
    "patroni_restapi_username": (is_name, "a user name"),
    "patroni_superuser": (is_name, "a PostgreSQL role name"),
    "patroni_replication_user": (is_name, "a PostgreSQL role name"),
    "patroni_admin_user": (is_name, "a PostgreSQL role name"),
    "patroni_dcs_via_local_proxy": (lambda v: isinstance(v, bool), "true or false"),
    "patroni_switchover_on_stop": (lambda v: isinstance(v, bool), "true or false"),
    "postgresql_parameters": (
        lambda v: isinstance(v, dict)
        and all(isinstance(k, str) for k in v)
        and all(isinstance(x, (str, int, float, bool)) for x in v.values()),
        "a mapping of PostgreSQL parameter names to strings or numbers",
    ),
    "haproxy_stats_user": (is_name, "a user name"),
    "haproxy_check_inter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 2s or 500ms",
    ),
    "haproxy_check_fastinter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 1s or 250ms",
    ),
    "haproxy_check_downinter": (
        lambda v: isinstance(v, str) and DURATION.match(v) is not None,
        "a duration such as 500ms or 1s",
    ),
    "tls_ca_file": (
        lambda v: v is None or is_str(v),
        "None (the cluster's own CA in pki/) or the path of your CA's certificate (PEM)",
    ),
    "tls_client_names": (
        lambda v: is_list_of(is_hostname)(v),
        "a list of DNS names such as ['db.example.com'] (or [])",
    ),
    "pgbackrest_tls_port": PORT,
    "pgbackrest_repo_path": (
        lambda v: is_str(v) and v.startswith("/") and v.rstrip("/") != "", "an absolute path other than /"
    ),
    "pgbackrest_retention_full": (is_int(1), "a number of full backups to keep, at least 1"),
    "pgbackrest_retention_diff": (is_int(1), "a number of differential backups to keep, at least 1"),
    "pgbackrest_compress_type": (
        lambda v: v in COMPRESS_TYPES, f"one of {', '.join(repr(t) for t in COMPRESS_TYPES)}"
    ),
    "pgbackrest_process_max": (is_int(1), "a number of parallel processes, at least 1"),
    "pgbackrest_backup_from_standby": (lambda v: isinstance(v, bool), "true or false"),
    "pgbackrest_archive_push_queue_max": (
        lambda v: v is None or (isinstance(v, str) and SIZE.match(v) is not None),
        "None (WAL waits in pg_wal until the repository has it) or a size such as '4GiB'",
    ),
    "pgbackrest_archive_timeout": (
        lambda v: isinstance(v, str) and PG_DURATION.match(v) is not None,
        "a PostgreSQL duration such as 60s or 5min (units ms, s, min, h, d)"
    ),
    # the schedules' syntax is checked by pgha.backup.values.problems (systemd-analyze)
    "pgbackrest_schedule_full": (lambda v: v is None or is_str(v), "a systemd OnCalendar expression or None"),
    "pgbackrest_schedule_diff": (lambda v: v is None or is_str(v), "a systemd OnCalendar expression or None"),
    "pgbackrest_schedule_incr": (lambda v: v is None or is_str(v), "a systemd OnCalendar expression or None"),
    "test_cluster": (
        lambda v: isinstance(v, bool),
        "true or false (true only for a cluster whose data may be lost: `make drills` fails it over, "
        "restores and rebuilds it)",
    ),
    "haproxy_check_rise": (is_int(1), "an integer, at least 1"),
    "haproxy_check_fall": (is_int(1), "an integer, at least 1"),
}

# Settings of the lab's builder (the lxc_hosts group): required only where there is a lab.
LAB_SETTINGS = {key for key in SETTINGS if key.startswith("lab_")}

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None


def is_hostname(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= 253
        and all(is_dns_label(label) for label in value.rstrip(".").split("."))
    )


# Host data: where a host is and what it is called. pyinfra connects with the ssh_* keys
# (pgha.inventory.host() sets ssh_hostname to dns_name or address).
HOST_DATA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "address": (is_ipv4, "an IPv4 address: the one every configuration of the cluster uses"),
    "dns_name": (is_hostname, "a DNS name such as pg1.example.com"),
    "patroni_name": (is_dns_label, "a name of letters, digits and '-' (it goes into /etc/hosts)"),
    "aliases": (is_list_of(is_hostname), "a list of host names such as ['p1']"),
    "lxc_container": (is_name, "an LXC container name"),
    "tls_cert_file": (is_str, "the path, on the control machine, of the host's certificate (PEM)"),
    "tls_key_file": (is_str, "the path, on the control machine, of the host's private key (PEM)"),
}
HOST_DATA_KEYS = set(HOST_DATA)


def ssh_data_keys() -> set[str]:
    """The host data pyinfra's SSH connector reads (ssh_hostname, ssh_user, ssh_key, ...)."""
    from pyinfra.connectors.ssh import connector_data_meta

    return set(connector_data_meta)

# Settings that were renamed: the old name is refused with the new one.
RENAMED_SETTINGS = {
    "lab_release": "debian_release (the nodes' Debian release, lab or not)",
}
