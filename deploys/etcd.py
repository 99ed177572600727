"""etcd on the `etcd` group: a cluster from /etc/etcd/etcd.conf.yml, scaled out one member per run.

Usage: pyinfra -y inventory.py deploys/etcd.py
"""

from pgha import settings
from pgha.tasks.etcd import deploy_etcd

deploy_etcd(settings.current())
