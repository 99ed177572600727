"""etcd on the `etcd` group: a cluster from /etc/etcd/etcd.conf.yml, scaled out one member per run.

Usage: pyinfra -y inventory.py deploys/etcd.py
"""

from pgha.etcd.deploy import deploy_etcd
from pgha.settings.loader import current

deploy_etcd(current())
