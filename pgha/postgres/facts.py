"""Facts asked of a member's PostgreSQL through its local socket, as the postgres user.

``make_psql_command`` is the one psql command line of the facts, the operations, the drills
and the tests (as pyinfra's facts/postgres.py serves its operations).
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from pgha.postgres import SOCKET_DIR


def make_psql_command(sql: str, port: int, user: str = "postgres", database: str = "postgres",
                      address: str = SOCKET_DIR, role: str | None = None,
                      passfile: str | None = None) -> str:
    """psql run as the OS user ``user``, unaligned tuples only, stopping on the first error.

    By default it connects over the local socket as ``user`` (peer authentication). With
    ``role`` and ``passfile`` it logs in as that role with the password of a pgpass file
    (``PGPASSFILE``, never a password on the command line), never prompting (``-w``)."""
    env = f"env PGPASSFILE={shlex.quote(passfile)} " if passfile else ""
    login = f"-U {shlex.quote(role)} " if role else ""
    no_prompt = "-w " if passfile else ""
    return (
        f"runuser -u {shlex.quote(user)} -- {env}psql -X {no_prompt}-v ON_ERROR_STOP=1 "
        f"-h {shlex.quote(address)} -p {int(port)} {login}-d {shlex.quote(database)} -Atc {shlex.quote(sql)}"
    )


def pg_settings_query(columns: str, names: list[str], where: str = "true") -> str:
    """The SQL selecting ``columns`` of pg_settings for ``names`` (and ``where``)."""
    quoted = ",".join("'" + n.replace("'", "") + "'" for n in names)
    return f"select {columns} from pg_settings where {where} and name in ({quoted})"


class PostmasterParameters(FactBase):
    """Which of ``names`` PostgreSQL reads at start only (pg_settings.context = postmaster)."""

    default = list

    def command(self, names: list[str], port: int) -> str:
        sql = pg_settings_query("name", names, where="context = 'postmaster'")
        return f"{make_psql_command(sql, port)} 2>/dev/null || true"

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


class PostgresSettings(FactBase):
    """The running server's value of each of ``names`` (pg_settings.setting), read over the
    local socket; empty when PostgreSQL does not answer."""

    default = dict

    def command(self, names: list[str], port: int) -> str:
        sql = pg_settings_query("name || '=' || setting", names)
        return f"{make_psql_command(sql, port)} 2>/dev/null || true"

    def process(self, output):
        return dict(line.strip().split("=", 1) for line in output if "=" in line)


class RoleLogin(FactBase):
    """Whether ``role`` logs in over TCP at ``address``:``port`` with the password its pgpass
    file ``passfile`` holds, and then the ``attributes`` it has (pg_roles columns without
    their ``rol`` prefix): ``{"login": True, "createrole": True, "createdb": False}``. A
    wrong password, a missing role, a role without LOGIN or a server that does not answer:
    ``{"login": False}``."""

    @staticmethod
    def default():
        return {"login": False}

    def command(self, role: str, port: int, passfile: str, attributes: list[str],
                address: str = "127.0.0.1") -> str:
        pairs = ", ".join(f"'{a}', rol{a}" for a in attributes if a.isidentifier())
        sql = f"select json_build_object({pairs}) from pg_roles where rolname = current_user"
        psql = make_psql_command(sql, port, address=address, role=role, passfile=passfile)
        return f"{psql} 2>/dev/null || true"

    def process(self, output):
        try:
            found = json.loads(output[0])
        except (IndexError, ValueError):
            return self.default()
        return {"login": True, **found} if isinstance(found, dict) else self.default()
