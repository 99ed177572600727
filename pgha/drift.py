"""`pgha diff`: the live cluster against the inventory and group_data, changing nothing.

Each check gives one line per difference, naming the setting or file, the live value and
the wanted one: Patroni's DCS configuration, parameters waiting for a restart, the Patroni
and etcd members, the files the deploy renders (by its own rendering code), the nodes'
certificates (names, days left), updates of the packages the deploy installs (as the
nodes' package lists know them: `apt-get update` refreshes those). A check that cannot tell (a node or the
REST API silent) says so instead: `pgha diff` then exits 2.
"""

from __future__ import annotations

import base64
import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from pgha import components, remote
from pgha.backup import values as backup_values
from pgha.cluster import Cluster, Node
from pgha.errors import RemoteError
from pgha.etcd import values as etcd_values
from pgha.etcd.facts import EtcdMembers, EtcdNodeState
from pgha.haproxy import values as haproxy_values
from pgha.patroni import rest
from pgha.patroni import values as patroni_values
from pgha.patroni.facts import WatchdogHost
from pgha.pki import values as pki_values
from pgha.pki.authority import certificate_names
from pgha.pooler import values as pooler_values

SECRET_HINTS = ("password", "secret", "key")  # a file line naming one is not printed


@dataclass
class Report:
    differences: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # what could not be checked, and why


def _path_value(data: dict, path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def dcs(cluster: Cluster, report: Report) -> None:
    current = rest.get_json(cluster, "config")
    if not isinstance(current, dict):
        report.unknown.append("DCS configuration: no member's REST API answers GET /config")
        return
    wanted = patroni_values.dynamic_config(cluster.settings)
    live = {**patroni_values.PATRONI_DEFAULTS, **current}
    for path, value in sorted(patroni_values.dynamic_config_changes(wanted, current).items()):
        report.differences.append(f"DCS {path}: live {_path_value(live, path)!r}, wanted {value!r}")


def restarts_and_members(cluster: Cluster, report: Report) -> None:
    own = rest.own_statuses(cluster)
    for node in cluster.patroni:
        status = own.get(node.patroni_name)
        if status is None:
            report.unknown.append(f"{node.patroni_name}: its REST API does not answer")
        elif status.get("pending_restart"):
            reasons = status.get("pending_restart_reason") or {}
            said = ", ".join(f"{k} {v.get('old_value')} -> {v.get('new_value')}" for k, v in sorted(reasons.items()))
            report.differences.append(f"{node.patroni_name}: PostgreSQL waits for a restart"
                                      + (f" ({said})" if said else "") + " (`pgha restart --pending`)")
    members = {m["name"] for m in rest.members(cluster)}
    if members:
        wanted = {n.patroni_name for n in cluster.patroni}
        report.differences += [f"Patroni member {name}: live in the DCS, wanted absent (not in the inventory)"
                               for name in sorted(members - wanted)]
        report.differences += [f"Patroni member {name}: live absent from the DCS, wanted a member"
                               for name in sorted(wanted - members)]


def etcd_members(cluster: Cluster, report: Report) -> None:
    fact = EtcdMembers()
    command = fact.command(etcd_values.local_endpoint(cluster), **etcd_values.ROOT_LOGIN)
    for node in cluster.groups["etcd"]:
        try:
            members = fact.process(remote.run(node, command, timeout=30).splitlines())
        except RemoteError:
            continue
        if members is None:
            continue
        live = {m["name"] for m in members}
        wanted = {n.name for n in cluster.groups["etcd"]}
        report.differences += [f"etcd member {name}: live, wanted absent (not in the inventory)"
                               for name in sorted(live - wanted)]
        report.differences += [f"etcd member {name}: live absent, wanted a member" for name in sorted(wanted - live)]
        return
    report.unknown.append("etcd members: no etcd node answered `etcdctl member list`")


def rendered_files(cluster: Cluster, node: Node, container: str | None) -> dict[str, str]:
    """The files the deploy renders on ``node`` that can be rendered without its live state,
    as the deploy renders them: path -> content."""
    files = {}
    if components.component("patroni").runs_on(cluster, node):
        mode = patroni_values.member_watchdog_mode(cluster.settings, container)
        files[patroni_values.config_file(node)] = patroni_values.config_text(
            cluster, node, backup_values.patroni_config(cluster), mode)
    if components.component("haproxy").runs_on(cluster, node):
        files[haproxy_values.CONFIG_FILE] = haproxy_values.config_text(cluster)
    if components.component("pooler").runs_on(cluster, node):
        files[pooler_values.CONFIG_FILE] = pooler_values.config_text(cluster)
    return files


def _gather_command(paths: list[str], etcd: bool = False) -> str:
    parts = [f"echo '### file {p}'; base64 -w0 {p} 2>/dev/null; echo" for p in paths]
    if etcd:
        state = EtcdNodeState().command(data_dir=etcd_values.DATA_DIR, config_file=etcd_values.CONFIG_FILE)
        parts.append(f"echo '### etcd-state'; {state}")
    parts.append(f"echo '### certs'; for f in {pki_values.TLS_DIR}/*.crt; do "
                 "[ -f \"$f\" ] && echo \"$f $(base64 -w0 \"$f\")\"; done")
    parts.append(f"echo '### upgradable'; {UPGRADABLE_COMMAND}")
    parts.append(f"echo '### watchdog'; {WatchdogHost().command()}")
    return "; ".join(parts)


def _sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("### "):
            current = line[4:]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def _first_difference(path: str, live: str, wanted: str) -> str:
    live_lines, wanted_lines = live.splitlines(), wanted.splitlines()
    index = next((i for i, (a, b) in enumerate(zip(live_lines, wanted_lines)) if a != b),
                 min(len(live_lines), len(wanted_lines)))
    a = live_lines[index].strip() if index < len(live_lines) else "(end of file)"
    b = wanted_lines[index].strip() if index < len(wanted_lines) else "(end of file)"
    if any(hint in (a + b).lower() for hint in SECRET_HINTS):
        a = b = "(a line holding a secret: not shown)"
    return f"file {path}: differs from line {index + 1}: live {a!r}, wanted {b!r}"


def gather(cluster: Cluster, node: Node) -> dict[str, list[str]] | str:
    """One SSH round to ``node``: the files the deploy renders there, its certificates, its
    package updates, whether it is a container, an etcd member's state; or why not."""
    paths = sorted(rendered_files(cluster, node, None)) + ([etcd_values.CONFIG_FILE] if _is_etcd(cluster, node) else [])
    try:
        return _sections(remote.run(node, _gather_command(paths, _is_etcd(cluster, node)), timeout=60))
    except RemoteError as error:
        return f"{node.name}: not reached over SSH ({str(error).split('): ', 1)[-1]})"


def _is_etcd(cluster: Cluster, node: Node) -> bool:
    return node in cluster.groups.get("etcd", [])


def node_differences(cluster: Cluster, node: Node, seen: dict[str, list[str]], etcd_plan: dict | None,
                     now: datetime.datetime) -> list[str]:
    """What ``seen`` (gather's sections) shows different from what the deploy would make."""
    differences = []
    container = WatchdogHost().process(seen.get("watchdog", []))["container"]
    wanted = rendered_files(cluster, node, container)
    if etcd_plan is not None and node.name in etcd_plan:
        wanted[etcd_values.CONFIG_FILE] = etcd_values.config_text(cluster, node, etcd_plan[node.name])
    for path, content in sorted(wanted.items()):
        encoded = "".join(seen.get(f"file {path}", []))
        live = base64.b64decode(encoded).decode(errors="replace") if encoded else None
        if live is None:
            differences.append(f"file {path} on {node.name}: live absent, wanted rendered by the deploy")
        elif live != content:
            differences.append(f"{_first_difference(path, live, content)} (on {node.name})")
    dns, ips = pki_values.subject_names(cluster, node)
    for line in seen.get("certs", []):
        path, _, encoded = line.partition(" ")
        if path == pki_values.CA_FILE or not encoded:
            continue
        cert = x509.load_pem_x509_certificate(base64.b64decode(encoded))
        names, addresses = certificate_names(cert)
        missing = sorted(set(dns) - names) + sorted(set(ips) - addresses)
        if missing:
            differences.append(f"certificate {path} on {node.name}: live names lack {', '.join(missing)}, "
                               "wanted every name of the node (the deploy issues it again)")
        days = (cert.not_valid_after_utc - now).days
        if days < pki_values.RENEW_DAYS:
            differences.append(f"certificate {path} on {node.name}: live {days} days left, wanted more than "
                               f"{pki_values.RENEW_DAYS} (the deploy issues it again)")
    ours = set(components.packages_of(cluster, node))
    differences += [f"package {name} on {node.name}: live {installed}, available {available}"
                    for name, installed, available in upgradable(seen.get("upgradable", [])) if name in ours]
    return differences


# the updates a node's package lists know, one "name/suite new arch [upgradable from: old]" a line
UPGRADABLE_COMMAND = "apt list --upgradable 2>/dev/null | grep / || true"


def upgradable(lines: list[str]) -> list[tuple[str, str, str]]:
    """(package, installed, available) from `apt list --upgradable`'s lines, such as
    "patroni/stable 4.0.8-1 all [upgradable from: 4.0.7-1]"."""
    found = []
    for line in lines:
        name, _, rest_of_line = line.partition("/")
        fields = rest_of_line.split()
        if not name or len(fields) < 2:
            continue
        installed = rest_of_line.split("upgradable from: ")[-1].rstrip("]").strip() if "upgradable from" in line else "?"
        found.append((name, installed, fields[1]))
    return found


def check(cluster: Cluster) -> Report:
    report = Report()
    dcs(cluster, report)
    restarts_and_members(cluster, report)
    if cluster.groups.get("etcd"):
        etcd_members(cluster, report)
    now = datetime.datetime.now(datetime.UTC)
    with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
        seen = dict(zip([n.name for n in cluster.nodes], pool.map(lambda n: gather(cluster, n), cluster.nodes)))
    report.unknown += [answer for answer in seen.values() if isinstance(answer, str)]
    etcd_plan = None
    etcd_seen = {n.name: seen[n.name] for n in cluster.groups.get("etcd", [])}
    if etcd_seen and all(isinstance(v, dict) for v in etcd_seen.values()):
        states = {name: EtcdNodeState().process(v.get("etcd-state", [])) for name, v in etcd_seen.items()
                  if isinstance(v, dict)}
        etcd_plan = etcd_values.plan(cluster, states)
    for node in cluster.nodes:
        answer = seen[node.name]
        if isinstance(answer, dict):
            report.differences += node_differences(cluster, node, answer, etcd_plan, now)
    return report
