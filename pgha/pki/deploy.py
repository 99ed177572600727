"""Putting a node's TLS files (pgha.pki.authority, on the control machine) onto the node:
the CA certificate, and the node's certificate and key as one daemon's own copy."""

from __future__ import annotations

from io import BytesIO

from pyinfra.api import deploy
from pyinfra.operations import files

from pgha.pki import values


@deploy("tls: CA certificate")
def ca_certificate(cluster, node):
    files.directory(name="tls: directory", path=values.TLS_DIR, user="root", group="root", mode="755")
    return files.put(
        name=f"tls: {values.CA_FILE}",
        src=str(cluster.tls[node.name].ca),
        dest=values.CA_FILE,
        user="root",
        group="root",
        mode="644",
    )


def certificate(cluster, node, service: str, user: str, group: str, combined: bool = False) -> list:
    """The CA certificate and ``service``'s copy of the node's certificate and key (0600,
    owned by ``user``), or one PEM of both for HAProxy (``combined``). Returns the
    operations: any did_change() means the daemon must load its files again."""
    local = cluster.tls[node.name]
    changes = [ca_certificate(cluster, node)]
    if combined:
        pem = local.cert.read_bytes() + local.key.read_bytes()
        changes.append(files.put(
            name=f"tls: {values.pem_file(service)} (certificate and key)",
            src=BytesIO(pem),
            dest=values.pem_file(service),
            user=user,
            group=group,
            mode="600",
        ))
        return changes
    for local_file, dest, mode in ((local.cert, values.cert_file(service), "644"),
                                   (local.key, values.key_file(service), "600")):
        changes.append(files.put(
            name=f"tls: {dest}", src=str(local_file), dest=dest, user=user, group=group, mode=mode,
        ))
    return changes


def changed(operations: list):
    """A callable for running_and_refreshed: whether any of ``operations`` changed a file."""
    return lambda: any(op.did_change() for op in operations)
