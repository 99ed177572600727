"""The LXC lab and the HA drills: the test harness of pgha, not part of the product.

Installed apart (lab/pyproject.toml, `make setup`), imported by the lab's inventories, the
Makefile, the tests and bench/. Importing it registers the lab with pgha's inventory checks
(pgha.settings.extensions): its group `lxc_hosts` (this machine), its `lab_*` settings, the
`lxc_container` host data and the lab network's checks.
"""

from pgha.settings import extensions
from pghalab import values

extensions.register(extensions.Extension(
    name="lab",
    group=values.LAB_GROUP,
    settings=values.SETTINGS,
    host_data=values.HOST_DATA,
    problems=values.network_problems,
))
