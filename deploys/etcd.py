"""etcd on the `etcd` group: a cluster from /etc/etcd/etcd.conf.yml, scaled out one member per run.

Usage: pyinfra -y inventory.py deploys/etcd.py
(A change Patroni must restart for -- TLS, etcd's users or passwords -- pauses Patroni, so
run it without --limit; deploys/patroni.py then restarts Patroni and resumes.)
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.pause_before_dcs_change(cluster)
rollout.etcd(cluster)
