"""Operations on Patroni members and on the cluster through patronictl and the REST API."""

from __future__ import annotations

import contextlib
import json
import shlex

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation
from pyinfra.api.exceptions import OperationError

from pgha.common import snapshot
from pgha.common.checks import check_until, executing
from pgha.common.final import say_last
from pgha.patroni import removal
from pgha.patroni.facts import (
    PatroniCluster,
    PatroniDynamicConfig,
    PatroniPaused,
    PatroniRole,
    PatroniStatus,
    patronictl,
)
from pgha.patroni.rest import cluster_problems, member_rows, replication_states, summary
from pgha.patroni.values import dynamic_config_changes
from pgha.postgres.facts import PostgresSettings, PostmasterParameters, RoleLogin, make_psql_command
from pgha.waiting import wait_for


@operation()
def leader_elected(port: int, timeout: float = 120):
    """Wait until this member holds the leader lock (first bootstrap). Changes nothing."""
    if not executing():
        return

    def probe():
        role = host.get_fact(PatroniRole, port=port)["role"]
        if role == "leader":
            return True, f"{host.name} holds the leader lock"
        return False, f"{host.name} is {role or 'not answering'}, not leader"

    host.noop(check_until(probe, timeout, interval=2))
    yield from ()


def _wait_until_flagged(port: int, parameters: list[str], timeout: float) -> None:
    """Patroni flags members ``pending_restart`` only at its next HA loop after a change."""

    def probe():
        members = host.get_fact(PatroniCluster, port=port)
        if not members:
            return False, "the Patroni REST API does not answer GET /cluster"
        waiting = [m["name"] for m in members if not m["pending_restart"]]
        return not waiting, f"members not flagged for a restart after {', '.join(parameters)} changed: {', '.join(waiting)}"

    check_until(probe, timeout, interval=1)


@operation()
def dynamic_config_applied(wanted: dict, config_file: str, port: int, pg_port: int,
                           settle_seconds: float = 30, answer_timeout: float = 60):
    """The DCS configuration holds ``wanted`` (patronictl edit-config), changed only where
    a value differs. When a parameter PostgreSQL reads at start only (pg_settings context
    ``postmaster``) changed, waits until Patroni flags the members for a restart, so that
    pending_restarts_applied, next, restarts them in this same run. A member that has just
    bootstrapped may need a moment before /config answers: up to ``answer_timeout`` s."""
    current = snapshot.get(PatroniDynamicConfig, port=port)
    if current is None:
        if not executing():
            return
        seen = {}

        def answers():
            seen["config"] = host.get_fact(PatroniDynamicConfig, port=port)
            return seen["config"] is not None, f"Patroni REST API on {host.name} does not answer GET /config"

        check_until(answers, answer_timeout, interval=1)
        current = seen["config"]
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
    changed_parameters = [p.removeprefix("postgresql.parameters.") for p in changes if p.startswith("postgresql.parameters.")]
    if executing() and changed_parameters:
        restart_only = host.get_fact(PostmasterParameters, names=changed_parameters, port=pg_port)
        if restart_only:
            yield FunctionCommand(_wait_until_flagged, (port, restart_only, settle_seconds), {})


def _flagged(port: int, ask=None) -> list[dict]:
    members = (ask or host.get_fact)(PatroniCluster, port=port) or []
    # replicas first, the leader last
    return sorted((m for m in members if m["pending_restart"]), key=lambda m: m["role"] == "leader")


def _rolling_restart(scope: str, config_file: str, port: int, settle_seconds: float, leader_guard=None,
                     rounds: int = 3) -> None:
    """Restart flagged members one at a time, replicas first. A replica cannot run with a
    lower max_connections (and similar) than its primary, so lowering one flags the
    replicas again once the leader has restarted: wait one HA loop and go round again.
    ``leader_guard``: a context manager factory around the leader's restart (pgha.rollout:
    every PgBouncer paused until the restarted leader takes writes again)."""
    for _ in range(rounds):
        pending = _flagged(port)
        if not pending:
            return
        for member in pending:
            command = f"{patronictl(config_file)} restart {shlex.quote(scope)} {shlex.quote(member['name'])} --force --pending"
            guard = leader_guard() if leader_guard and member["role"] == "leader" else contextlib.nullcontext()
            with guard:
                status, output = host.run_shell_command(command)
            if not status:
                raise OperationError(f"restart of {member['name']} failed: {output.stderr}")
            logger.info(f"    [{host.name}] restarted {member['name']} ({member['role']})")
        if not wait_for(lambda: bool(_flagged(port)), settle_seconds, interval=1):
            return  # nothing flagged again within one HA loop: done
    if _flagged(port):
        raise OperationError(f"members still wait for a restart after {rounds} rounds")


def _restart_once_flagged(scope: str, config_file: str, port: int, settle_seconds: float, leader_guard=None) -> None:
    """Each member flags itself at its own HA loop: wait until all are flagged (or the
    loop has surely passed), so that the replicas go first and the leader last."""
    def all_flagged() -> bool:
        members = host.get_fact(PatroniCluster, port=port) or []
        return bool(members) and all(m["pending_restart"] for m in members)

    wait_for(all_flagged, settle_seconds, interval=1)
    if _flagged(port):
        _rolling_restart(scope, config_file, port, settle_seconds, leader_guard)


def _awaiting_restart(local_parameters: dict, pg_port: int) -> list[str]:
    """The members' own parameters PostgreSQL reads at start only whose running value is
    not the wanted one (archive_mode when a backup host comes): a restart is owed."""
    names = sorted(local_parameters)
    restart_only = snapshot.get(PostmasterParameters, names=names, port=pg_port)
    running = snapshot.get(PostgresSettings, names=names, port=pg_port) if restart_only else {}
    return [name for name in restart_only if name in running and running[name] != str(local_parameters[name])]


@operation()
def pending_restarts_applied(scope: str, config_file: str, port: int, settle_seconds: float = 30,
                             local_parameters: dict | None = None, pg_port: int | None = None, leader_guard=None):
    """Members flagged ``pending_restart`` are restarted one at a time, replicas first, the
    leader last (in place: the leadership does not move). A parameter of the members' own
    files that PostgreSQL reads at start only and that runs with another value
    (``local_parameters``, asked as the deploy executes): Patroni flags the members only at
    its next HA loop after the reload, so wait up to ``settle_seconds`` for that."""
    if _flagged(port, snapshot.get):
        yield FunctionCommand(_rolling_restart, (scope, config_file, port, settle_seconds), {"leader_guard": leader_guard})
        return
    if executing() and local_parameters and pg_port and _awaiting_restart(local_parameters, pg_port):
        yield FunctionCommand(_restart_once_flagged, (scope, config_file, port, settle_seconds), {"leader_guard": leader_guard})
        return
    host.noop("no member waits for a restart")


RESUME_TRIES = 30  # 2 s apart


@operation()
def postgres_settings_applied(settings: dict[str, str], port: int, timeout: float = 120):
    """Wait until the running PostgreSQL has ``settings`` (after a Patroni reload). Changes
    nothing; fails the deploy when it does not within ``timeout`` seconds."""
    if not executing():
        return

    def probe():
        current = host.get_fact(PostgresSettings, names=sorted(settings), port=port)
        wrong = {k: current.get(k) for k, v in settings.items() if current.get(k) != v}
        return not wrong, f"PostgreSQL on {host.name} still runs {wrong}, expected {settings}"

    check_until(probe, timeout, interval=2)
    host.noop(f"PostgreSQL runs {settings}")
    yield from ()


@operation()
def paused(scope: str, config_file: str, pause: bool = True):
    """Maintenance mode on (``pause``) or off, waiting until every member follows; as the
    DCS says, reached with ``config_file`` (a daemon just restarted may not know yet)."""
    action = "pause" if pause else "resume"
    state = host.get_fact(PatroniPaused, config_file=config_file)
    if state is None and pause:
        # the daemons running this file have lost the DCS as well: nothing to pause through it
        host.noop(f"the DCS does not answer with {config_file}: not paused through it")
        return
    if state == pause:
        host.noop(f"the cluster is {'paused' if pause else 'not paused'} already")
        return
    command = f"{patronictl(config_file)} {action} {shlex.quote(scope)} --wait"
    if pause:
        yield command
        return
    # right after a restart no member's REST API may answer yet (patronictl resume asks
    # one): retried until the DCS says the cluster is managed again
    managed = f"out=$({patronictl(config_file)} show-config 2>/dev/null) && ! printf '%s\\n' \"$out\" | grep -q '^pause: true'"
    yield f"for i in $(seq {RESUME_TRIES}); do {command} && exit 0; sleep 2; {managed} && exit 0; done; exit 1"


MAINTENANCE_MODE_KEPT = (
    "the cluster is in maintenance mode (pgha pause) and stays so: Patroni does not fail over; "
    "what this run changes is applied, members restarted only where a change needs it; `pgha resume` ends it"
)


@operation()
def maintenance_mode_kept():
    """Says, as it goes and again at the end, that the user's maintenance mode is left on."""
    say_last("maintenance", MAINTENANCE_MODE_KEPT)
    host.noop(MAINTENANCE_MODE_KEPT)
    yield from ()


@operation()
def cluster_healthy(expected: list[dict], port: int, maximum_lag: int | None = None, timeout: float = 180,
                    connect: str = ""):
    """Exactly one leader, every other expected member (``expected``: {"name", "host"}) a
    streaming replica. Changes nothing; fails the deploy when the cluster does not converge.
    With ``connect`` (the connection strings), the member table and those strings are what
    the deploy says last (pgha.common.final)."""
    if not executing():
        return
    seen: dict = {}
    names = [m["name"] for m in expected]

    def probe():
        members = host.get_fact(PatroniCluster, port=port)
        replication = {}
        leader = next((m for m in members or [] if m["role"] == "leader"), None)
        if leader:
            replication = replication_states(host.get_fact(PatroniStatus, port=port, address=leader["host"]))
        seen.update(members=members, replication=replication)
        problems = cluster_problems(names, members, replication)
        return not problems, "; ".join(problems)

    check_until(probe, timeout, interval=2)
    if connect:
        own = {m["name"]: host.get_fact(PatroniStatus, port=port, address=m["host"]) or None for m in expected}
        rows = member_rows(expected, seen["members"], seen["replication"], own, maximum_lag)
        say_last("cluster", summary(rows))
        say_last("connect", connect)
    host.noop("exactly one leader, every replica streaming")
    yield from ()


@operation()
def role_password(role: str, attributes: list[str], passfile: str, sql: str, port: int,
                  restapi_port: int, superuser: str):
    """On the leader only: ``role`` logs in over 127.0.0.1 with the password of ``passfile``
    and has ``attributes``; otherwise ``sql`` (pgha.patroni.values.role_password_sql: create
    the role if missing, set its attributes and that password) runs as ``superuser``.
    Asked again when the deploy executes, so the leader is the one the check just found."""
    if snapshot.get(PatroniRole, port=restapi_port)["role"] != "leader":
        host.noop(f"{host.name} is not the leader: the role is kept from the leader")
        return
    found = snapshot.get(RoleLogin, role=role, port=port, passfile=passfile, attributes=list(attributes))
    if found == {"login": True, **{a: True for a in attributes}}:
        has = f" and has {', '.join(attributes)}" if attributes else ""
        host.noop(f"role {role} logs in with its password{has}")
        return
    yield make_psql_command(sql, port, user=superuser)


@operation()
def members_removed(members: list[dict], units: list[str], ssh: dict, port: int, pg_port: int, config_file: str,
                    timeout: float, loop_wait: float):
    """On the leader: each of ``members`` (``/cluster`` entries the inventory no longer lists,
    pgha.patroni.removal decided it may go) stopped and disabled over ``ssh``, gone from the
    cluster, its replication slot dropped."""
    if not members:
        host.noop("every member of the running cluster is in the inventory")
        return
    names = ", ".join(m["name"] for m in members)
    if snapshot.get(PatroniRole, port=port)["role"] != "leader":
        host.noop(f"{host.name} is not the leader: the leader removes {names}")
        return
    yield FunctionCommand(removal.remove, (members, units, ssh, port, pg_port, config_file, timeout, loop_wait), {})
