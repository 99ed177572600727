"""PgBouncer on the `patroni` group: port 6432, <db> to the leader and <db>_ro to the
replicas through the node's own HAProxy; its auth user and lookup function on the leader.

Usage: pyinfra -y inventory.py deploys/pooler.py
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.pooler(cluster)
