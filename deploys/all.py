"""The whole cluster, in order: the lab (no change once built), etcd, HAProxy, Patroni,
then the post-deploy check that prints who leads, which replicas stream, how to connect.

Usage: pyinfra -y inventory.py deploys/all.py
(`make cluster` first builds the lab with deploys/lxc_hosts.py, since pyinfra must reach
the containers before it runs this file.)
"""

from pyinfra import host

from pgha import settings
from pgha.operations.checks import barrier
from pgha.tasks import lab
from pgha.tasks.etcd import deploy_etcd
from pgha.tasks.haproxy import deploy_haproxy
from pgha.tasks.patroni import deploy_patroni

cluster = settings.current()

if "lxc_hosts" in host.groups:
    lab.install()
    lab.network(cluster)
    lab.base_container(cluster)
    lab.containers(cluster)
barrier(name="the lab is built", what="lab ready")

deploy_etcd(cluster)
barrier(name="etcd is healthy on every member", what="etcd ready")
deploy_haproxy(cluster)
barrier(name="HAProxy runs on every Patroni node", what="haproxy ready")
deploy_patroni(cluster)
