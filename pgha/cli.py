"""pgha: commands for a deployed cluster.

Every command but rotate works on one inventory: --inventory FILE, else $PGHA_INVENTORY
(there is no default: a command never reaches a cluster nobody named).

Usage:
  pgha status [--dsn]          every member, its role, state and lag; exit 1 when unhealthy
  pgha verify [PYTEST_ARGS]    the read-only verification (changes nothing: safe on production)
  pgha switchover [--to pg-2]
  pgha failover --to pg-2       the leader is gone: make pg-2 the leader
  pgha pause | pgha resume      maintenance mode: Patroni neither fails over nor restarts PostgreSQL
  pgha restart (MEMBER ... | --pending)   replicas first, the leader after a paused switchover
  pgha history                  the timelines: where each ended, when, who led next
  pgha diff                     the live cluster against the inventory; exit 0 same, 1 differs, 2 cannot tell
  pgha upgrade [--dry-run]      package updates one node at a time: etcd, replicas, a switchover, the former leader
  pgha rotate KEY [KEY ...]     new values for secrets keys (then run the deploy)
  pgha backup [--type full|diff|incr]
  pgha backups
  pgha restore (--time "YYYY-MM-DD HH:MM:SS+00" | --latest | --label LABEL) --yes
  pgha reinit MEMBER            rebuild a replica (from the repository when it has a backup)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pgha import PROJECT_ROOT, client, maintenance, monitoring, secrets
from pgha.backup import commands as backups
from pgha.backup import report
from pgha.backup import restore as whole_cluster
from pgha.backup.facts import human_time
from pgha.cluster import Cluster
from pgha.errors import BackupError, ConfigError, MaintenanceError, RemoteError, SwitchoverError
from pgha.monitor import api as monitor_api
from pgha.patroni import rest
from pgha.settings.loader import INVENTORY_VARIABLE, inventory_path, load_cluster


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgha", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--inventory", default=None, help="the inventory file (default: $PGHA_INVENTORY)")
    # --inventory is accepted after the command too (`pgha switchover --to pg-2 --inventory X`);
    # SUPPRESS keeps the subcommand from resetting a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--inventory", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", parents=[common], help="members, roles, timelines, lag and WAL archiving")
    status.add_argument("--dsn", action="store_true", help="only the connection strings")
    commands.add_parser("verify", parents=[common], help="the read-only verification (pytest; "
                        "other arguments go to pytest)")
    switch = commands.add_parser("switchover", parents=[common], help="planned change of leader, through Patroni")
    switch.add_argument("--to", dest="candidate", help="Patroni name of the new leader (default: any healthy replica)")
    switch.add_argument("--timeout", type=float, default=60)
    switch.add_argument("--no-pause", action="store_true",
                        help="do not pause PgBouncer (its clients' connections then fail at the switchover)")
    failover = commands.add_parser("failover", parents=[common], help="the leader is gone: make a replica the leader")
    failover.add_argument("--to", dest="candidate", required=True, help="Patroni name of the new leader")
    failover.add_argument("--timeout", type=float, default=90)
    commands.add_parser("pause", parents=[common], help="maintenance mode on: Patroni neither fails over nor restarts "
                        "PostgreSQL (the deploy leaves it on)")
    commands.add_parser("resume", parents=[common], help="maintenance mode off: Patroni manages the cluster again")
    restart = commands.add_parser("restart", parents=[common], help="restart PostgreSQL: replicas first, the leader "
                                  "after a switchover (PgBouncer paused)")
    # argparse counts an empty positional list as given: MEMBER or --pending is checked in main
    restart.add_argument("members", nargs="*", metavar="MEMBER", help="Patroni (or inventory) names")
    restart.add_argument("--pending", action="store_true", help="every member waiting for a restart (a parameter)")
    commands.add_parser("diff", parents=[common], help="the live cluster against the inventory and group_data "
                        "(changes nothing): exit 0 when they match, 1 when not, 2 when it cannot tell")
    upgrade = commands.add_parser("upgrade", parents=[common], help="the deploy's package updates, one node at a "
                                  "time: etcd members, replicas, a paused switchover, the former leader, the others")
    upgrade.add_argument("--dry-run", action="store_true", help="say what would be updated, change nothing")
    upgrade.add_argument("--timeout", type=float, default=120, help="seconds each node has to be whole again")
    commands.add_parser("history", parents=[common], help="the timelines: where each ended, when, who led next")
    rotate = commands.add_parser(
        "rotate", help="new values for secrets keys in the secrets file; the next deploy rolls them out"
    )
    rotate.add_argument("keys", nargs="+", metavar="KEY", help=f"one of: {', '.join(secrets.KEYS)}")
    backup = commands.add_parser("backup", parents=[common], help="take a backup now (from a standby)")
    backup.add_argument("--type", dest="backup_type", default="incr", choices=["full", "diff", "incr"])
    commands.add_parser("backups", parents=[common], help="the backups and the times one can restore to")
    restore = commands.add_parser("restore", parents=[common], help="the whole cluster back to a point in time")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--time", dest="at", help='a past time with its UTC offset: "YYYY-MM-DD HH:MM:SS+00"')
    target.add_argument("--latest", action="store_true", help="every WAL the repository holds")
    target.add_argument("--label", help="the end of one backup (a label of `pgha backups`)")
    restore.add_argument("--yes", action="store_true", help="confirm: the cluster's current data is replaced")
    reinit = commands.add_parser("reinit", parents=[common], help="rebuild one replica (from the repository)")
    reinit.add_argument("member", help="its Patroni name (or inventory name)")
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # as a command: `pgha status | head` ends quietly, as other commands do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "verify":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "restart" and bool(args.members) == args.pending:
        parser.error("restart: name the members to restart or give --pending (every member waiting for one), not both")
    if args.command == "rotate":
        return _rotate(args.keys)
    try:
        inventory = inventory_path(args.inventory)
        if args.command == "verify":
            return _verify(inventory, extra)
        cluster = load_cluster(inventory)
    except ConfigError as error:
        print(f"pgha: {error}", file=sys.stderr)
        return 2
    args.inventory = inventory
    try:
        return COMMANDS[args.command](cluster, args)
    except (BackupError, MaintenanceError, RemoteError, SwitchoverError) as error:
        print(f"pgha {args.command}: {error}", file=sys.stderr)
        return 1


def _status(cluster: Cluster, args) -> int:
    """Exit 0 healthy, 1 unhealthy, 2 when no member answers."""
    if args.dsn:
        print(client.connect_text(cluster))
        return 0
    seen = rest.status(cluster)
    print(f"cluster {cluster.settings['patroni_scope']} (inventory {client.shown_path(args.inventory)})")
    print(rest.summary(seen["rows"]))
    if maintenance.paused(cluster):
        print("maintenance mode: on (pgha pause): Patroni neither fails over nor restarts PostgreSQL; "
              "`pgha resume` ends it")
    leader = next((r for r in seen["rows"] if r["role"] == "leader" and r["state"] != "unreachable"), None)
    if cluster.backup and leader:
        archiving = backups.archiver(cluster, cluster.node(leader["name"]))
        print(report.archiving_line(archiving))
        if archiving is None or archiving["failing"]:
            seen["problems"].append("WAL archiving to the repository " + ("fails" if archiving else "is unknown"))
    if monitoring.enabled(cluster):
        lines, problems = monitor_api.firing_report(cluster)
        print("\n".join(lines))
        seen["problems"] += problems
    if seen["problems"]:
        print("problems:\n" + "\n".join(f"  - {p}" for p in seen["problems"]))
    if not seen["answered"]:
        return 2
    return 1 if seen["problems"] else 0


def _verify(inventory: Path, pytest_args: list[str]) -> int:
    """The read-only verification: every integration test not marked destructive, against
    ``inventory``, each skip with its reason."""
    tests = PROJECT_ROOT / "tests" / "integration"
    if not tests.is_dir():
        print(f"pgha verify: {tests} is missing: run it from a clone of the repository", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "pytest", str(tests), "-rs", "-m", "not destructive",
               *_workers(pytest_args), *pytest_args]
    environment = dict(os.environ, **{INVENTORY_VARIABLE: str(inventory)})
    return subprocess.run(command, cwd=PROJECT_ROOT, env=environment, check=False).returncode


VERIFY_WORKERS = 4


def _workers(pytest_args: list[str]) -> list[str]:
    """pytest-xdist's workers for the verification, one test module each (a module's fixtures
    stay in one process): its checks wait on the network, not the CPU (the lab's 262 took
    250 s in one process, 122 s in four). None when it is missing or the caller chose (-n,
    --numprocesses, --dist, -p no:xdist)."""
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a.endswith("no:xdist") for a in pytest_args)
    if chosen or importlib.util.find_spec("xdist") is None:
        return []
    return ["-n", str(VERIFY_WORKERS), "--dist", "loadfile"]


def _switchover(cluster: Cluster, args) -> int:
    result = client.switchover(cluster, args.candidate, args.timeout, pause=not args.no_pause,
                               progress=lambda line: print(line, flush=True))
    paused = (f", every PgBouncer paused for it (PAUSE took {result['paused']:.2f}s)"
              if result["paused"] is not None else " (PgBouncer not paused)")
    waited = result["failsafe_waited"]
    if waited:
        print(f"failsafe mode ended on {', '.join(waited['members'])} after {waited['seconds']:.1f}s")
    print(f"switchover {result['from']} -> {result['to']}: writes accepted through every HAProxy after "
          f"{result['seconds']:.2f}s{paused}")
    return 0


def _failover(cluster: Cluster, args) -> int:
    result = maintenance.failover(cluster, args.candidate, args.timeout)
    print(f"failover to {result['to']}: writes accepted through every HAProxy after {result['seconds']:.2f}s "
          f"(its lag before: {result['lag']})")
    return 0


def _pause(cluster: Cluster, args) -> int:
    return _maintenance_mode(cluster, pause=True)


def _resume(cluster: Cluster, args) -> int:
    return _maintenance_mode(cluster, pause=False)


def _maintenance_mode(cluster: Cluster, pause: bool) -> int:
    result = maintenance.set_paused(cluster, pause)
    mode = ("on: Patroni neither fails over nor restarts PostgreSQL until `pgha resume`" if pause
            else "off: Patroni manages the cluster again")
    if not result["changed"]:
        print(f"maintenance mode already {mode.split(':')[0]}")
        return 0
    silent = f" (not answering, they read it from the DCS when back: {', '.join(result['silent'])})" if result["silent"] else ""
    print(f"maintenance mode {mode}; every member follows after {result['seconds']:.1f}s{silent}")
    return 0


def _restart(cluster: Cluster, args) -> int:
    done = maintenance.restart(cluster, None if args.pending else args.members)
    if not done:
        print("no member waits for a restart")
    for each in done:
        moved = each["switchover"]
        how = (f" by its switchover to {moved['to']} (writes through every HAProxy after {moved['seconds']:.2f}s)"
               if moved else "")
        print(f"{each['member']} restarted{how}, streaming again after {each['seconds']:.1f}s")
    return 0


def _diff(cluster: Cluster, args) -> int:
    from pgha import drift

    report = drift.check(cluster)
    for line in report.differences:
        print(line)
    for line in report.unknown:
        print(f"cannot tell: {line}")
    if not report.differences and not report.unknown:
        print("no difference: the live cluster matches the inventory and group_data")
    return 2 if report.unknown else 1 if report.differences else 0


def _upgrade(cluster: Cluster, args) -> int:
    from pgha import upgrade

    done = upgrade.upgrade(cluster, dry_run=args.dry_run, timeout=args.timeout)
    if done and not args.dry_run:
        moved = next((each["switchover"] for each in done if each["switchover"]), None)
        how = f"; the leadership moved to {moved['to']} in {moved['seconds']:.2f}s" if moved else ""
        print(f"{len(done)} node(s) updated in {sum(each['seconds'] for each in done):.0f}s{how}")
    return 0


def _history(cluster: Cluster, args) -> int:
    print(maintenance.history_table(cluster))
    return 0


def _backup(cluster: Cluster, args) -> int:
    taken = backups.take_backup(cluster, args.backup_type)
    print(f"{taken['label']}  ({taken['type']} backup, {taken['seconds']}s, ended {human_time(taken['stop'])})")
    return 0


def _backups(cluster: Cluster, args) -> int:
    leader = rest.leader(cluster)
    state = backups.archiver(cluster, cluster.node(leader["name"])) if leader else None
    print(report.backups_table(backups.info(cluster, with_history=True), time.time(), (state or {}).get("last_archived_time")))
    return 0


def _restore(cluster: Cluster, args) -> int:
    info = backups.info(cluster, with_history=True)
    chosen = whole_cluster.plan(info, time.time(), at=args.at, latest=args.latest, label=args.label)
    if not args.yes:
        raise BackupError(
            f"this replaces the whole cluster's data with {chosen['target']}: add --yes to go ahead"
        )
    print(f"restoring the whole cluster to {chosen['target']}")
    result = whole_cluster.restore(cluster, chosen)
    print(f"restored in {result['seconds']}s: {result['leader']} leads on timeline {result['timeline']}, "
          "every replica streams")
    return 0


def _reinit(cluster: Cluster, args) -> int:
    result = backups.reinit(cluster, args.member)
    print(f"{result['member']} rebuilt in {result['seconds']}s (by {result['method']}), streaming from the leader")
    return 0


COMMANDS = {
    "status": _status,
    "switchover": _switchover,
    "failover": _failover,
    "pause": _pause,
    "resume": _resume,
    "restart": _restart,
    "history": _history,
    "diff": _diff,
    "upgrade": _upgrade,
    "backup": _backup,
    "backups": _backups,
    "restore": _restore,
    "reinit": _reinit,
}


def _rotate(keys: list[str]) -> int:
    try:
        changed = secrets.rotate(keys)
    except ValueError as error:
        print(f"pgha rotate: {error}", file=sys.stderr)
        return 2
    print(
        f"new values for {', '.join(changed)} in {secrets.path()}: roll them out with "
        "`pyinfra -y <inventory> deploys/all.py` (the old values keep working until it runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
