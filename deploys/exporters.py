"""The exporters on every node (with a host in the `monitor` group): the node exporter, the
PostgreSQL exporter on the Patroni nodes, pgBackRest's on the repository host, their firewall.

Usage: pyinfra -y inventory.py deploys/exporters.py
(etcd's and HAProxy's metrics listeners come with their roles: run deploys/all.py when you
add a `monitor` host to a running cluster.)
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.exporters(cluster)
