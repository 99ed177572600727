"""PostgreSQL + Patroni on the `patroni` group: the first member bootstraps, the others join.

Usage: pyinfra -y inventory.py deploys/patroni.py
(With patroni_dcs_via_local_proxy = True, deploys/haproxy.py must have run first.)
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.patroni(cluster)
