"""The lab's topology, the seed's: three etcd members and three Patroni members, one LXC
container each. Plain data, no side effect: inventory.py and the unit tests build their
inventory groups from it, and each address is written here and only here."""

from __future__ import annotations

from pgha.lab.values import container_host_data

ETCD_NODES = {
    "etcd1": "10.0.3.64",
    "etcd2": "10.0.3.78",
    "etcd3": "10.0.3.32",
}
# name: (address, Patroni name, aliases)
PATRONI_NODES = {
    "pg_patroni1": ("10.0.3.141", "pg-1", ["p1"]),
    "pg_patroni2": ("10.0.3.201", "pg-2", ["p2"]),
    "pg_patroni3": ("10.0.3.68", "pg-3", ["p3"]),
}


def groups() -> dict[str, list[tuple[str, dict]]]:
    """pyinfra inventory groups: the LXC host (this machine) and the containers."""
    return {
        "lxc_hosts": [("@local", {})],
        "etcd": [(name, container_host_data(name, address)) for name, address in ETCD_NODES.items()],
        "patroni": [
            (name, container_host_data(name, address, patroni_name=pg_name, aliases=list(aliases)))
            for name, (address, pg_name, aliases) in PATRONI_NODES.items()
        ],
    }
