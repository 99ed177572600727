"""Putting a node's TLS files (pgha.pki.authority, on the control machine) onto the node:
the CA certificate, and the node's certificate and key as one daemon's own copy."""

from __future__ import annotations

from pgha.common.operations import directory_in_place, file_in_place
from pgha.pki import values
from pgha.cluster import Cluster, Node


def ca_certificate(cluster: Cluster, node: Node):
    directory_in_place(name="tls: directory", path=values.TLS_DIR, mode="755")
    return file_in_place(name=f"tls: {values.CA_FILE}", path=values.CA_FILE,
                         content=cluster.tls[node.name].ca.read_bytes(), mode="644")


def certificate(cluster: Cluster, node: Node, service: str, user: str, group: str, combined: bool = False) -> list:
    """The CA certificate and ``service``'s copy of the node's certificate and key (0600,
    owned by ``user``), or one PEM of both for HAProxy (``combined``). Returns the
    operations: any did_change() means the daemon must load its files again."""
    local = cluster.tls[node.name]
    changes = [ca_certificate(cluster, node)]
    if combined:
        changes.append(file_in_place(
            name=f"tls: {values.pem_file(service)} (certificate and key)", path=values.pem_file(service),
            content=local.cert.read_bytes() + local.key.read_bytes(), user=user, group=group, mode="600",
        ))
        return changes
    for local_file, dest, mode in ((local.cert, values.cert_file(service), "644"),
                                   (local.key, values.key_file(service), "600")):
        changes.append(file_in_place(name=f"tls: {dest}", path=dest, content=local_file.read_bytes(),
                                     user=user, group=group, mode=mode))
    return changes


def changed(operations: list):
    """A callable for running_and_refreshed: whether any of ``operations`` changed a file."""
    return lambda: any(op.did_change() for op in operations)
