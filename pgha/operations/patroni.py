"""Operations on Patroni members and on the cluster through patronictl and the REST API."""

from __future__ import annotations

import json
import shlex

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from pgha.facts.patroni import PatroniCluster, PatroniDynamicConfig, PatroniRole, PatroniStatus
from pgha.operations.checks import executing, poll
from pgha.patroni import dynamic_config_changes


def patronictl(config_file: str) -> str:
    return f"patronictl -c {shlex.quote(config_file)}"


@operation()
def leader_elected(port: int, timeout: float = 120):
    """Wait until this member holds the leader lock (first bootstrap). Changes nothing."""
    if not executing():
        return

    def probe():
        role = host.get_fact(PatroniRole, port=port)
        return role["role"] == "leader", f"{host.name} is {role['role'] or 'not answering'}, not leader"

    host.noop(poll(probe, timeout, interval=2))
    yield from ()


@operation()
def dynamic_config_applied(wanted: dict, config_file: str, port: int):
    """The DCS configuration holds ``wanted`` (patronictl edit-config), changed only where
    a value differs."""
    current = host.get_fact(PatroniDynamicConfig, port=port)
    if current is None:
        if executing():
            raise OperationError(f"Patroni REST API on {host.name} does not answer GET /config")
        return
    changes = dynamic_config_changes(wanted, current)
    if not changes:
        host.noop("the DCS configuration matches group_data")
        return
    args = []
    for path, value in sorted(changes.items()):
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        if path.startswith("postgresql.parameters."):
            args.append(f"-p {shlex.quote(path.removeprefix('postgresql.parameters.') + '=' + text)}")
        else:
            args.append(f"-s {shlex.quote(path + '=' + text)}")
    yield f"{patronictl(config_file)} edit-config --force --quiet {' '.join(args)}"


@operation()
def pending_restarts_applied(scope: str, config_file: str, port: int):
    """Members flagged ``pending_restart`` (a parameter that needs a restart changed) are
    restarted one at a time, replicas first, the leader last."""
    members = host.get_fact(PatroniCluster, port=port) or []
    pending = [m for m in members if m["pending_restart"]]
    if not pending:
        host.noop("no member waits for a restart")
        return
    for member in sorted(pending, key=lambda m: m["role"] == "leader"):
        yield (
            f"{patronictl(config_file)} restart {shlex.quote(scope)} "
            f"{shlex.quote(member['name'])} --force --pending"
        )


@operation()
def paused(scope: str, config_file: str, pause: bool = True):
    """Maintenance mode on (``pause``) or off, waiting until every member follows."""
    action = "pause" if pause else "resume"
    yield f"{patronictl(config_file)} {action} {shlex.quote(scope)} --wait"


def _summary(members: list[dict], replication: dict) -> str:
    header = f"{'member':<8} {'host':<15} {'role':<8} {'state':<10} {'TL':>3} {'lag (bytes)':>12} replication"
    rows = [header, "-" * len(header)]
    for m in members:
        rep = "-" if m["role"] == "leader" else replication.get(m["name"], "not connected")
        rows.append(
            f"{m['name']:<8} {m['host'] or '-':<15} {m['role'] or '-':<8} {m['state'] or '-':<10} "
            f"{m['timeline'] if m['timeline'] is not None else '-':>3} {m['lag']:>12} {rep}"
        )
    return "\n".join(rows)


def cluster_problems(expected: list[str], members: list[dict] | None, replication: dict) -> list[str]:
    """Why the cluster is not one leader with every other expected member streaming."""
    if members is None:
        return ["the Patroni REST API does not answer GET /cluster"]
    problems = []
    leaders = [m["name"] for m in members if m["role"] == "leader"]
    if len(leaders) != 1:
        problems.append(f"expected exactly one leader, found {len(leaders)}: {leaders}")
    names = {m["name"] for m in members}
    missing = sorted(set(expected) - names)
    if missing:
        problems.append(f"members missing from the cluster: {', '.join(missing)}")
    for m in members:
        if m["role"] != "leader" and replication.get(m["name"]) != "streaming":
            problems.append(
                f"replica {m['name']} is not streaming from the leader "
                f"(state {m['state']}, replication {replication.get(m['name'], 'not connected')})"
            )
    return problems


@operation()
def cluster_healthy(expected: list[str], port: int, timeout: float = 180, connect_hint: str = ""):
    """Exactly one leader, every other expected member a streaming replica; prints the
    summary table. Changes nothing; fails the deploy when the cluster does not converge."""
    if not executing():
        return
    seen: dict = {}

    def probe():
        members = host.get_fact(PatroniCluster, port=port)
        replication = {}
        leader = next((m for m in members or [] if m["role"] == "leader"), None)
        if leader:
            status = host.get_fact(PatroniStatus, url=f"http://{leader['host']}:{port}/patroni")
            replication = {r.get("application_name"): r.get("state") for r in status.get("replication", [])}
        seen.update(members=members, replication=replication)
        problems = cluster_problems(expected, members, replication)
        return not problems, "; ".join(problems)

    poll(probe, timeout, interval=2)
    logger.info("\n--> Cluster status\n" + _summary(seen["members"], seen["replication"]) + connect_hint)
    host.noop("exactly one leader, every replica streaming")
    yield from ()
