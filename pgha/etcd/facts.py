"""Facts about an etcd member, read with etcdctl (v3 API) on the member itself."""

from __future__ import annotations

import base64
import json
import shlex

from pyinfra.api import FactBase

from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan, fact
from pgha.etcd import values
from pgha.firewall import values as firewall_values
from pgha.pki.values import CA_FILE


def make_etcdctl_command(endpoints: str, *args: str, user: str | None = None, password_file: str | None = None,
                         dial_timeout: int = 3, command_timeout: int = 5) -> str:
    """The one etcdctl command line (v3 API) of the facts, the operations and the tests.

    An https endpoint is checked against the cluster CA. ``user`` logs in with the password
    in ``password_file`` on the host, read by the shell into etcdctl's environment: the
    password is in no command line. A missing file gives an empty password, with which
    etcdctl does not log in (enough while authentication is still off)."""
    login = f'ETCDCTL_USER={shlex.quote(user)}:"$(cat {shlex.quote(password_file or "")} 2>/dev/null)" ' if user else ""
    tls = f"--cacert={CA_FILE} " if "https://" in endpoints else ""
    return (
        f"{login}ETCDCTL_API=3 etcdctl --dial-timeout={dial_timeout}s --command-timeout={command_timeout}s "
        f"{tls}--endpoints={shlex.quote(endpoints)} {' '.join(shlex.quote(a) for a in args)}"
    ).rstrip()


class EtcdMembers(FactBase):
    """The member list as seen through ``endpoints``: ``[{"name", "ID", "peerURLs", "clientURLs"}]``,
    or None when no endpoint answers."""

    def command(self, endpoints: str, user: str | None = None, password_file: str | None = None) -> str:
        etcdctl = make_etcdctl_command(endpoints, "member", "list", "-w", "json", user=user, password_file=password_file)
        return f"command -v etcdctl >/dev/null && {etcdctl} 2>/dev/null || true"

    def process(self, output):
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        members = []
        for member in data.get("members", []):
            members.append(
                {
                    "ID": format(int(member["ID"]), "x"),
                    "name": member.get("name", ""),
                    "peerURLs": member.get("peerURLs", []),
                    "clientURLs": member.get("clientURLs", []),
                }
            )
        return sorted(members, key=lambda m: m["name"])


class EtcdHealth(FactBase):
    """Health of every member's client URL, from ``etcdctl endpoint health --cluster``:
    ``{endpoint: True/False}``; empty when the local member does not answer."""

    default = dict

    def command(self, endpoints: str, user: str | None = None, password_file: str | None = None) -> str:
        etcdctl = make_etcdctl_command(
            endpoints, "endpoint", "health", "--cluster", "-w", "json", user=user, password_file=password_file
        )
        return f"command -v etcdctl >/dev/null && {etcdctl} 2>/dev/null || true"

    def process(self, output):
        text = "\n".join(output).strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return {entry["endpoint"]: bool(entry.get("health")) for entry in data}


class EtcdNodeState(FactBase):
    """Whether the member has data, the initial-* settings its config file holds, and
    whether that file gives clients TLS (False: the plaintext configuration of a version
    before TLS)."""

    @staticmethod
    def default():
        return {"has_data": False, "initial_cluster": None, "initial_cluster_state": None, "tls": False}

    def command(self, data_dir: str, config_file: str) -> str:
        return (
            f"test -d {shlex.quote(data_dir)}/member && echo has_data: yes; "
            f"grep -E '^(initial-cluster(-state)?|client-transport-security):' {shlex.quote(config_file)} 2>/dev/null || true"
        )

    def process(self, output):
        state = self.default()
        for line in output:
            key, _, value = line.partition(":")
            value = value.strip().strip("'\"")
            if key == "has_data":
                state["has_data"] = value == "yes"
            elif key == "client-transport-security":
                state["tls"] = True
            elif key == "initial-cluster":
                state["initial_cluster"] = value
            elif key == "initial-cluster-state":
                state["initial_cluster_state"] = value
        return state


# etcd's Permission.Type, as etcdctl -w json prints it
PERMISSION_TYPES = {0: "read", 1: "write", 2: "readwrite"}


def prefix_end(prefix: str) -> str:
    """The range end etcd stores for a --prefix grant: the prefix with its last byte + 1."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class EtcdAuth(FactBase):
    """etcd's authentication as ``user`` (password in ``password_file``) sees it:
    ``{"enabled": True/False/None (etcd does not answer), "users": {name: [role, ...] or
    None (no such user)}, "roles": {name: [[permission, key, range end], ...] or None}}``
    for the ``users`` and ``roles`` asked about."""

    @staticmethod
    def default():
        return {"enabled": None, "users": {}, "roles": {}}

    def command(self, endpoints: str, user: str, password_file: str, users: list, roles: list) -> str:
        def etcdctl(*args: str) -> str:
            return make_etcdctl_command(endpoints, *args, user=user, password_file=password_file)

        # without a user: etcd refuses the request only when authentication is on
        anonymous = make_etcdctl_command(endpoints, "user", "list")
        parts = [
            f'out=$({anonymous} 2>&1) && echo "== auth off" || '
            'case "$out" in *"user name is empty"*) echo "== auth on";; esac'
        ]
        parts += [f"echo '== user {name}'; {etcdctl('user', 'get', name, '-w', 'json')} 2>/dev/null" for name in users]
        parts += [f"echo '== role {name}'; {etcdctl('role', 'get', name, '-w', 'json')} 2>/dev/null" for name in roles]
        return "; ".join(parts) + "; true"

    def process(self, output):
        state = self.default()
        sections: list[tuple[str, list[str]]] = []
        for line in output:
            if line.startswith("== "):
                sections.append((line[3:].strip(), []))
            elif sections:
                sections[-1][1].append(line)
        for header, lines in sections:
            kind, _, name = header.partition(" ")
            if kind == "auth":
                state["enabled"] = name == "on"
                continue
            try:
                data = json.loads("\n".join(lines)) if lines else None
            except ValueError:
                data = None
            if kind == "user":
                state["users"][name] = None if data is None else sorted(data.get("roles") or [])
            elif kind == "role":
                state["roles"][name] = None if data is None else [
                    [PERMISSION_TYPES.get(p.get("permType", 0), "read"), _text(p.get("key")), _text(p.get("range_end"))]
                    for p in data.get("perm") or []
                ]
        return state


def _text(value) -> str:
    """A key of etcdctl's JSON output (base64 bytes) as text."""
    return base64.b64decode(value).decode() if value else ""


def observed(cluster: Cluster, node: Node) -> Plan:
    """What a converge asks of an etcd member, read in its snapshot (pgha.common.snapshot)."""
    endpoint = values.local_endpoint(cluster)
    first = []
    if node is cluster.etcd[0]:  # users, roles, authentication and health are kept from the first member
        first = [fact(EtcdAuth, endpoints=endpoint, **values.auth_asked(cluster), **values.ROOT_LOGIN),
                 fact(EtcdHealth, endpoints=endpoint, **values.ROOT_LOGIN)]
    return Plan(
        paths=("/etc/etcd", values.DEFAULTS_FILE, "/var/lib/etcd", *firewall_values.paths(["etcd"])),
        units=(values.UNIT, *firewall_values.units(["etcd"])),
        packages=tuple(values.PACKAGES),
        facts=(
            fact(EtcdNodeState, data_dir=values.DATA_DIR, config_file=values.CONFIG_FILE),
            fact(EtcdMembers, endpoints=endpoint, **values.ROOT_LOGIN),
            *first,
        ),
    )
