"""The lab inventory: the seed's topology (lab/pghalab/topology.py), one LXC container per node.

Usage: pyinfra inventory.py deploys/all.py

Everything pyinfra will use (this file, group_data/, --data) is checked before it connects
to any host; the lab's SSH keys and known_hosts are made on first use. For your own
machines, start from inventories/example/ (see the README).
"""

from pgha.settings.loader import check_inventory
from pghalab import topology, values

# pyinfra's groups as this module's names: all (the lab's data), lxc_hosts, etcd, patroni
globals().update(topology.inventory_groups())

values.prepare_local_files(check_inventory(__file__))
