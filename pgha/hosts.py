"""Your own machines in an inventory file: one call per host says where it is.

    from pgha.hosts import host
    patroni = [host("pg-a", "192.0.2.21", patroni_name="pg-a", ssh_user="admin", _sudo=True)]

``address`` (IPv4) is what every configuration of the cluster uses (etcd URLs, pg_hba,
HAProxy, the firewall); pyinfra connects over SSH to ``dns_name`` when you give one, else to
the address. Host keys are checked strictly against ``ssh_known_hosts_file`` (default
``known_hosts`` beside the inventory file that calls this): the README's first-contact step
fills it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def host(name: str, address: str | None = None, dns_name: str | None = None, ssh_user: str = "root",
         **data: Any) -> tuple[str, dict[str, Any]]:
    """(inventory name, host data) for pyinfra: connect to ``dns_name`` or ``address``. A
    missing address or a misspelt keyword is not a Python error here: the inventory's check
    names it (check_inventory, before pyinfra connects)."""
    caller = Path(inspect.stack()[1].filename).resolve().parent
    return name, {
        "address": address,
        **({"dns_name": dns_name} if dns_name else {}),
        "ssh_hostname": dns_name or address,
        "ssh_user": ssh_user,
        "ssh_known_hosts_file": str(caller / "known_hosts"),
        "ssh_strict_host_key_checking": "yes",
        **data,
    }
