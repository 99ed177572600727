"""etcd: the values of each member's configuration, computed from the topology.

Kept free of pyinfra so it is unit-tested directly; templates/ beside this file only print
these values (each template is given one mapping, ``config``).
"""

from __future__ import annotations

from pathlib import Path

from pgha import monitoring
from pgha.cluster import Cluster, Node
from pgha.errors import EtcdPlanError
from pgha.firewall import values as firewall_values
from pgha.pki import values as pki
from pgha.rendering import yaml_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
DATA_DIR = "/var/lib/etcd/pgha"  # the package's own default instance would use .../default
CONFIG_FILE = "/etc/etcd/etcd.conf.yml"
DEFAULTS_FILE = "/etc/default/etcd"
SERVICE = "etcd"  # the daemon's user, and its copy of the host certificate (pgha.pki)
CERT_FILE = pki.cert_file(SERVICE)
KEY_FILE = pki.key_file(SERVICE)
ROOT_USER = "root"
# Patroni's etcd3 keys are <namespace><scope>/..., its namespace defaulting to /service/
PATRONI_NAMESPACE = "/service/"


def peer_url(cluster: Cluster, node: Node) -> str:
    return f"https://{node.address}:{cluster.settings['etcd_peer_port']}"


def client_url(cluster: Cluster, node: Node) -> str:
    return f"https://{node.address}:{cluster.settings['etcd_client_port']}"


def local_endpoint(cluster: Cluster, tls: bool = True) -> str:
    """A member's own client URL, as etcdctl on the member reaches it (``tls`` False: a
    member still running the plaintext configuration of an earlier version)."""
    return f"{'https' if tls else 'http'}://127.0.0.1:{cluster.settings['etcd_client_port']}"


def password_file(user: str) -> str:
    """The password etcd has now for ``user``, 0600 root's on every member: etcdctl logs in
    with it. The deploy writes the secrets file's beside it (wanted_password_file) and
    copies that over once etcd has it."""
    return f"/etc/etcd/.{user}-password"


def wanted_password_file(user: str) -> str:
    return f"{password_file(user)}.wanted"


# etcdctl on a member logs in as root, with the password etcd has now
ROOT_PASSWORD_FILE = password_file(ROOT_USER)
ROOT_LOGIN = {"user": ROOT_USER, "password_file": ROOT_PASSWORD_FILE}
PACKAGES = ["etcd-server", "etcd-client", "nftables"]
PACKAGE_DEFAULT_DATA = "/var/lib/etcd/default"  # the package's single-node instance, never kept
UNIT = "etcd.service"


def patroni_prefix(cluster: Cluster) -> str:
    """Every key Patroni writes for this cluster starts with it."""
    return f"{PATRONI_NAMESPACE}{cluster.settings['patroni_scope']}/"


def users(cluster: Cluster) -> list[dict]:
    """etcd's users: root (the deploy's), and Patroni's, whose role of the same name may
    read and write this cluster's keys and nothing else."""
    s, secrets = cluster.settings, cluster.secrets
    patroni = s["etcd_patroni_user"]
    return [
        {"name": ROOT_USER, "roles": ["root"], "password": secrets["etcd_root_password"]},
        {"name": patroni, "roles": [patroni], "password": secrets["etcd_patroni_password"]},
    ]


def roles(cluster: Cluster) -> dict[str, list[list[str]]]:
    """Role: its [permission, key prefix] grants (root is etcd's built-in role)."""
    return {cluster.settings["etcd_patroni_user"]: [["readwrite", patroni_prefix(cluster)]]}


def auth_asked(cluster: Cluster) -> dict:
    """Every user and role the deploy keeps: what the authentication steps ask etcd, at once."""
    return {"users": [u["name"] for u in users(cluster)], "roles": list(roles(cluster))}


def password(user: dict) -> dict:
    """The values of a password file (templates/password.j2)."""
    return {"password": user["password"]}


def client_endpoints(cluster: Cluster, nodes=None) -> str:
    return ",".join(client_url(cluster, n) for n in (nodes or cluster.etcd))


def initial_cluster(cluster: Cluster, nodes) -> str:
    return ",".join(f"{n.name}={peer_url(cluster, n)}" for n in nodes)


def plan(cluster: Cluster, states: dict[str, dict]) -> dict[str, dict]:
    """How each inventory member gets its initial-* settings.

    ``states`` maps member name to its EtcdNodeState fact: ``has_data`` and the
    ``initial_cluster`` / ``initial_cluster_state`` its current config file holds.
    A member with data keeps what it was bootstrapped with (etcd ignores initial-* once it
    has data, and rewriting them would restart it for nothing). Without any data anywhere,
    every member bootstraps a new cluster together. Otherwise a member without data is a
    newcomer: it joins with ``existing`` after `etcdctl member add`, one per run.
    """
    members = cluster.etcd
    with_data = [n for n in members if states.get(n.name, {}).get("has_data")]
    newcomers = [n for n in members if n not in with_data]
    if with_data and len(newcomers) > 1:
        raise EtcdPlanError(
            f"etcd: {len(newcomers)} new members ({', '.join(n.name for n in newcomers)}) "
            "would join the running cluster at once: add one member per deploy run "
            "(etcd needs each new member started before the next is added)"
        )
    result = {}
    for node in members:
        state = states.get(node.name, {})
        if node in with_data and state.get("initial_cluster"):
            initial = (state["initial_cluster"], state.get("initial_cluster_state") or "new", False)
        elif with_data and node in newcomers:
            initial = (initial_cluster(cluster, with_data + [node]), "existing", True)
        else:
            initial = (initial_cluster(cluster, members), "new", False)
        result[node.name] = dict(zip(("initial_cluster", "initial_cluster_state", "joins"), initial))
    return result


# What etcd's defaults leave to the version, pinned so that 3.4 (bookworm) and 3.5 (trixie)
# run alike (checked with both packaged servers):
# - enable-grpc-gateway: Patroni's etcd3 client speaks the v3 API over HTTP/JSON (the
#   gateway); on by default in both, but 3.4 has no command-line flag for it, only this key.
# - enable-v2: off by default in both (3.5 deprecates the v2 API); Patroni uses v3 only.
# - logger: 3.4's default capnslog is deprecated (it warns at every start); 3.5 has only zap.
# - log-outputs: stderr, which systemd hands to the journal (3.5's default; 3.4's "default"
#   output depends on how it was started).
DAEMON_SETTINGS = {
    "enable-grpc-gateway": True,
    "enable-v2": False,
    "logger": "zap",
    "log-outputs": ["stderr"],
}
HEADER = ["Managed by pgha (deploys/etcd.py) -- changes here are overwritten.",
          "initial-* are read only when the member bootstraps (empty data-dir)."]


def config(cluster: Cluster, node: Node, initial: dict) -> dict:
    """/etc/etcd/etcd.conf.yml of one member, as etcd reads it: TLS for clients (who then
    authenticate with a user and password) and for peers (each presents its certificate,
    issued by the cluster CA). etcd reads the files again at each new TLS handshake. No
    trusted CA for clients: etcd would then ask every client for a certificate."""
    port = cluster.settings["etcd_client_port"]
    return {
        "name": node.name,
        "data-dir": DATA_DIR,
        "listen-peer-urls": peer_url(cluster, node),
        "listen-client-urls": f"https://127.0.0.1:{port},{client_url(cluster, node)}",
        "initial-advertise-peer-urls": peer_url(cluster, node),
        "advertise-client-urls": client_url(cluster, node),
        "client-transport-security": {"cert-file": CERT_FILE, "key-file": KEY_FILE},
        "peer-transport-security": {"cert-file": CERT_FILE, "key-file": KEY_FILE, "trusted-ca-file": pki.CA_FILE,
                                    "client-cert-auth": True},
        **metrics_listener(cluster, node),
        "initial-cluster": initial["initial_cluster"],
        "initial-cluster-token": cluster.settings["etcd_cluster_token"],
        "initial-cluster-state": initial["initial_cluster_state"],
        **DAEMON_SETTINGS,
    }


def metrics_listener(cluster: Cluster, node: Node) -> dict:
    """With a monitoring host: /metrics (and /health) on a port of their own, over the client
    TLS (etcd has no password for them: the firewall lets the monitoring host alone reach it)."""
    if not monitoring.enabled(cluster):
        return {}
    return {"listen-metrics-urls": f"https://{node.address}:{cluster.settings['etcd_metrics_port']}"}


def config_text(cluster: Cluster, node: Node, initial: dict) -> str:
    return yaml_file(HEADER, config(cluster, node, initial))


def peer_address(url: str) -> str:
    """A peer URL's host:port: a member keeps its identity when its URLs move to https."""
    return url.partition("://")[2] or url


def extra_members(cluster: Cluster, members: list[dict]) -> list[dict]:
    """Members of the running cluster that the inventory no longer lists."""
    wanted = {peer_address(peer_url(cluster, n)) for n in cluster.etcd}
    return [m for m in members if not {peer_address(u) for u in m.get("peerURLs", [])} & wanted]


def defaults_file(cluster: Cluster) -> dict:
    """/etc/default/etcd: Debian's etcd.service reads its arguments there."""
    return {"config_file": CONFIG_FILE}


def firewall(cluster: Cluster) -> dict:
    """Who may reach etcd besides its own authentication: its client port the Patroni
    nodes, the etcd members and etcd_client_networks; its peer port the etcd members."""
    s = cluster.settings
    members = [n.address for n in cluster.etcd]
    clients = members + [n.address for n in cluster.patroni] + list(s["etcd_client_networks"])
    return firewall_values.table(
        "etcd",
        "a second fence besides etcd's TLS, users and peer certificates: its client port answers "
        "the Patroni nodes, the etcd members and etcd_client_networks only; its peer port the "
        "etcd members only.",
        {"clients": ([s["etcd_client_port"]], clients), "peers": ([s["etcd_peer_port"]], members),
         **monitoring.monitoring_set(cluster, [s["etcd_client_port"], s["etcd_metrics_port"]])},
    )
