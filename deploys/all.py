"""The whole cluster, in order: etcd, HAProxy, pgBackRest, Patroni, then the post-deploy
checks: (with a `backup` host) the stanza, its first backup and `pgbackrest check`; PgBouncer
on every Patroni node; (with a `monitor` host) the exporters, then Prometheus and Alertmanager, every target seen up; who
leads, which replicas stream and how to connect, said last. The order and the steps that
cross components are pgha.rollout's.

Usage: pyinfra -y inventory.py deploys/all.py
(The lab's containers are built by deploys/lxc_hosts.py, which `make cluster` runs first:
pyinfra must reach every host before it runs this file.)
"""

from pgha import rollout
from pgha.common.operations import barrier
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.packages(cluster)
rollout.pause_before_dcs_change(cluster)
rollout.etcd(cluster)
barrier(name="etcd is healthy on every member", what="etcd ready")
rollout.haproxy(cluster)
barrier(name="HAProxy runs on every Patroni node", what="haproxy ready")
rollout.backup(cluster)
barrier(name="pgBackRest's TLS servers run on the repository host and every Patroni node", what="pgbackrest ready")
rollout.patroni(cluster)
barrier(name="Patroni's cluster is healthy", what="patroni ready")
rollout.backup_checks(cluster)
rollout.pooler(cluster)
rollout.exporters(cluster)
barrier(name="The exporters run on every node", what="exporters ready")
rollout.monitor(cluster)
