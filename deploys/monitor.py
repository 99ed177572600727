"""Prometheus, Alertmanager and the TLS probes on the `monitor` host: the scrape jobs from the
inventory, the alert rules, the route to the receivers of group_data, the overview page at
https://<monitor>:<prometheus_port>/consoles/pgha.html; then every target seen up.

Usage: pyinfra -y inventory.py deploys/monitor.py
"""

from pgha import rollout
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.monitor(cluster)
