"""etcd's settings: name -> (predicate, what is expected). Values: group_data/all.py."""

from __future__ import annotations

from pgha.validators import BOOL, PORT, Setting, is_int, is_list_of, is_name, is_network

SETTINGS: dict[str, Setting] = {
    "etcd_client_port": PORT,
    "etcd_peer_port": PORT,
    "etcd_client_networks": (
        is_list_of(is_network),
        "the list of networks, besides the cluster's nodes, allowed to reach etcd, such as "
        "['192.168.10.5/32'] or [] (no default: set it in your inventory's group_data/all.py)",
    ),
    "etcd_cluster_token": (is_name, "a token of letters, digits, '-', '_' or '.'"),
    "etcd_allow_even_members": BOOL,
    "etcd_allow_member_removal": BOOL,
    "etcd_check_timeout": (is_int(1), "an integer number of seconds, at least 1"),
    "etcd_patroni_user": (
        lambda v: is_name(v) and v != "root",
        "a user name other than root (etcd's root user is the deploy's own)",
    ),
}
