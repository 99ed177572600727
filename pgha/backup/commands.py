"""The repository seen from the control machine: `pgha backup`, `pgha backups`,
`pgha reinit` and the archiving line of `pgha status`. Commands run on the nodes over SSH
(pgha.remote); the repository is read through pgha.backup.facts.parse_info."""

from __future__ import annotations

import time

from pgha import remote
from pgha.backup import values
from pgha.backup.facts import ARCHIVER_QUERY, parse_archiver, parse_history, parse_info
from pgha.cluster import Cluster, Node
from pgha.errors import BackupError
from pgha.patroni import rest
from pgha.patroni.facts import patronictl
from pgha.patroni.values import config_file
from pgha.postgres.facts import make_psql_command
from pgha.waiting import wait_for


def repository(cluster: Cluster):
    if not values.enabled(cluster):
        raise BackupError("the inventory has no `backup` host: no repository, no backups")
    return cluster.backup[0]


def pgbackrest(cluster: Cluster, *args: str) -> str:
    """A pgbackrest command on the repository host, as the repository's user."""
    return values.make_pgbackrest_command(values.stanza(cluster.settings), *args, user=values.REPO_USER)


def info(cluster: Cluster, with_history: bool = False) -> dict:
    """parse_info of the repository (a BackupError when it does not answer); with
    ``with_history``, also its newest timeline and that timeline's history (the archived
    .history files), which a restore follows."""
    found = parse_info(remote.run(repository(cluster), pgbackrest(cluster, "--output=json", "info"), timeout=60))
    if found is None:
        raise BackupError(f"pgbackrest info on {repository(cluster).name} gave no answer for the stanza")
    if with_history and found["archive_id"]:
        folder = f"archive/{values.stanza(cluster.settings)}/{found['archive_id']}"
        names = remote.run(repository(cluster), pgbackrest(cluster, "'--filter=\\.history$'", "repo-ls", folder)).split()
        timelines = [int(name[:8], 16) for name in names if name.endswith(".history")]
        found["timeline"], found["history"] = 1, {}
        if timelines:
            found["timeline"] = max(timelines)
            text = remote.run(repository(cluster), pgbackrest(cluster, "repo-get", f"{folder}/{found['timeline']:08X}.history"))
            found["history"] = parse_history(text)
    return found


def take_backup(cluster: Cluster, backup_type: str = "incr") -> dict:
    """A backup now (from a standby when pgbackrest_backup_from_standby); the new backup's
    entry of info() with the seconds it took."""
    if backup_type not in values.BACKUP_TYPES:
        raise BackupError(f"--type {backup_type!r}: expected one of {', '.join(values.BACKUP_TYPES)}")
    before = {b["label"] for b in info(cluster)["backups"]}
    started = time.monotonic()
    remote.run(repository(cluster), pgbackrest(cluster, f"--type={backup_type}", "backup"), timeout=6 * 3600)
    seconds = time.monotonic() - started
    new = [b for b in info(cluster)["backups"] if b["label"] not in before]
    if not new:
        raise BackupError("pgbackrest backup ended but the repository shows no new backup")
    return {**new[-1], "seconds": round(seconds, 1)}


def archiver(cluster: Cluster, node: Node) -> dict | None:
    """pg_stat_archiver of ``node``'s PostgreSQL (asked as the superuser, on the node)."""
    s = cluster.settings
    command = make_psql_command(ARCHIVER_QUERY, s["postgresql_port"], user=s["patroni_superuser"])
    return parse_archiver(remote.run(node, command, timeout=30, check=False))


def reinit(cluster: Cluster, member: str, timeout: float = 3600) -> dict:
    """Rebuild one replica on purpose (`patronictl reinit`): Patroni tries the repository
    first (create_replica_methods), a base backup from the leader only when that fails.
    Returns {"member", "seconds", "method"} (the method Patroni's log names)."""
    try:
        node = cluster.node(member)
    except KeyError:
        raise BackupError(f"{member!r} is not a member: expected one of "
                          f"{', '.join(n.patroni_name for n in cluster.patroni)}") from None
    if "patroni" not in node.groups:
        raise BackupError(f"{member!r} is not a Patroni member")
    current = {m["name"]: m for m in rest.members(cluster)}
    if current.get(node.patroni_name, {}).get("role") == "leader":
        raise BackupError(f"{node.patroni_name} is the leader: switch over first (`pgha switchover`)")
    scope = cluster.settings["patroni_scope"]
    since = remote.run(node, "date -u '+%Y-%m-%d %H:%M:%S'", timeout=30).strip()
    started = time.monotonic()
    remote.run(node, f"{patronictl(config_file(node))} reinit {scope} {node.patroni_name} --force --wait",
               timeout=timeout)

    def streaming():  # as the deploy's check sees it (Patroni 3.0.2 says "running" in /cluster)
        return rest.health(cluster)["replication"].get(node.patroni_name) == "streaming"

    if not wait_for(streaming, 300, interval=1):
        raise BackupError(f"{node.patroni_name} was rebuilt but does not stream from the leader after 300s")
    seconds = time.monotonic() - started
    log = remote.run(node, f"journalctl -u patroni --since '{since}' --no-pager -o cat", timeout=30, check=False)
    method = next((line.split("replica has been created using", 1)[1].strip().split()[0]
                   for line in reversed(log.splitlines()) if "replica has been created using" in line), "unknown")
    return {"member": node.patroni_name, "seconds": round(seconds, 1), "method": method}
