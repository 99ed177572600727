"""The lab inventory: the seed's topology, one LXC container per node.

Usage: pyinfra inventory.py deploys/all.py

To deploy onto real hosts, copy this file, drop the `lxc_container` entries and the
lxc_hosts group, and set ssh_user/ssh_key for your machines. The group_data/ settings apply
unchanged. The inventory and group_data are checked (pgha/settings.py) before pyinfra
connects to any host.
"""

from pgha import lab, settings

# name: (address, Patroni name, aliases) -- each address is written here and only here
ETCD_NODES = {
    "etcd1": "10.0.3.64",
    "etcd2": "10.0.3.78",
    "etcd3": "10.0.3.32",
}
PATRONI_NODES = {
    "pg_patroni1": ("10.0.3.141", "pg-1", ["p1"]),
    "pg_patroni2": ("10.0.3.201", "pg-2", ["p2"]),
    "pg_patroni3": ("10.0.3.68", "pg-3", ["p3"]),
}

lxc_hosts = [("@local", {})]

etcd = [(name, lab.container_host_data(name, address)) for name, address in ETCD_NODES.items()]

patroni = [
    (name, lab.container_host_data(name, address, patroni_name=pg_name, aliases=aliases))
    for name, (address, pg_name, aliases) in PATRONI_NODES.items()
]

# Checked before pyinfra connects to any host; the lab's SSH keys are made on first use.
_cluster = settings.check_inventory_file(
    __file__, {"lxc_hosts": lxc_hosts, "etcd": etcd, "patroni": patroni}
)
lab.prepare_local_files(_cluster)
