"""Build the LXC lab on the machine running pyinfra: one container per inventory node.

Usage: pyinfra -y inventory.py deploys/lxc_hosts.py --limit lxc_hosts
(`make lab` runs this; `make teardown` destroys the containers and keeps the base cache.)
"""

from pgha.settings.loader import current
from pghalab.deploy import build

build(current())
