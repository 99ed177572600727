"""`pgha restore`: the whole cluster back to a point in time, a backup, or the newest WAL.

plan() decides, before anything is touched, what to restore and refuses what cannot be
done (no backup, a time before the oldest backup or in the future, an unknown label).
restore() then runs it: the current WAL archived first when the leader answers; every
Patroni daemon stopped; the cluster removed from the DCS; one member restored to the target
and promoted by PostgreSQL itself; Patroni started there (it takes the data as the new
cluster's leader); the others restored from the same backup as standbys following the new
timeline; the cluster check at the end.
"""

from __future__ import annotations

import datetime
import shlex
import time

from pgha import remote
from pgha.backup import commands, values
from pgha.backup.facts import backup_for_time, human_time, in_history, restore_window
from pgha.cluster import Cluster, Node
from pgha.errors import BackupError, RemoteError
from pgha.patroni import rest
from pgha.patroni.facts import patronictl
from pgha.patroni.values import ROLE_PASSWORDS, config_file, role_password_sql
from pgha.postgres import bin_dir, data_dir
from pgha.postgres.facts import make_psql_command
from pgha.waiting import wait_for

TIME_FORMAT = "YYYY-MM-DD HH:MM:SS+00"


def parse_time(text: str) -> datetime.datetime:
    """A time with its UTC offset ('2026-11-26 04:09:16+00', ISO 8601 too), as UTC."""
    raw = text.strip().replace("T", " ")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) >= 3 and raw[-3] in "+-" and raw[-2:].isdigit():
        raw += ":00"  # PostgreSQL's '+00' form
    try:
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise BackupError(f"--time {text!r}: expected a time such as '{TIME_FORMAT}'") from None
    if moment.tzinfo is None:
        raise BackupError(f"--time {text!r} has no UTC offset: expected '{TIME_FORMAT}' (say which time zone)")
    return moment.astimezone(datetime.UTC)


def plan(found: dict, now: float, at: str | None = None, latest: bool = False, label: str | None = None) -> dict:
    """What to restore: {"set", "args" (pgbackrest restore's target options), "target"}.
    A BackupError when the repository cannot give it. ``found``: commands.info(), whose
    "timeline" and "history" (the repository's newest timeline) say which backups a
    recovery along it can start from: after an earlier restore, backups taken on the
    abandoned branch cannot serve --time or --latest."""
    good = [b for b in found["backups"] if b["stop"] and not b["error"]]
    if not good:
        raise BackupError("the repository holds no backup: nothing to restore (`pgha backup --type full` takes one)")
    if label is not None:
        chosen = next((b for b in good if b["label"] == label), None)
        if chosen is None:
            raise BackupError(f"--label {label!r} is not in the repository: expected one of "
                              f"{', '.join(b['label'] for b in good)}")
        # to the end of the backup, on its own timeline (whichever branch it is on)
        return {"set": label, "args": ["--type=immediate", "--target-action=promote", "--target-timeline=current"],
                "target": f"the end of backup {label} ({human_time(chosen['stop'])})"}
    if found.get("timeline"):
        good = [b for b in good if in_history(b, found["timeline"], found.get("history") or {})]
        found = {**found, "backups": good}
        if not good:
            raise BackupError(
                f"no backup of the repository lies on timeline {found['timeline']}'s history (each was taken "
                "on a branch an earlier restore left): only --label can restore one of them"
            )
    if latest:
        newest = max(good, key=lambda b: b["stop"])
        return {"set": newest["label"], "args": ["--type=default"],
                "target": "the last WAL the repository holds"}
    if at is None:
        raise BackupError("a restore needs --time, --latest or --label")
    moment = parse_time(at)
    window = restore_window(found, now)
    if window is None:
        raise BackupError("the repository holds no backup: nothing to restore to")
    oldest, _ = window
    if moment.timestamp() > now:
        raise BackupError(f"--time {at!r} is in the future (now is {human_time(now)}): expected a past time")
    if moment.timestamp() < oldest:
        raise BackupError(
            f"--time {at!r} is before the end of the oldest backup ({human_time(oldest)}): expected a time "
            f"from {human_time(oldest)} to now"
        )
    chosen = backup_for_time(found, moment.timestamp())
    if chosen is None:
        raise BackupError(f"no backup ended before {at!r}")
    target = moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return {"set": chosen["label"], "args": ["--type=time", f"--target={shlex.quote(target)}", "--target-action=promote"],
            "target": f"{target} (from backup {chosen['label']})"}


def _postgres_running(cluster: Cluster, node: Node) -> bool:
    status = f"runuser -u postgres -- {bin_dir(cluster.settings)}/pg_ctl -D {data_dir(cluster.settings)} status"
    return "server is running" in remote.run(node, status + " || true", timeout=30)


def _stop_patroni(cluster: Cluster, nodes) -> None:
    remote.run_on_each(nodes, lambda n: "systemctl stop patroni", timeout=180)
    still = [n.name for n in nodes if _postgres_running(cluster, n)]
    if still:
        raise BackupError(f"PostgreSQL still runs on {', '.join(still)} after Patroni stopped")


def _restore_command(cluster: Cluster, chosen: dict, *args: str) -> str:
    return values.make_pgbackrest_command(values.stanza(cluster.settings), "--delta", f"--set={chosen['set']}",
                                          *args, "restore", user=values.PG_USER)


def _writable(cluster: Cluster, node: Node) -> bool:
    """PostgreSQL on ``node`` answers and is out of recovery (takes writes)."""
    s = cluster.settings
    in_recovery = make_psql_command("SELECT pg_is_in_recovery()", s["postgresql_port"], user=s["patroni_superuser"])
    return remote.run(node, in_recovery, timeout=30, check=False).strip() == "f"


def _recover_alone(cluster: Cluster, node: Node, timeout: float) -> None:
    """PostgreSQL started by hand on the restored data: it replays to the target and
    promotes itself (a new timeline), then stops for Patroni to take over."""
    s = cluster.settings
    pg_ctl = f"runuser -u postgres -- {bin_dir(s)}/pg_ctl -D {data_dir(s)}"
    if not _postgres_running(cluster, node):  # a restore run again after a failure may find it up
        remote.run(node, f"{pg_ctl} -w -t {int(timeout)} -l /var/log/postgresql/pgha-restore.log start",
                   timeout=timeout + 30)
    if not wait_for(lambda: _writable(cluster, node), timeout, interval=1):
        log = remote.run(node, "tail -n 5 /var/log/postgresql/pgha-restore.log", check=False)
        raise BackupError(f"{node.name}: PostgreSQL did not reach the target and promote within {timeout:.0f}s: {log}")
    remote.run(node, f"{pg_ctl} -m fast -w stop", timeout=120)


def _remove_from_dcs(cluster: Cluster, node: Node, leader: dict | None) -> None:
    """`patronictl remove`, its questions answered; nothing to remove is not an error (a
    restore run again after a failure)."""
    s = cluster.settings
    answers = f"{s['patroni_scope']}\nYes I am aware\n{leader['name'] if leader else ''}\n"
    command = f"{patronictl(config_file(node))} remove {s['patroni_scope']}"
    try:
        remote.run(node, command, stdin=answers, timeout=60)
    except RemoteError as error:
        if "does not exist" not in str(error) and "doesn't exist" not in str(error):
            raise


def _current_passwords(cluster: Cluster, leader) -> None:
    """The roles' passwords of the secrets file, set again on the new leader: the restored
    database holds those of the target time, older than a rotation since (the replicas,
    restored next, could not log in with the current ones)."""
    s = cluster.settings
    for setting in ROLE_PASSWORDS:
        remote.run(leader, make_psql_command(role_password_sql(cluster, setting), s["postgresql_port"],
                                             user=s["patroni_superuser"]), timeout=60)


def _checked(cluster: Cluster, tries: int = 5) -> None:
    """`pgbackrest check` (a WAL file of the new leader archived and found), tried again for
    a few seconds: right after Patroni takes the lock, pgBackRest may not find the primary yet."""
    for attempt in range(tries):
        try:
            remote.run(commands.repository(cluster), commands.pgbackrest(cluster, "--backup-standby=n", "check"))
            return
        except RemoteError:
            if attempt == tries - 1:
                raise
            time.sleep(3)


def restore(cluster: Cluster, chosen: dict, say=print, timeout: float = 1800) -> dict:
    """Run plan() ``chosen`` on the whole cluster; returns the seconds of each step. Every
    step can run again: after a failure, the same restore once the cause is fixed."""
    steps: dict[str, float] = {}
    started = time.monotonic()

    def step(name: str) -> None:
        steps[name] = round(time.monotonic() - started - sum(steps.values()), 1)
        say(f"  {name}: {steps[name]}s")

    try:
        return _restore(cluster, chosen, say, timeout, step, steps, started)
    except (BackupError, RemoteError) as error:
        if not steps:
            raise BackupError(f"{error} (nothing was touched)") from None
        done = ", ".join(steps)
        raise BackupError(
            f"{error}\n  done before it failed: {done}. The members may be stopped: once the cause is "
            "fixed, run the same `pgha restore ... --yes` again (each step can run again)"
        ) from None


def _restore(cluster: Cluster, chosen, say, timeout, step, steps, started) -> dict:
    for node in cluster.patroni + cluster.backup:
        remote.run(node, "true", timeout=30)  # every node answers before anything is touched
    members = {m["name"]: m for m in rest.members(cluster)}
    leader = next((m for m in members.values() if m["role"] == "leader"), None)
    old_timeline = max((m["timeline"] or 0 for m in members.values()), default=0)
    if leader:
        say(f"archiving the current WAL of leader {leader['name']} and waiting for the repository to hold it")
        remote.run(commands.repository(cluster), commands.pgbackrest(cluster, "--backup-standby=n", "check"))
        step("current WAL archived")
    by_name = {n.patroni_name: n for n in cluster.patroni}
    target = by_name.get(leader["name"], cluster.patroni[0]) if leader else cluster.patroni[0]
    others = [n for n in cluster.patroni if n is not target]
    say(f"stopping Patroni and PostgreSQL on {', '.join(n.patroni_name for n in others)}, then {target.patroni_name}")
    _stop_patroni(cluster, others)
    _stop_patroni(cluster, [target])
    step("members stopped")
    _remove_from_dcs(cluster, target, leader)
    step("cluster removed from the DCS")
    say(f"restoring {target.patroni_name} to {chosen['target']}")
    remote.run(target, _restore_command(cluster, chosen, *chosen["args"]), timeout=timeout)
    step(f"{target.patroni_name} restored")
    _recover_alone(cluster, target, timeout)
    step(f"{target.patroni_name} recovered to the target and promoted")
    remote.run(target, "systemctl start patroni", timeout=60)

    def leads() -> bool:  # the lock, and PostgreSQL under it promoted: Patroni may start it as a standby first
        lead = rest.leader(cluster) or {}
        return (lead.get("name") == target.patroni_name and lead.get("state") == "running"
                and _writable(cluster, target))

    if not wait_for(leads, 120, interval=1):
        raise BackupError(f"Patroni on {target.patroni_name} did not take the leader lock with PostgreSQL "
                          "out of recovery within 120s")
    step(f"{target.patroni_name} leads the new cluster")
    _current_passwords(cluster, target)
    step("roles given their current passwords")
    # the new timeline's history file must be in the repository before the standbys look for it
    _checked(cluster)
    say(f"restoring {', '.join(n.patroni_name for n in others)} from backup {chosen['set']} as standbys")
    remote.run_on_each(others, lambda n: _restore_command(cluster, chosen, "--type=standby") + " && systemctl start patroni",
                       timeout=timeout)
    step("replicas restored")

    def healthy():
        state = rest.health(cluster)
        return not state["problems"] and state

    state = wait_for(healthy, 600, interval=2)
    if not state:
        raise BackupError(f"the restored cluster is not healthy after 600s: {'; '.join(rest.health(cluster)['problems'])}")
    step("every replica streams")
    timeline = state["leader"]["timeline"]
    if timeline is not None and timeline <= old_timeline:
        raise BackupError(f"the restored leader runs timeline {timeline}, not a new one (was {old_timeline})")
    return {"leader": state["leader"]["name"], "timeline": timeline, "steps": steps,
            "seconds": round(time.monotonic() - started, 1)}

