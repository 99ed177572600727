"""Facts asked of a member's PostgreSQL through its local socket, as the postgres user.

``make_psql_command`` is the one psql command line of the facts, the operations, the drills
and the tests (as pyinfra's facts/postgres.py serves its operations).
"""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from pgha.postgres import SOCKET_DIR


def make_psql_command(sql: str, port: int, user: str = "postgres", database: str = "postgres") -> str:
    """psql run as the OS user ``user`` (peer authentication over the local socket),
    unaligned tuples only, stopping on the first error."""
    return (
        f"runuser -u {shlex.quote(user)} -- psql -X -v ON_ERROR_STOP=1 -h {SOCKET_DIR} "
        f"-p {int(port)} -d {shlex.quote(database)} -Atc {shlex.quote(sql)}"
    )


class PostmasterParameters(FactBase):
    """Which of ``names`` PostgreSQL reads at start only (pg_settings.context = postmaster)."""

    default = list

    def command(self, names: list[str], port: int) -> str:
        quoted = ",".join("'" + n.replace("'", "") + "'" for n in names)
        sql = f"select name from pg_settings where context = 'postmaster' and name in ({quoted})"
        return f"{make_psql_command(sql, port)} 2>/dev/null || true"

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())
