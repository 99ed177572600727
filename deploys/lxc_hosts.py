"""Build the LXC lab on the machine running pyinfra: one container per inventory node.

Usage: pyinfra -y inventory.py deploys/lxc_hosts.py --limit lxc_hosts
(`make lab` runs this; `make teardown` destroys the containers and keeps the base cache.)
"""

from pyinfra import host

from pgha import settings
from pgha.tasks import lab

if "lxc_hosts" in host.groups:
    cluster = settings.current()
    lab.install()
    lab.network(cluster)
    lab.base_container(cluster)
    lab.containers(cluster)
