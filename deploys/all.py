"""The whole cluster, in order: etcd, HAProxy, pgBackRest, Patroni, then the post-deploy
checks: (with a `backup` host) the stanza, its first backup and `pgbackrest check`; who
leads, which replicas stream and how to connect, said last.

Usage: pyinfra -y inventory.py deploys/all.py
(The lab's containers are built by deploys/lxc_hosts.py, which `make cluster` runs first:
pyinfra must reach every host before it runs this file.)
"""

from pgha.backup.deploy import deploy_backup_hosts, stanza_and_check
from pgha.common.operations import barrier
from pgha.etcd.deploy import deploy_etcd
from pgha.haproxy.deploy import deploy_haproxy
from pgha.patroni.deploy import deploy_patroni, paused_before_dcs_change
from pgha.settings.loader import current

cluster = current()

paused_before_dcs_change(cluster)
deploy_etcd(cluster)
barrier(name="etcd is healthy on every member", what="etcd ready")
deploy_haproxy(cluster)
barrier(name="HAProxy runs on every Patroni node", what="haproxy ready")
deploy_backup_hosts(cluster)
barrier(name="pgBackRest's TLS servers run on the repository host and every Patroni node", what="pgbackrest ready")
deploy_patroni(cluster)
barrier(name="Patroni's cluster is healthy", what="patroni ready")
stanza_and_check(cluster)
