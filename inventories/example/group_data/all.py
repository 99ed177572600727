# Settings of this inventory only; they win over the repository's group_data/all.py (the
# defaults every inventory shares: ports, timings, PostgreSQL parameters).

# The nodes' Debian release: trixie (Debian 13) or bookworm (Debian 12).
debian_release = "trixie"

# Networks your PostgreSQL clients (applications, your workstation) connect from. No
# default: nothing but the cluster's own nodes may connect until you say so.
client_networks = ["192.0.2.0/26"]

# Besides the Patroni nodes and etcd members, who may reach etcd's client port (your
# monitoring, your workstation for etcdctl); [] for nobody else.
etcd_client_networks = []

# Where the monitoring host's Alertmanager sends the alerts (with a host in `monitor`): a
# webhook, or e-mail through your relay (alert_email_to, alert_email_from,
# alert_email_smarthost). None: the alerts show in Prometheus, Alertmanager and `pgha status`.
alert_webhook_url = None
