"""The whole cluster, in order: the lab (no change once built), etcd, HAProxy, pgBackRest,
Patroni, then the post-deploy checks: who leads, which replicas stream, how to connect, and
(with a `backup` host) the stanza, its first backup and `pgbackrest check`.

Usage: pyinfra -y inventory.py deploys/all.py
(`make cluster` first builds the lab with deploys/lxc_hosts.py, since pyinfra must reach
the containers before it runs this file.)
"""

from pgha.backup.deploy import deploy_backup_hosts, stanza_and_check
from pgha.common.operations import barrier
from pgha.etcd.deploy import deploy_etcd
from pgha.haproxy.deploy import deploy_haproxy
from pgha.lab.deploy import build as build_lab
from pgha.patroni.deploy import deploy_patroni, paused_before_dcs_change
from pgha.settings.loader import current

cluster = current()

build_lab(cluster)
barrier(name="the lab is built", what="lab ready")
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
