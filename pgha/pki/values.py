"""The cluster's TLS files on the hosts, and the names each host's certificate must carry.

Free of pyinfra and of cryptography: unit-tested directly. pgha.pki.authority issues the
certificates on the control machine; pgha.pki.deploy puts them on the hosts.
"""

from __future__ import annotations
from pgha.cluster import Cluster, Node

TLS_DIR = "/etc/pgha/tls"
CA_FILE = f"{TLS_DIR}/ca.crt"
RENEW_DAYS = 30  # a certificate with fewer days left is issued again


def tls_file(service: str, kind: str) -> str:
    """Each daemon gets its own copy of the host's certificate (``kind`` crt) and key (key),
    owned by its user, or both in one file (pem: HAProxy's `crt`)."""
    return f"{TLS_DIR}/{service}.{kind}"


def cert_file(service: str) -> str:
    return tls_file(service, "crt")


def key_file(service: str) -> str:
    return tls_file(service, "key")


def pem_file(service: str) -> str:
    return tls_file(service, "pem")


def subject_names(cluster: Cluster, node: Node) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a node's certificate must hold: every name and address of
    the node, localhost and 127.0.0.1 (local proxies and tools connect there). A Patroni
    node's certificate also holds every Patroni node's names and addresses and the
    tls_client_names: a client connecting to any node's HAProxy (5432, 5433) is handed on to
    whichever PostgreSQL leads or replicates, and verify-full checks the name the client
    asked for against that server's certificate."""
    holders = [node]
    extra: list[str] = []
    if "patroni" in node.groups:
        holders += [n for n in cluster.patroni if n is not node]
        extra = list(cluster.settings.get("tls_client_names") or [])
    dns = [name for n in holders for name in n.all_names] + extra + ["localhost"]
    ips = [n.address for n in holders] + ["127.0.0.1"]
    return list(dict.fromkeys(dns)), list(dict.fromkeys(ips))
