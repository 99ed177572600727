"""Your own machines: three etcd members, three Patroni members, the pgBackRest repository
host and the monitoring host on plain Debian hosts.

Usage (from the repository root):
    pyinfra -y inventories/example/inventory.py deploys/all.py

Copy this directory (e.g. to inventories/prod/), then change the names, the addresses and
the SSH settings below, and group_data/all.py beside this file (the networks your clients
connect from). pyinfra reads group_data/ from the current directory (the defaults every
inventory shares) and from this directory (yours, which wins). Everything is checked before
pyinfra connects to any host; see the README, "Deploy onto your own machines".
"""

from pgha.hosts import host
from pgha.settings.loader import check_inventory

# How pyinfra logs in: a user with your SSH key (root, or a sudoer with _sudo=True).
# Host keys are checked strictly against known_hosts beside this file (first contact: see
# the README). Give dns_name="pg-a.example.net" to connect by name instead of address.
SSH = {"ssh_user": "root", "ssh_key": "~/.ssh/id_ed25519"}

etcd = [
    host("etcd-a", "192.0.2.11", **SSH),
    host("etcd-b", "192.0.2.12", **SSH),
    host("etcd-c", "192.0.2.13", **SSH),
]

# patroni_name: the member's name in Patroni and in /etc/hosts (letters, digits, '-')
patroni = [
    host("pg-a", "192.0.2.21", patroni_name="pg-a", **SSH),
    host("pg-b", "192.0.2.22", patroni_name="pg-b", **SSH),
    host("pg-c", "192.0.2.23", patroni_name="pg-c", **SSH),
]

# The pgBackRest repository (backups, archived WAL): a host of its own, so that backups
# survive the loss of any database node. Leave the list empty for no archiving and no
# backups. The Patroni nodes and this host reach each other by name (dns_name if given,
# else the inventory name; the deploy adds an /etc/hosts line for a name that resolves to
# nothing).
backup = [
    host("backup-a", "192.0.2.31", **SSH),
]

# The monitoring host: Prometheus (with the overview page), Alertmanager and the TLS probes;
# every node gets its exporters, which answer this host only. A host of its own (not a
# database, etcd or backup node); leave the list empty for no monitoring. Where alerts go:
# alert_webhook_url or alert_email_* in group_data/all.py.
monitor = [
    host("monitor-a", "192.0.2.41", **SSH),
]

check_inventory(__file__)
