"""The cluster's certificate authority, on the control machine.

Created on first use in `pki/` at the repository root (or the directory in $PGHA_PKI):
`ca.crt` and `ca.key`, then `hosts/<name>.crt` and `hosts/<name>.key` for every node, with
the names pgha.pki.values.subject_names asks for. A host's certificate is issued again when
those names change, when it no longer matches the CA, or when fewer than RENEW_DAYS days
remain. Private keys are 0600 in a 0700 directory and are never printed.

A user with their own CA sets `tls_ca_file` and gives each host `tls_cert_file` and
`tls_key_file`: those files are used as they are, and problems() says what they lack.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgha import PROJECT_ROOT
from pgha.private_file import write_private
from pgha.pki.values import RENEW_DAYS, subject_names
from pgha.cluster import Cluster, Node

ENV_VAR = "PGHA_PKI"
CA_DAYS = 3650
HOST_DAYS = 365


@dataclass(frozen=True)
class HostFiles:
    """A node's TLS files on the control machine."""

    ca: Path
    cert: Path
    key: Path


def directory() -> Path:
    return Path(os.environ.get(ENV_VAR) or PROJECT_ROOT / "pki")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_bytes(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - _now()).total_seconds() / 86400


def ensure_ca(folder: Path, common_name: str) -> tuple[x509.Certificate, object]:
    """The CA of ``folder``, created if it does not exist (an existing one is kept: every
    certificate of the cluster depends on it)."""
    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        return _load_cert(cert_path), _load_key(key_path)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _key_bytes(key), 0o600)
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def certificate_names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (
        set(san.get_values_for_type(x509.DNSName)),
        {str(a) for a in san.get_values_for_type(x509.IPAddress)},
    )


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _current(cert_path: Path, key_path: Path, ca, dns: list[str], ips: list[str]) -> bool:
    """Whether the host files can stay: same names, issued by this CA, with its key, and
    more than RENEW_DAYS days left."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert, key = _load_cert(cert_path), _load_key(key_path)
    except ValueError:
        return False
    return (
        certificate_names(cert) == (set(dns), set(ips))
        and signed_by(cert, ca)
        and cert.public_key() == key.public_key()
        and _days_left(cert) > RENEW_DAYS
    )


def issue(folder: Path, name: str, dns: list[str], ips: list[str], ca_cert, ca_key) -> HostFiles:
    """``hosts/<name>.crt`` and ``.key`` in ``folder``, issued again only when needed."""
    cert_path = folder / "hosts" / f"{name}.crt"
    key_path = folder / "hosts" / f"{name}.key"
    if not _current(cert_path, key_path, ca_cert, dns, ips):
        key = _new_key()
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=HOST_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
                ),
                critical=False,
            )
            # servers (etcd, PostgreSQL, Patroni, HAProxy) and clients (etcd peers)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_private(key_path, _key_bytes(key), 0o600)
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return HostFiles(folder / "ca.crt", cert_path, key_path)


def own_files(cluster: Cluster, node: Node) -> HostFiles:
    return HostFiles(
        Path(cluster.settings["tls_ca_file"]), Path(node.tls_cert_file or ""), Path(node.tls_key_file or "")
    )


def client_ca(cluster: Cluster) -> Path:
    """The CA certificate clients on the control machine verify the cluster with."""
    return Path(cluster.settings.get("tls_ca_file") or directory() / "ca.crt")


def host_files(cluster: Cluster) -> dict[str, HostFiles]:
    """Every node's TLS files on the control machine: the user's own (tls_ca_file), or the
    cluster CA's, created and issued as needed."""
    if cluster.settings.get("tls_ca_file"):
        return {node.name: own_files(cluster, node) for node in cluster.nodes}
    folder = directory()
    ca_cert, ca_key = ensure_ca(folder, f"pgha {cluster.settings['patroni_scope']} CA")
    return {
        node.name: issue(folder, node.name, *subject_names(cluster, node), ca_cert, ca_key)
        for node in cluster.nodes
    }


def problems(cluster: Cluster) -> list[str]:
    """What is wrong with the user's own TLS files (tls_ca_file): each message names the
    host, the file and what is expected. The cluster CA's own files need no check."""
    ca_file = cluster.settings.get("tls_ca_file")
    if not ca_file:
        return []
    found: list[str] = []
    try:
        ca = _load_cert(Path(ca_file))
    except (OSError, ValueError) as error:
        return [f"tls_ca_file: {ca_file!r} cannot be read as a PEM certificate ({error}): expected your CA's certificate"]
    for node in cluster.nodes:
        where = f"inventory: host {node.name!r}"
        if not node.tls_cert_file or not node.tls_key_file:
            found.append(
                f"{where} has no tls_cert_file and tls_key_file: expected both in its host data "
                "when tls_ca_file is set (your CA issues every host's certificate)"
            )
            continue
        try:
            cert = _load_cert(Path(node.tls_cert_file))
        except (OSError, ValueError) as error:
            found.append(f"{where}: tls_cert_file {node.tls_cert_file!r} cannot be read as a PEM certificate ({error})")
            continue
        try:
            key = _load_key(Path(node.tls_key_file))
        except (OSError, ValueError, TypeError) as error:
            found.append(
                f"{where}: tls_key_file {node.tls_key_file!r} cannot be read as an unencrypted PEM private key ({error})"
            )
            continue
        if cert.public_key() != key.public_key():
            found.append(f"{where}: tls_key_file {node.tls_key_file!r} is not the key of tls_cert_file {node.tls_cert_file!r}")
        if not signed_by(cert, ca):
            found.append(f"{where}: tls_cert_file {node.tls_cert_file!r} is not issued by tls_ca_file {ca_file!r}")
        if _days_left(cert) <= 0:
            found.append(f"{where}: tls_cert_file {node.tls_cert_file!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        dns, ips = subject_names(cluster, node)
        have_dns, have_ips = certificate_names(cert)
        missing = [d for d in dns if d not in have_dns] + [i for i in ips if i not in have_ips]
        if missing:
            found.append(
                f"{where}: tls_cert_file {node.tls_cert_file!r} lacks the subject alternative names "
                f"{', '.join(missing)}: expected every name and address clients use for it"
            )
    return found


def common_names(cluster: Cluster) -> dict[str, str]:
    """Each node's certificate common name (what pgBackRest's tls-server-auth matches), by
    node name: read from the certificate, so your own CA's naming is followed too."""
    names: dict[str, str] = {}
    for name, files in cluster.tls.items():
        attributes = _load_cert(files.cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names[name] = str(attributes[0].value) if attributes else name
    return names
