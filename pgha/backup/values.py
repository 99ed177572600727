"""pgBackRest: the repository host's and the Patroni nodes' configuration, the commands
that archive, restore and back up, and the backup timers, computed from the topology.
Free of pyinfra so it is unit-tested directly; templates/ beside this file only print.

Layout: pgBackRest's "dedicated repository host". The `backup` host keeps the repository
(encrypted, compressed) and takes the backups from a standby; every Patroni node pushes its
WAL there asynchronously (a local spool, so PostgreSQL never waits on the repository) and
restores replicas from it. Both sides talk over pgBackRest's TLS server, with certificates
from the cluster CA: each side accepts only the other's certificate (tls-server-auth).
"""

from __future__ import annotations

import datetime
import functools
import shutil
import subprocess
from pathlib import Path

from pgha import SCRIPTS_DIR
from pgha.cluster import Cluster, Node
from pgha.pki import values as pki
from pgha.postgres import SOCKET_DIR, data_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGES = ["pgbackrest", "nftables"]
CONFIG_FILE = "/etc/pgbackrest/pgbackrest.conf"
REPO_USER = "pgbackrest"  # owns the repository on the backup host
PG_USER = "postgres"  # pgBackRest on a Patroni node runs as PostgreSQL's user
LOG_PATH = "/var/log/pgbackrest"
SPOOL_PATH = "/var/spool/pgbackrest"  # archive-async's queue on the Patroni nodes
TLS_SERVICE = "pgbackrest"  # its copy of the node's certificate (pgha.pki)
SERVER_UNIT = "pgbackrest-server"
SERVER_UNIT_FILE = f"/etc/systemd/system/{SERVER_UNIT}.service"
BACKUP_TYPES = ("full", "diff", "incr")
CIPHER_TYPE = "aes-256-cbc"
SECRET_KEY = "pgbackrest_repo_passphrase"  # in the secrets file
FIXED_REASON = ("the pgBackRest repository is encrypted with it for good; a new passphrase needs a "
                "new repository (a new stanza)")
# PostgreSQL parameters pgha sets on every member when there is a repository
OWNED_PARAMETERS = ("archive_mode", "archive_command", "archive_timeout", "restore_command")


def enabled(cluster: Cluster) -> bool:
    """Archiving and backups need a repository host (the `backup` group)."""
    return bool(cluster.backup)


def stanza(settings) -> str:
    """One stanza per cluster, named after it: it stays across failovers and timelines."""
    return settings["patroni_scope"]


def user_of(node: Node) -> str:
    return REPO_USER if "backup" in node.groups else PG_USER


def make_pgbackrest_command(stanza_name: str, *args: str, user: str | None = None,
                            program: str = "pgbackrest") -> str:
    """The one pgbackrest command line (the deploy, the facts, the CLI, Patroni's and
    PostgreSQL's commands): the cluster's stanza, then ``args``; run as ``user`` when given
    (else as the caller: PostgreSQL and Patroni run it as postgres); ``program``: pgbackrest,
    IF_REACHABLE or ARCHIVE_PUSH."""
    command = " ".join([program, f"--stanza={stanza_name}", *args])
    return f"runuser -u {user} -- {command}" if user else command


def tls_name(node: Node) -> str:
    """The name a pgBackRest client connects to, checked against the certificate's DNS
    names: the node's DNS name, else its inventory name (the lab's /etc/hosts has both)."""
    return node.dns_name or node.name


# PostgreSQL's archive_command: pgbackrest archive-push, which lets through a segment of an
# abandoned timeline that the repository holds with other content (templates/archive-push.sh.j2)
ARCHIVE_PUSH = f"{SCRIPTS_DIR}/pgbackrest-archive-push"
DUPLICATE_ERROR = 45  # pgBackRest's ArchiveDuplicateError: "already exists ... with a different checksum"


def archive_push_script() -> dict:
    return {"duplicate_code": DUPLICATE_ERROR}


def archive_parameters(settings) -> dict[str, str]:
    """Set in each member's patroni.yml: PostgreSQL hands each WAL file to pgBackRest, which
    queues it in the spool and returns; its async process pushes the queue in batches."""
    return {
        "archive_mode": "on",
        "archive_command": make_pgbackrest_command(stanza(settings), "archive-push", "%p", program=ARCHIVE_PUSH),
        "archive_timeout": settings["pgbackrest_archive_timeout"],
    }


# pgbackrest run only when the repository's TLS server accepts a connection within
# REACHABLE_SECONDS, else a failure at once. pgBackRest itself retries an unreachable
# repository for three times its io-timeout (3 min by default): PostgreSQL would wait that
# long on each WAL file and history file a replica asks for, and Patroni as long before it
# falls back to a base backup.
IF_REACHABLE = f"{SCRIPTS_DIR}/pgbackrest-if-reachable"
REACHABLE_SECONDS = 2


def restore_command(settings) -> str:
    """A replica that has fallen behind the leader's WAL fetches it from the repository;
    with the repository away, it fails at once and the replica streams instead."""
    return make_pgbackrest_command(stanza(settings), "archive-get", "%f", '"%p"', program=IF_REACHABLE)


def replica_restore_command(settings) -> str:
    """Patroni's first replica creation method: the newest backup, in place (--delta keeps
    the files that match), then the replica streams the rest from the leader. With no backup
    or no repository it fails and Patroni falls back to a base backup."""
    return make_pgbackrest_command(stanza(settings), "--delta", "restore", program=IF_REACHABLE)


def if_reachable_script(cluster: Cluster) -> dict:
    s = cluster.settings
    return {"host": tls_name(cluster.backup[0]), "port": s["pgbackrest_tls_port"], "seconds": REACHABLE_SECONDS}


def patroni_config(cluster: Cluster) -> dict:
    """What patroni.yml adds when there is a repository (empty when there is none)."""
    if not enabled(cluster):
        return {}
    s = cluster.settings
    return {
        "parameters": archive_parameters(s),
        "restore_command": restore_command(s),
        "replica_methods": ["pgbackrest", "basebackup"],
        "replica_command": replica_restore_command(s),
    }


def _tls_client(prefix: str) -> list[tuple[str, str]]:
    return [
        (f"{prefix}-ca-file", pki.CA_FILE),
        (f"{prefix}-cert-file", pki.cert_file(TLS_SERVICE)),
        (f"{prefix}-key-file", pki.key_file(TLS_SERVICE)),
    ]


def _tls_server(settings, clients: list[str]) -> list[tuple[str, str]]:
    """pgBackRest's TLS server: only certificates of the CA whose common name is one of
    ``clients`` may use this cluster's stanza."""
    return [
        ("tls-server-address", "*"),
        ("tls-server-port", str(settings["pgbackrest_tls_port"])),
        ("tls-server-ca-file", pki.CA_FILE),
        ("tls-server-cert-file", pki.cert_file(TLS_SERVICE)),
        ("tls-server-key-file", pki.key_file(TLS_SERVICE)),
        *(("tls-server-auth", f"{name}={stanza(settings)}") for name in clients),
    ]


def _common(settings) -> list[tuple[str, str]]:
    return [
        ("log-path", LOG_PATH),
        ("log-level-console", "warn"),
        ("log-level-file", "info"),
        ("process-max", str(settings["pgbackrest_process_max"])),
        ("compress-type", settings["pgbackrest_compress_type"]),
    ]


def _pg_options(settings, index: int = 1) -> list[tuple[str, str]]:
    return [
        (f"pg{index}-path", data_dir(settings)),
        (f"pg{index}-port", str(settings["postgresql_port"])),
        (f"pg{index}-socket-path", SOCKET_DIR),
        (f"pg{index}-user", settings["patroni_superuser"]),
    ]


def repository_config(cluster: Cluster, common_names: dict[str, str]) -> dict:
    """pgbackrest.conf of the repository host. ``common_names``: each node's certificate
    common name (pgha.pki.authority.common_names), which tls-server-auth matches."""
    s = cluster.settings
    backups = [
        ("repo1-path", s["pgbackrest_repo_path"]),
        ("repo1-retention-full", str(s["pgbackrest_retention_full"])),
        ("repo1-retention-diff", str(s["pgbackrest_retention_diff"])),
        ("repo1-cipher-type", CIPHER_TYPE),
        ("repo1-cipher-pass", cluster.secrets[SECRET_KEY]),
        # the leader only marks the start and the stop; the files are read from a standby
        ("backup-standby", "y" if s["pgbackrest_backup_from_standby"] else "n"),
        ("start-fast", "y"),
        ("archive-timeout", "120"),
    ]
    members = []
    for index, node in enumerate(cluster.patroni, start=1):
        members += [
            (f"pg{index}-host", tls_name(node)),
            (f"pg{index}-host-type", "tls"),
            (f"pg{index}-host-port", str(s["pgbackrest_tls_port"])),
            *_tls_client(f"pg{index}-host"),
            *_pg_options(s, index),
        ]
    return {
        "sections": {
            "global": _common(s) + backups + _tls_server(s, [common_names[n.name] for n in cluster.patroni]),
            stanza(s): members,
        }
    }


def member_config(cluster: Cluster, common_names: dict[str, str]) -> dict:
    """pgbackrest.conf of a Patroni node: the repository is the backup host; the node's own
    TLS server lets the backup host reach its PostgreSQL (backups, stanza checks)."""
    s = cluster.settings
    repo = cluster.backup[0]
    archive = [
        ("archive-async", "y"),
        ("spool-path", SPOOL_PATH),
        ("archive-timeout", "60"),
    ]
    if s["pgbackrest_archive_push_queue_max"]:
        archive.append(("archive-push-queue-max", s["pgbackrest_archive_push_queue_max"]))
    return {
        "sections": {
            "global": [
                ("repo1-host", tls_name(repo)),
                ("repo1-host-type", "tls"),
                ("repo1-host-port", str(s["pgbackrest_tls_port"])),
                *_tls_client("repo1-host"),
                *_common(s),
                *archive,
                *_tls_server(s, [common_names[repo.name]]),
            ],
            stanza(s): _pg_options(s),
        }
    }


def server_unit(node: Node) -> dict:
    return {"user": user_of(node), "config_file": CONFIG_FILE}


def timer_name(backup_type: str) -> str:
    return f"pgbackrest-{backup_type}"


def timers(cluster: Cluster) -> list[dict]:
    """One systemd timer per scheduled backup type (a schedule set to None has none)."""
    s = cluster.settings
    return [
        {
            "type": backup_type,
            "name": timer_name(backup_type),
            "schedule": s[f"pgbackrest_schedule_{backup_type}"],
            "user": REPO_USER,
            "command": make_pgbackrest_command(stanza(s), f"--type={backup_type}", "backup"),
        }
        for backup_type in BACKUP_TYPES
        if s[f"pgbackrest_schedule_{backup_type}"]
    ]


def firewall_sources(cluster: Cluster, node: Node) -> list[str]:
    """Who may reach a node's pgBackRest TLS server: the repository host reaches the
    Patroni nodes, the Patroni nodes reach the repository host; nobody else."""
    peers = cluster.patroni if "backup" in node.groups else cluster.backup
    return [n.address for n in peers]


def calendar_problem(setting: str, value) -> str | None:
    """A schedule is a systemd OnCalendar expression, checked with systemd-analyze when the
    control machine has it (every Debian has)."""
    if value is None:
        return None
    expected = "a systemd OnCalendar expression such as 'Sun *-*-* 01:00:00', or None (no timer)"
    if not isinstance(value, str) or not value.strip():
        return f"group_data: {setting} = {value!r}: expected {expected}"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    proc = subprocess.run([analyze, "calendar", value], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["not understood"])[-1]
        return f"group_data: {setting} = {value!r} ({reason}): expected {expected}"
    return None


def problems(cluster: Cluster) -> list[str]:
    """The repository's settings against the topology (types are checked by the schema)."""
    s = cluster.settings
    found = []
    if len(cluster.backup) > 1:
        found.append(
            f"inventory: group 'backup' has {len(cluster.backup)} hosts "
            f"({', '.join(n.name for n in cluster.backup)}): expected one repository host (or none)"
        )
    for node in cluster.backup:
        if "patroni" in node.groups:
            found.append(
                f"inventory: host {node.name!r} is in groups 'backup' and 'patroni': expected a "
                "dedicated repository host (backups must survive the loss of a database node)"
            )
    for backup_type in BACKUP_TYPES:
        key = f"pgbackrest_schedule_{backup_type}"
        if key in s:
            problem = calendar_problem(key, s[key])
            if problem:
                found.append(problem)
    parameters = s.get("postgresql_parameters")
    if cluster.backup and isinstance(parameters, dict):
        for name in OWNED_PARAMETERS:
            if name in parameters:
                found.append(
                    f"group_data: postgresql_parameters[{name!r}] = {parameters[name]!r}: expected it "
                    "unset (with a `backup` host pgha archives to pgBackRest and sets it on every member; "
                    "archive_timeout is pgbackrest_archive_timeout)"
                )
    return found


def schedules(settings) -> list[str]:
    return [settings[f"pgbackrest_schedule_{t}"] for t in BACKUP_TYPES if settings.get(f"pgbackrest_schedule_{t}")]


def longest_gap_seconds(calendars: list[str], iterations: int = 60) -> float | None:
    return _longest_gap(tuple(calendars), iterations)


@functools.lru_cache(maxsize=8)
def _longest_gap(calendars: tuple[str, ...], iterations: int) -> float | None:
    """The longest time between two backups the timers start (any type: each is the newest
    backup when it ends), over the next ``iterations`` of each schedule; None without
    systemd-analyze or a schedule."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not calendars:
        return None
    proc = subprocess.run([analyze, "calendar", f"--iterations={iterations}", *calendars],
                          capture_output=True, text=True, check=False, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        return None
    each = [_moments(block) for block in proc.stdout.split("\n\n") if "Normalized form:" in block]
    # up to the end of the shortest listed span, every schedule's moments are listed
    end = min(max(moments) for moments in each if moments)
    moments = sorted({m for ms in each for m in ms if m <= end})
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(moments, moments[1:])]
    return max(gaps) if gaps else None


def _moments(block: str) -> list[datetime.datetime]:
    """The moments systemd-analyze lists in one expression's block ("Iter. #2: Sun 2026-12-13 01:00:00 UTC")."""
    return [
        datetime.datetime.strptime(line.split(":", 1)[1].split()[1] + " " + line.split(":", 1)[1].split()[2],
                                   "%Y-%m-%d %H:%M:%S")
        for line in block.splitlines()
        if line.strip().startswith(("Next elapse:", "Iter. #"))
    ]
