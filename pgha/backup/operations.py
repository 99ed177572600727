"""Operations on the pgBackRest repository, run on the repository host."""

from __future__ import annotations

import time

from pyinfra import host, inventory
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from pgha.backup.facts import (
    MISSING_STANZA,
    NO_BACKUP,
    ArchiverStatus,
    PgbackrestInfo,
    ResolvedAddresses,
    SystemAccount,
)
from pgha.backup.report import backups_table
from pgha.backup.values import REPO_USER, make_pgbackrest_command
from pgha.common import snapshot
from pgha.common.checks import executing
from pgha.common.final import say_last
from pgha.patroni.facts import PatroniRole


@operation()
def stanza_created(stanza: str):
    """`stanza-create` when the repository has no stanza for this cluster yet (it reads the
    system identifier from the running PostgreSQL); an existing stanza is left alone."""
    info = snapshot.get(PgbackrestInfo, stanza=stanza)
    if info is not None and info["status"] not in MISSING_STANZA:
        host.noop(f"stanza {stanza} exists ({info['message']})")
        return
    yield make_pgbackrest_command(stanza, "stanza-create", user=REPO_USER)


@operation()
def first_backup(stanza: str):
    """A full backup when the stanza has none yet (a new cluster, a new repository), so that
    point-in-time recovery and replicas from the repository work from the first deploy."""
    info = snapshot.get(PgbackrestInfo, stanza=stanza)
    if info is not None and info["status"] != NO_BACKUP and info["backups"]:
        host.noop(f"the repository holds {len(info['backups'])} backup(s)")
        return
    yield make_pgbackrest_command(stanza, "--type=full", "backup", user=REPO_USER)


def _archiving_well(members: list[str], port: int, restapi_port: int, superuser: str) -> str | None:
    """What the snapshots say of the leader's archiving (its pg_stat_archiver): a sentence
    when it goes well, None when they cannot tell or it fails."""
    for name in members:
        member = inventory.get_host(name)
        if snapshot.of(member) is None or snapshot.get(PatroniRole, host=member, port=restapi_port)["role"] != "leader":
            continue
        state = snapshot.get(ArchiverStatus, host=member, port=port, superuser=superuser)
        if state and state["last_archived_time"] and not state["failing"]:
            return f"the leader archives (last {state['last_archived_wal']} at {state['last_archived_time']})"
        return None
    return None


@operation()
def check_passes(stanza: str, members: list[str], port: int, restapi_port: int, superuser: str):
    """`pgbackrest check`: the leader archives a WAL file and the repository has it, every
    member's configuration agrees with the repository. Changes nothing; fails the deploy
    with pgBackRest's own message. Slow by nature (it waits for a WAL file to reach the
    repository): when nothing changed in this run and the leader's pg_stat_archiver says
    archiving goes well (``members``: the Patroni nodes, whose snapshots hold it), it is not
    run again."""
    if not executing():
        return
    well = _archiving_well(members, port, restapi_port, superuser) if snapshot.of(host) is not None else None
    if well is None:
        command = make_pgbackrest_command(stanza, "--log-level-console=warn", "check", user=REPO_USER)
        status, output = host.run_shell_command(command)
        if not status:
            raise OperationError(f"pgbackrest check failed: {' '.join(output.stderr_lines or output.stdout_lines)}")
    found = snapshot.get(PgbackrestInfo, stanza=stanza)
    if found:
        say_last("backups", backups_table(found, time.time()))
    host.noop(f"nothing changed and {well}: pgbackrest check not needed" if well
              else "pgbackrest check passed: WAL archiving reaches the repository")
    yield from ()


@operation()
def system_account(user: str, home: str, shell: str = "/usr/sbin/nologin"):
    """A system user ``user`` with its own group, ``home`` and ``shell``."""
    found = snapshot.get(SystemAccount, user=user)
    if found and (found["group"], found["home"], found["shell"]) == (user, home, shell):
        host.noop(f"system user {user} ({home}, {shell})")
        return
    if not found:
        yield f"getent group {user} >/dev/null || groupadd --system {user}"
        yield f"useradd --system --gid {user} --home-dir {home} --no-create-home --shell {shell} {user}"
        return
    yield f"usermod --gid {user} --home {home} --shell {shell} {user}"


@operation()
def peers_resolve(peers: dict[str, str]):
    """Each pgBackRest peer's name (``peers``: name -> address) resolves to its address on
    this node: pgBackRest checks the name it connects to against the peer's certificate
    (pgBackRest before 2.46 cannot check an address). A name that resolves to nothing gets
    a line in /etc/hosts; one that resolves elsewhere fails the deploy before any
    configuration names it."""
    found = snapshot.get(ResolvedAddresses, names=sorted(peers))
    wrong = {name: found.get(name) for name, address in peers.items()
             if found.get(name) and address not in found[name]}
    if wrong:
        raise OperationError(
            "; ".join(f"{name} resolves to {', '.join(got)} on {host.name}, expected {peers[name]}"
                      for name, got in wrong.items())
            + ": give the host a dns_name that resolves to its address (or fix /etc/hosts, DNS)"
        )
    missing = sorted(name for name in peers if not found.get(name))
    if not missing:
        host.noop(f"{', '.join(sorted(peers))} resolve to their addresses")
        return
    for name in missing:
        yield f"echo '{peers[name]} {name}  # pgha: pgBackRest peer' >> /etc/hosts"
