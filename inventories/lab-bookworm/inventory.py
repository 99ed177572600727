"""The lab on Debian 12 (bookworm): the same containers as inventory.py, with bookworm's
PostgreSQL 15 and Patroni 3.0.2 (group_data/all.py beside this file says so).

Usage (one lab at a time: `make teardown` first):
    pyinfra -y inventories/lab-bookworm/inventory.py deploys/lxc_hosts.py --limit lxc_hosts
    pyinfra -y inventories/lab-bookworm/inventory.py deploys/all.py
or `make cluster INVENTORY=inventories/lab-bookworm/inventory.py`.
"""

from pgha.settings.loader import check_inventory
from pghalab import topology, values

# pyinfra's groups as this module's names: all (the lab's data), lxc_hosts, etcd, patroni
globals().update(topology.inventory_groups())

values.prepare_local_files(check_inventory(__file__))
