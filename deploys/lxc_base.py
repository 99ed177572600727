"""Build only the lab's base container of the inventory's release (LXC, the bridge and the
package cache included), no node: `make test` builds the second release's while the first
release's lab is running.

Usage: pyinfra -y inventories/lab-bookworm/inventory.py deploys/lxc_base.py --limit lxc_hosts
(`make base INVENTORY=...`)
"""

from pgha.settings.loader import current
from pghalab.deploy import build_base

build_base(current())
