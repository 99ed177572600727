"""Faults injected on this machine with LXC commands (the lab), and the few questions asked
of the nodes while they are faulty. The only network traffic goes to the lab's containers."""

from __future__ import annotations

import subprocess

import requests

from pgha.errors import DrillError
from pgha.etcd.values import client_url
from pgha.pki.authority import client_ca
from pgha.postgres.facts import make_psql_command


def run(args: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise DrillError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def container(node) -> str:
    return node.extra.get("lxc_container") or node.name


def attach(node, *command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """``command`` run inside the node's container (lxc-attach)."""
    return run(["lxc-attach", "-n", container(node), "--", *command], timeout=timeout, check=check)


def veth(node) -> str:
    """The host side of the container's network interface (`lxc-info`'s Link: line)."""
    for line in run(["lxc-info", "-n", container(node)]).stdout.splitlines():
        if line.strip().startswith("Link:"):
            return line.split(":", 1)[1].strip()
    raise DrillError(f"no Link: line in lxc-info -n {container(node)}")


def cut_off(node) -> str:
    """The node cut off the network both ways (its veth's host side down): that interface,
    for ``reconnect``."""
    link = veth(node)
    run(["ip", "link", "set", link, "down"])
    return link


def reconnect(link: str) -> None:
    run(["ip", "link", "set", link, "up"])


CUT_TABLE = "pgha_drill_cut"  # the nftables table of drop_traffic, in the node


def drop_traffic(node, addresses: list[str]) -> None:
    """The node's traffic to and from ``addresses`` dropped, both ways, by a table of its own
    in its nftables (the rest of its traffic goes on); ``restore_traffic`` deletes it."""
    listed = ", ".join(addresses)
    rules = (f"table inet {CUT_TABLE} {{\n"
             f"  chain input {{ type filter hook input priority -10; ip saddr {{ {listed} }} drop; }}\n"
             f"  chain output {{ type filter hook output priority -10; ip daddr {{ {listed} }} drop; }}\n}}\n")
    attach(node, "sh", "-c", f"printf '{rules}' | nft -f -")


def restore_traffic(node) -> None:
    attach(node, "nft", "delete", "table", "inet", CUT_TABLE)


def local_is_primary(cluster, node) -> bool | None:
    """pg_is_in_recovery() asked inside the container (works while it is cut off):
    True primary, False replica, None not running."""
    s = cluster.settings
    command = make_psql_command("select pg_is_in_recovery()", s["postgresql_port"], user=s["patroni_superuser"])
    proc = attach(node, "sh", "-c", command, timeout=15, check=False)
    return {"f": True, "t": False}.get(proc.stdout.strip()) if proc.returncode == 0 else None


def etcd_leader_first(cluster) -> list:
    """The etcd members, the raft leader first (as the members report it through etcd's v3
    JSON gateway), else inventory order."""
    nodes = list(cluster.etcd)
    ca = str(client_ca(cluster))  # neither call needs a login, both need TLS
    for node in nodes:
        base = client_url(cluster, node)
        try:
            leader_id = requests.post(f"{base}/v3/maintenance/status", json={}, timeout=2, verify=ca).json()["leader"]
            members = requests.post(f"{base}/v3/cluster/member/list", json={}, timeout=2, verify=ca).json()
            name = next((m["name"] for m in members["members"] if m["ID"] == leader_id), None)
            if name:
                return sorted(nodes, key=lambda n: n.name != name)
        except (requests.RequestException, ValueError, KeyError):
            continue
    return nodes
