"""PostgreSQL + Patroni on the `patroni` group: the first member bootstraps, the others join.

Usage: pyinfra -y inventory.py deploys/patroni.py
(With patroni_dcs_via_local_proxy = True, deploys/haproxy.py must have run first.)
"""

from pgha import settings
from pgha.tasks.patroni import deploy_patroni

deploy_patroni(settings.current())
