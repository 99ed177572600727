"""What every setting must look like: the cluster's own settings here, each component's in
its package (pgha.components lists them), an extension's in its own (pgha.settings.extensions).

Every setting is defined once, with its value, in group_data/all.py; the schemas only know
its type and how to say what is expected.
"""

from __future__ import annotations

from pgha import components
from pgha.releases import RELEASES
from pgha.settings import extensions
from pgha.validators import (
    Setting,
    is_bool,
    is_dns_label,
    is_hostname,
    is_ipv4,
    is_list_of,
    is_network,
    is_str,
)

# The settings of the whole cluster that belong to no one component (each component's are
# in its package, listed by pgha.components).
CORE_SETTINGS: dict[str, Setting] = {
    "debian_release": (
        lambda v: v in RELEASES, f"a supported Debian release: {' or '.join(sorted(RELEASES))}"
    ),
    "client_networks": (
        is_list_of(is_network),
        "the list of networks your PostgreSQL clients connect from, such as ['192.168.10.0/24'] "
        "(no default: set it in your inventory's group_data/all.py)",
    ),
    "tls_ca_file": (
        lambda v: v is None or is_str(v),
        "None (the cluster's own CA in pki/) or the path of your CA's certificate (PEM)",
    ),
    "tls_client_names": (
        lambda v: is_list_of(is_hostname)(v),
        "a list of DNS names such as ['db.example.com'] (or [])",
    ),
    "test_cluster": (
        is_bool,
        "true or false (true only for a cluster whose data may be lost: `make drills` fails it over, "
        "restores and rebuilds it)",
    ),
}


def cluster_settings() -> dict[str, Setting]:
    """Every setting the cluster's hosts must see alike: the core ones and each component's."""
    return {**CORE_SETTINGS, **components.settings()}


def all_settings() -> dict[str, Setting]:
    """Those, and the settings of the registered extensions (read from their own group)."""
    return {**cluster_settings(), **extensions.settings()}


# Host data: where a host is and what it is called. pyinfra connects with the ssh_* keys
# (pgha.inventory.host() sets ssh_hostname to dns_name or address).
HOST_DATA: dict[str, Setting] = {
    "address": (is_ipv4, "an IPv4 address: the one every configuration of the cluster uses"),
    "dns_name": (is_hostname, "a DNS name such as pg1.example.com"),
    "patroni_name": (is_dns_label, "a name of letters, digits and '-' (it goes into /etc/hosts)"),
    "aliases": (is_list_of(is_hostname), "a list of host names such as ['p1']"),
    "tls_cert_file": (is_str, "the path, on the control machine, of the host's certificate (PEM)"),
    "tls_key_file": (is_str, "the path, on the control machine, of the host's private key (PEM)"),
}


def host_data() -> dict[str, Setting]:
    """Host data pgha knows: its own and the registered extensions'."""
    return {**HOST_DATA, **extensions.host_data()}


def ssh_data_keys() -> set[str]:
    """The host data pyinfra's SSH connector reads (ssh_hostname, ssh_user, ssh_key, ...)."""
    from pyinfra.connectors.ssh import connector_data_meta

    return set(connector_data_meta)


# Settings that were renamed: the old name is refused with the new one.
RENAMED_SETTINGS = {
    "lab_release": "debian_release (the nodes' Debian release, lab or not)",
}
