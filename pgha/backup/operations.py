"""Operations on the pgBackRest repository, run on the repository host."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from pgha.backup.facts import MISSING_STANZA, NO_BACKUP, PgbackrestInfo
from pgha.backup.values import REPO_USER, make_pgbackrest_command
from pgha.common.checks import executing


@operation()
def stanza_created(stanza: str):
    """`stanza-create` when the repository has no stanza for this cluster yet (it reads the
    system identifier from the running PostgreSQL); an existing stanza is left alone."""
    info = host.get_fact(PgbackrestInfo, stanza=stanza)
    if info is not None and info["status"] not in MISSING_STANZA:
        host.noop(f"stanza {stanza} exists ({info['message']})")
        return
    yield make_pgbackrest_command(stanza, "stanza-create", user=REPO_USER)


@operation()
def first_backup(stanza: str):
    """A full backup when the stanza has none yet (a new cluster, a new repository), so that
    point-in-time recovery and replicas from the repository work from the first deploy."""
    info = host.get_fact(PgbackrestInfo, stanza=stanza)
    if info is not None and info["status"] != NO_BACKUP and info["backups"]:
        host.noop(f"the repository holds {len(info['backups'])} backup(s)")
        return
    yield make_pgbackrest_command(stanza, "--type=full", "backup", user=REPO_USER)


@operation()
def check_passes(stanza: str):
    """`pgbackrest check`: the leader archives a WAL file and the repository has it, every
    member's configuration agrees with the repository. Changes nothing; fails the deploy
    with pgBackRest's own message."""
    if not executing():
        return
    command = make_pgbackrest_command(stanza, "--log-level-console=warn", "check", user=REPO_USER)
    status, output = host.run_shell_command(command)
    if not status:
        raise OperationError(f"pgbackrest check failed: {' '.join(output.stderr_lines or output.stdout_lines)}")
    host.noop("pgbackrest check passed: WAL archiving reaches the repository")
    yield from ()
