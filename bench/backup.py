"""Backups and restores measured on a pgbench database: a full and an incremental backup, a
replica rebuilt from the repository and by a base backup from the leader (time, and what
the leader read and sent), the whole cluster restored to a point in time.

Usage:
  .venv/bin/python bench/backup.py [--inventory inventory.py] [--scale 50]
      [--output bench/results/backup]

The database `pgbench_backup` is created and initialised on the leader once (`pgbench -i -s
SCALE`, about 15 MB a scale unit); it is left in place (a second run reuses it). The base
backup is forced by stopping the repository host's TLS server for that rebuild, so Patroni's
first method (pgBackRest) fails and it falls back, as it would with an unreachable
repository. What the leader sent is its network interfaces' transmitted bytes; what it read
is the patroni service's cgroup read bytes (the page cache hides reads it already had).
Prints the figures, writes OUTPUT.json and OUTPUT.md. Changes the cluster: the restore
rolls it back a few seconds, the rebuilt replica is a new copy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgha import remote  # noqa: E402
from pgha.backup import commands, values  # noqa: E402
from pgha.backup import restore as whole_cluster  # noqa: E402
from pgha.errors import BackupError, ConfigError, RemoteError  # noqa: E402
from pgha.patroni import rest  # noqa: E402
from pgha.postgres import bin_dir, data_dir  # noqa: E402
from pgha.postgres.facts import make_psql_command  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402
from pgha.waiting import wait_for  # noqa: E402
from pghalab.values import LAB_INVENTORY  # noqa: E402

DATABASE = "pgbench_backup"
TARGET_RESTORE_SECONDS = 180


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sql(cluster, node, query: str, database: str = "postgres") -> str:
    s = cluster.settings
    command = make_psql_command(query, s["postgresql_port"], user=s["patroni_superuser"], database=database)
    return remote.run(node, command, timeout=120).strip()


def pgbench(cluster, node, *args: str, timeout: float = 3600) -> str:
    s = cluster.settings
    command = (f"runuser -u postgres -- {bin_dir(s)}/pgbench -h /var/run/postgresql -p {s['postgresql_port']} "
               f"{' '.join(args)} {DATABASE}")
    return remote.run(node, command, timeout=timeout)


def leader_node(cluster):
    leader = rest.leader(cluster)
    if leader is None:
        raise BackupError("no leader: the cluster must be healthy before the bench")
    return cluster.node(leader["name"])


def prepare(cluster, scale: int) -> dict:
    node = leader_node(cluster)
    exists = sql(cluster, node, f"SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'") == "1"
    branches = sql(cluster, node, "SELECT count(*) FROM pgbench_branches", DATABASE) if exists else "0"
    if branches != str(scale):
        if not exists:
            sql(cluster, node, f"CREATE DATABASE {DATABASE}")
        log(f"pgbench -i -s {scale} on {node.patroni_name}")
        pgbench(cluster, node, "-i", "-q", "-s", str(scale))
    size = int(sql(cluster, node, "SELECT sum(pg_database_size(datname)) FROM pg_database"))
    log(f"databases: {size / 2**20:.0f} MB in all")
    return {"scale": scale, "cluster_size_bytes": size}


def leader_counters(cluster, node) -> dict:
    """Bytes the node has sent on its interfaces; bytes PostgreSQL's processes have read
    (the postmaster's rchar: Linux adds each finished child's, so a base backup's walsender
    counts once it ends; page cache hits count too)."""
    sent = remote.run(node, "cat $(ls -d /sys/class/net/*/statistics | grep -v /lo/ | sed 's|$|/tx_bytes|')")
    pid_file = f"{data_dir(cluster.settings)}/postmaster.pid"
    read = remote.run(node, f"awk '/^rchar/ {{print $2}}' /proc/$(head -1 {pid_file})/io")
    return {"sent": sum(int(x) for x in sent.split()), "read": int(read.strip())}


def _log_times(cluster, node, since: str) -> dict:
    """When Patroni's log (journal) says pgBackRest failed and a replica was created."""
    log = remote.run(node, f"journalctl -u patroni --since '{since}' --no-pager -o short-unix", timeout=30)
    times = {}
    for line in log.splitlines():
        stamp = line.split(" ", 1)[0]
        if "Error creating replica using method pgbackrest" in line:
            times.setdefault("pgbackrest_failed", float(stamp))
        if "replica has been created using" in line:
            times["created"] = float(stamp)
            times["method"] = line.split("replica has been created using", 1)[1].split()[0]
    return times


def new_replica(cluster, member: str, by_base_backup: bool) -> dict:
    """A replica made from nothing, as for a new member: Patroni stopped, the data
    directory emptied, Patroni started; it creates the replica by its first method that
    works (the repository; a base backup when the repository's TLS server is stopped)."""
    node = cluster.node(member)
    leader = leader_node(cluster)
    repo = commands.repository(cluster)
    remote.run(node, f"systemctl stop patroni && rm -rf {data_dir(cluster.settings)}", timeout=120)
    if by_base_backup:
        remote.run(repo, f"systemctl stop {values.SERVER_UNIT}")
    before = leader_counters(cluster, leader)
    since = remote.run(node, "date -u '+%Y-%m-%d %H:%M:%S'").strip()
    started, start_epoch = time.monotonic(), time.time()
    try:
        remote.run(node, "systemctl start patroni")

        def streaming():
            return rest.health(cluster)["replication"].get(member) == "streaming"

        if not wait_for(streaming, 900, interval=0.5):
            raise BackupError(f"{member} does not stream 900 s after its creation began")
        seconds = time.monotonic() - started
    finally:
        if by_base_backup:
            remote.run(repo, f"systemctl start {values.SERVER_UNIT}")
    after = leader_counters(cluster, leader)
    times = _log_times(cluster, node, since)
    waited = times["pgbackrest_failed"] - start_epoch if "pgbackrest_failed" in times else 0.0
    return {"member": member, "method": times.get("method", "unknown"), "seconds": round(seconds, 1),
            "waiting_for_the_repository_seconds": round(waited, 1),
            "leader_sent_bytes": after["sent"] - before["sent"], "leader_read_bytes": after["read"] - before["read"]}


def median_run(runs: list[dict]) -> dict:
    """The run of median time, with every run's seconds beside it."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [r["seconds"] for r in runs]}


def reinit_in_place(cluster, member: str) -> dict:
    """`pgha reinit`: the replica's data directory kept, the repository's backup restored
    over it (--delta: only the files that differ are written), then it streams."""
    leader = leader_node(cluster)
    before = leader_counters(cluster, leader)
    result = commands.reinit(cluster, member)
    after = leader_counters(cluster, leader)
    return {**result, "leader_sent_bytes": after["sent"] - before["sent"],
            "leader_read_bytes": after["read"] - before["read"]}


def point_in_time_restore(cluster) -> dict:
    node = leader_node(cluster)
    pgbench(cluster, node, "-c", "4", "-T", "10")
    time.sleep(1)
    target = datetime.datetime.now(datetime.UTC)
    time.sleep(1)
    pgbench(cluster, node, "-c", "4", "-T", "10")
    info = commands.info(cluster, with_history=True)
    chosen = whole_cluster.plan(info, time.time(), at=target.strftime("%Y-%m-%d %H:%M:%S.%f+00"))
    log(f"restore of the whole cluster to {chosen['target']}")
    result = whole_cluster.restore(cluster, chosen, say=log)
    newest = sql(cluster, leader_node(cluster),
                 "SELECT extract(epoch FROM max(mtime)) FROM pgbench_history", DATABASE)
    result["newest_row_before_target"] = float(newest) <= target.timestamp()
    result["newest_row_seconds_before_target"] = round(target.timestamp() - float(newest), 3)
    return result


def mb(value) -> str:
    return f"{value / 2**20:.0f} MB" if value is not None else "-"


def report(figures: dict) -> list[str]:
    full, incr = figures["full_backup"], figures["incremental_backup"]
    repo, base, pitr = figures["replica_from_repository"], figures["replica_by_base_backup"], figures["restore"]
    reinit = figures["replica_reinit_in_place"]
    return [
        f"# Backups and restores (pgbench scale {figures['prepare']['scale']}, "
        f"{mb(figures['prepare']['cluster_size_bytes'])} of databases)",
        "",
        f"Measured {figures['date']} on {figures['inventory']}.",
        "",
        "| what | seconds | details |",
        "|---|---|---|",
        f"| full backup (from a standby) | {full['seconds']} | {mb(full['delta'])} copied, {mb(full['repo_size'])} "
        "stored (compressed, encrypted) |",
        f"| incremental backup after 20 s of pgbench | {incr['seconds']} | {mb(incr['delta'])} copied, "
        f"{mb(incr['repo_size'])} stored |",
        f"| new replica from the repository (empty data directory, until it streams; median of "
        f"{repo['all_seconds']}) | {repo['seconds']} | by {repo['method']}; the leader sent "
        f"{mb(repo['leader_sent_bytes'])}, read {mb(repo['leader_read_bytes'])} |",
        f"| new replica by a base backup (repository unreachable; median of {base['all_seconds']}) | "
        f"{base['seconds']} | by {base['method']}, "
        f"of which {base['waiting_for_the_repository_seconds']} s waiting for the repository; the leader sent "
        f"{mb(base['leader_sent_bytes'])}, read {mb(base['leader_read_bytes'])} |",
        f"| replica rebuilt in place (`pgha reinit`, delta restore) | {reinit['seconds']} | by {reinit['method']}; "
        f"the leader sent {mb(reinit['leader_sent_bytes'])}, read {mb(reinit['leader_read_bytes'])} |",
        f"| whole cluster restored to a point in time | {pitr['seconds']} | target {TARGET_RESTORE_SECONDS} s; "
        f"{pitr['leader']} leads on timeline {pitr['timeline']}; newest row "
        f"{pitr['newest_row_seconds_before_target']} s before the target |",
        "",
        "Restore steps (seconds): " + ", ".join(f"{k} {v}" for k, v in pitr["steps"].items()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=str(LAB_INVENTORY))
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="new replicas made each way (the median is kept)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "backup"))
    args = parser.parse_args(argv)
    try:
        cluster = load_cluster(args.inventory)
        figures = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "inventory": Path(args.inventory).name}
        figures["prepare"] = prepare(cluster, args.scale)
        log("full backup")
        figures["full_backup"] = commands.take_backup(cluster, "full")
        pgbench(cluster, leader_node(cluster), "-c", "4", "-T", "20")
        log("incremental backup")
        figures["incremental_backup"] = commands.take_backup(cluster, "incr")
        replica = next(m["name"] for m in rest.members(cluster) if m["role"] == "replica")
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for round_number in range(1, args.rounds + 1):  # alternated: both see the same machine
            for by_base_backup in (False, True):
                how = "by a base backup (the repository's TLS server stopped)" if by_base_backup else "from the repository"
                log(f"round {round_number}: {replica} made anew {how}")
                runs[by_base_backup].append(new_replica(cluster, replica, by_base_backup))
        figures["replica_from_repository"] = median_run(runs[False])
        figures["replica_by_base_backup"] = median_run(runs[True])
        log(f"{replica} rebuilt in place (`pgha reinit`)")
        figures["replica_reinit_in_place"] = reinit_in_place(cluster, replica)
        figures["restore"] = point_in_time_restore(cluster)
    except (BackupError, ConfigError, RemoteError) as error:
        print(f"bench/backup.py: {error}", file=sys.stderr)
        return 1
    lines = report(figures)
    print("\n".join(lines))
    Path(args.output + ".json").write_text(json.dumps(figures, indent=2) + "\n")
    Path(args.output + ".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
