"""Facts about an etcd member, read with etcdctl (v3 API) on the member itself."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase


def make_etcdctl_command(endpoints: str, *args: str, dial_timeout: int = 3, command_timeout: int = 5) -> str:
    """The one etcdctl command line (v3 API) of the facts, the operations and the tests."""
    return (
        f"ETCDCTL_API=3 etcdctl --dial-timeout={dial_timeout}s --command-timeout={command_timeout}s "
        f"--endpoints={shlex.quote(endpoints)} {' '.join(shlex.quote(a) for a in args)}"
    ).rstrip()


class EtcdMembers(FactBase):
    """The member list as seen through ``endpoints``: ``[{"name", "ID", "peerURLs", "clientURLs"}]``,
    or None when no endpoint answers."""

    def command(self, endpoints: str) -> str:
        etcdctl = make_etcdctl_command(endpoints, "member", "list", "-w", "json")
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

    def command(self, endpoints: str) -> str:
        etcdctl = make_etcdctl_command(endpoints, "endpoint", "health", "--cluster", "-w", "json")
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
    """Whether the member has data, and the initial-* settings its config file holds."""

    @staticmethod
    def default():
        return {"has_data": False, "initial_cluster": None, "initial_cluster_state": None}

    def command(self, data_dir: str, config_file: str) -> str:
        return (
            f"test -d {shlex.quote(data_dir)}/member && echo has_data: yes; "
            f"grep -E '^initial-cluster(-state)?:' {shlex.quote(config_file)} 2>/dev/null || true"
        )

    def process(self, output):
        state = self.default()
        for line in output:
            key, _, value = line.partition(":")
            value = value.strip().strip("'\"")
            if key == "has_data":
                state["has_data"] = value == "yes"
            elif key == "initial-cluster":
                state["initial_cluster"] = value
            elif key == "initial-cluster-state":
                state["initial_cluster_state"] = value
        return state
