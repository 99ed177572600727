"""HAProxy on the `patroni` group: 5432 to the leader, 5433 to the replicas, 7000 stats,
127.0.0.1:2379 to the etcd members.

Usage: pyinfra -y inventory.py deploys/haproxy.py
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.haproxy(cluster)
