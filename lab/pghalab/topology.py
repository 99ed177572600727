"""The lab's topology, the seed's: its network on this machine, three etcd members,
three Patroni members and the backup repository host, one LXC container each. Plain data,
no side effect: inventory.py and the unit tests build their inventory groups from it, and
each address is written here and only here. (group_data/all.py may still override any of the lab_* values.)"""

from __future__ import annotations

from pghalab.values import LAB_GROUP, container_host_data

LAB_SETTINGS = {
    "lab_bridge": "lxcbr0",  # bridge the containers are plugged into
    "lab_subnet": "10.0.3.0/24",  # every lab address must be inside it
    "lab_gateway": "10.0.3.1",  # the bridge's own address: gateway, DNS and NAT for containers
    # DHCP leases for other containers on the bridge; must not cover any lab address
    "lab_dhcp_range": ["10.0.3.2", "10.0.3.30"],
    # prefix of the cached base containers, one per release (pgha-base-trixie): every node
    # is a clone of its release's
    "lab_base_container": "pgha-base",
    # packages baked into the base container (the roles install the rest)
    "lab_base_packages": ["openssh-server", "python3", "iproute2", "ca-certificates", "curl"],
    # apt-cacher-ng on the LXC host: the base container's build and every container's apt go
    # through it, so that the seven containers download each package once
    "lab_package_cache_port": 3142,
    # the lab's own alert receiver on the monitoring host's loopback (pghalab.webhook): the
    # tests read what Alertmanager delivered
    "lab_webhook_port": 9095,
}
# The lab's clients run on the LXC host itself (the bridge's address); other containers
# (the etcd members) are not clients of PostgreSQL.
CLIENTS = {
    "client_networks": [f"{LAB_SETTINGS['lab_gateway']}/32"],
    "etcd_client_networks": [f"{LAB_SETTINGS['lab_gateway']}/32"],
}

ETCD_NODES = {
    "etcd1": "10.0.3.64",
    "etcd2": "10.0.3.78",
    "etcd3": "10.0.3.32",
}
# name: (address, Patroni name, aliases)
PATRONI_NODES = {
    "pg_patroni1": ("10.0.3.141", "pg-1", ["p1"]),
    "pg_patroni2": ("10.0.3.201", "pg-2", ["p2"]),
    "pg_patroni3": ("10.0.3.68", "pg-3", ["p3"]),
}

# the pgBackRest repository host
BACKUP_NODES = {
    "backup1": "10.0.3.100",
}

# Prometheus and Alertmanager
MONITOR_NODES = {
    "monitor1": "10.0.3.101",
}

# The lab's monitoring sees a fault within seconds (the tests cause each alert's fault and
# wait for it): short intervals, and the lab's own receiver
LAB_MONITORING = {
    "monitoring_scrape_interval": "5s",
    "alert_down_for": "10s",
    "alert_paused_for": "20s",
    "alert_pending_restart_for": "10s",
    "alert_failover_window": "30s",
    "alert_group_interval": "10s",
    "alert_webhook_url": f"http://127.0.0.1:{LAB_SETTINGS['lab_webhook_port']}/alerts",
}


def groups(etcd_nodes: dict | None = None, patroni_nodes: dict | None = None,
           backup_nodes: dict | None = None, monitor_nodes: dict | None = None) -> dict[str, list | tuple]:
    """pyinfra inventory groups: the LXC host (this machine), the containers, and `all`
    carrying the lab's settings and client networks."""
    etcd = [(n, container_host_data(n, a)) for n, a in (etcd_nodes or ETCD_NODES).items()]
    patroni = [
        (n, container_host_data(n, a, patroni_name=pg, aliases=list(al)))
        for n, (a, pg, al) in (patroni_nodes or PATRONI_NODES).items()
    ]
    backup = [(n, container_host_data(n, a)) for n, a in (BACKUP_NODES if backup_nodes is None else backup_nodes).items()]
    monitor = [(n, container_host_data(n, a))
               for n, a in (MONITOR_NODES if monitor_nodes is None else monitor_nodes).items()]
    lab = [("@local", {})]
    names = list(dict.fromkeys(name for name, _ in lab + etcd + patroni + backup + monitor))
    return {
        "all": (names, {**LAB_SETTINGS, **CLIENTS}),
        LAB_GROUP: lab,
        "etcd": etcd,
        "patroni": patroni,
        "backup": backup,
        "monitor": monitor,
    }


def inventory_groups(**nodes) -> dict[str, list | tuple]:
    """groups(**nodes) as a lab inventory file gives them to pyinfra: the cluster's groups
    marked test_cluster (a group's own data wins over group_data/all.py's default, False),
    so the destructive drills accept the lab."""
    found = groups(**nodes)
    for group in ("etcd", "patroni", "backup", "monitor"):
        found[group] = (found[group], {"test_cluster": True, **LAB_MONITORING})
    return found
