"""What the repository holds, from `pgbackrest info --output=json` on the repository host.
``parse_info`` is the one parser: the deploy's facts, `pgha backups`, `pgha restore` and the
tests read the repository through it."""

from __future__ import annotations

import datetime
import json

from pyinfra.api import FactBase

from pgha import SCRIPTS_DIR
from pgha.backup import values
from pgha.backup.values import REPO_USER, make_pgbackrest_command
from pgha.cluster import Cluster, Node
from pgha.common.snapshot import Plan, fact
from pgha.firewall import values as firewall_values
from pgha.postgres.facts import make_psql_command

# pgBackRest's stanza status codes (`info`): the stanza must be created for these
MISSING_STANZA = {1: "missing stanza path", 3: "missing stanza data"}
NO_BACKUP = 2


def _time(epoch) -> str | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def parse_info(text: str, stanza: str | None = None) -> dict | None:
    """``{"status": code, "message": str, "backups": [...], "wal": (first, last) or None}``
    of ``stanza`` (default: the first, `info --stanza=` answers only for one); each backup
    ``{"label", "type", "start", "stop" (epoch seconds), "size",
    "delta", "repo_size", "wal_start", "wal_stop", "prior"}``. None: no answer for that stanza."""
    try:
        stanzas = json.loads(text)
    except ValueError:
        return None
    if not isinstance(stanzas, list):
        return None
    found = next((s for s in stanzas if isinstance(s, dict) and stanza in (None, s.get("name"))), None)
    if found is None:
        return None
    backups = []
    for b in found.get("backup") or []:
        info, archive = b.get("info") or {}, b.get("archive") or {}
        backups.append({
            "label": b.get("label"),
            "type": b.get("type"),
            "start": (b.get("timestamp") or {}).get("start"),
            "stop": (b.get("timestamp") or {}).get("stop"),
            "size": info.get("size"),  # the database's
            "delta": info.get("delta"),  # what this backup copied (all of it for a full one)
            "repo_size": (info.get("repository") or {}).get("delta"),  # what it stored, compressed
            "wal_start": archive.get("start"),
            "wal_stop": archive.get("stop"),
            "prior": b.get("prior"),
            "error": b.get("error", False),
            "lsn_start": (b.get("lsn") or {}).get("start"),
        })
    wal = [(a.get("min"), a.get("max")) for a in found.get("archive") or [] if a.get("min")]
    status = found.get("status") or {}
    archive_ids = [a.get("id") for a in found.get("archive") or [] if a.get("id")]
    return {
        "status": status.get("code"),
        "message": status.get("message"),
        "backups": backups,
        "wal": (min(w[0] for w in wal), max(w[1] for w in wal)) if wal else None,
        "archive_id": archive_ids[-1] if archive_ids else None,
    }


def lsn(text: str) -> int:
    """'0/2F000208' as a number."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def parse_history(text: str) -> dict[int, int]:
    """A timeline history file: {parent timeline: the LSN where the next one branched off}."""
    history = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and "/" in fields[1]:
            history[int(fields[0])] = lsn(fields[1])
    return history


def in_history(backup: dict, timeline: int, history: dict[int, int]) -> bool:
    """Whether recovery along ``timeline`` (with its ``history``) can start from ``backup``:
    the backup is on that timeline, or on an ancestor before it branched off. A backup on a
    branch a restore abandoned is not."""
    backup_timeline = int(backup["wal_start"][:8], 16)
    if backup_timeline == timeline:
        return True
    return backup_timeline in history and backup["lsn_start"] is not None and lsn(backup["lsn_start"]) < history[backup_timeline]


def restore_window(info: dict | None, now: float) -> tuple[int, int] | None:
    """(oldest, newest) epoch seconds one can restore to: from the end of the oldest backup
    (the first consistent point) to now, the archive being continuous since (the newest
    point is what the leader archived last; `pgha restore` archives the current WAL first).
    None when there is no backup."""
    good = [b for b in (info or {}).get("backups", []) if b["stop"] and not b["error"]]
    if not good:
        return None
    return min(b["stop"] for b in good), int(now)


def backup_for_time(info: dict, target: float) -> dict | None:
    """The newest backup that ended at or before ``target`` (what a restore to it replays from)."""
    good = [b for b in info.get("backups", []) if b["stop"] and not b["error"] and b["stop"] <= target]
    return max(good, key=lambda b: b["stop"]) if good else None


def human_time(epoch) -> str | None:
    return _time(epoch)


ARCHIVER_QUERY = (
    "SELECT coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'), ''), "
    "coalesce(last_archived_wal, ''), failed_count, "
    "coalesce(to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'), ''), "
    "coalesce(last_failed_wal, ''), "
    "(last_failed_time IS NOT NULL AND last_failed_time > coalesce(last_archived_time, '-infinity')) "
    "FROM pg_stat_archiver"
)


def parse_archiver(line: str) -> dict | None:
    """One row of ARCHIVER_QUERY (psql -At, '|' separated)."""
    fields = line.strip().split("|")
    if len(fields) != 6:
        return None
    return {
        "last_archived_time": fields[0] or None,
        "last_archived_wal": fields[1] or None,
        "failed_count": int(fields[2]),
        "last_failed_time": fields[3] or None,
        "last_failed_wal": fields[4] or None,
        "failing": fields[5] == "t",
    }


class PgbackrestInfo(FactBase):
    """parse_info of this cluster's stanza, asked on the repository host (None when
    pgBackRest does not answer, e.g. not installed yet)."""

    def command(self, stanza: str) -> str:
        return make_pgbackrest_command(stanza, "--output=json", "info", user=REPO_USER) + " 2>/dev/null || true"

    def requires_command(self, stanza: str) -> str:
        return "pgbackrest"

    def process(self, output):
        return parse_info("\n".join(output))


class ResolvedAddresses(FactBase):
    """{name: [IPv4 addresses]} as the node resolves each name (getent: /etc/hosts, DNS)."""

    def command(self, names: list[str]) -> str:
        return "; ".join(f"echo \"{name} $(getent ahostsv4 {name} | awk '{{print $1}}' | sort -u | tr '\\n' ' ')\""
                         for name in names)

    def process(self, output):
        found = {}
        for line in output:
            name, *addresses = line.split()
            found[name] = addresses
        return found


class ArchiverStatus(FactBase):
    """The member's pg_stat_archiver (parse_archiver), or None."""

    def command(self, port: int, superuser: str) -> str:
        return f"{make_psql_command(ARCHIVER_QUERY, port, user=superuser)} 2>/dev/null || true"

    def process(self, output):
        return parse_archiver(output[0]) if output else None


class SystemAccount(FactBase):
    """``{"user", "uid", "group", "home", "shell"}`` of a system user (getent), or None."""

    def command(self, user: str) -> str:
        return f"getent passwd {user} && id -gn {user} || true"

    def process(self, output):
        if len(output) < 2 or output[0].count(":") < 6:
            return None
        name, _, uid, _, _, home, shell = output[0].split(":")[:7]
        return {"user": name, "uid": int(uid), "group": output[1].strip(), "home": home, "shell": shell}


def peers(cluster: Cluster, node: Node) -> dict[str, str]:
    """The other side of the repository, by the name pgBackRest connects to: name -> address."""
    others = cluster.patroni if "backup" in node.groups else cluster.backup
    return {values.tls_name(peer): peer.address for peer in others}


def observed(cluster: Cluster, node: Node) -> Plan:
    """What a converge asks of the repository host or a Patroni node about pgBackRest."""
    s = cluster.settings
    role = "repository" if "backup" in node.groups else "member"
    paths = ["/etc/pgbackrest", values.LOG_PATH, values.SERVER_UNIT_FILE, *firewall_values.paths(["pgbackrest"])]
    facts = [fact(ResolvedAddresses, names=sorted(peers(cluster, node)))]
    units = [f"{values.SERVER_UNIT}.service", *firewall_values.units(["pgbackrest"])]
    if role == "repository":
        paths += [s["pgbackrest_repo_path"]] + [f"/etc/systemd/system/{values.timer_name(t)}.{suffix}"
                                                for t in values.BACKUP_TYPES for suffix in ("service", "timer")]
        units += [f"{values.timer_name(t)}.timer" for t in values.BACKUP_TYPES]
        facts += [fact(PgbackrestInfo, stanza=values.stanza(s)), fact(SystemAccount, user=REPO_USER)]
    else:
        paths += [values.SPOOL_PATH, SCRIPTS_DIR]
        facts += [fact(ArchiverStatus, port=s["postgresql_port"], superuser=s["patroni_superuser"])]
    return Plan(paths=tuple(paths), units=tuple(units), packages=tuple(values.PACKAGES), facts=tuple(facts))
