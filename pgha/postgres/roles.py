"""The SQL that gives a role the password of a pgpass file on the server: the one way pgha
sets a password (Patroni's roles, the pooler's), so that no password is on a command line
or in a logged statement."""

from __future__ import annotations


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def password_from_file_sql(role: str, passfile: str, prefix: str, attributes: list[str] | None = None) -> str:
    """One statement, run as a superuser: ``role`` given the password that follows
    ``prefix`` on a line of ``passfile`` (a pgpass file on the server, read by pg_read_file).
    With ``attributes`` (None: an existing role, left as it is), the role is created if
    missing and given LOGIN and them. An error is raised again without the failing
    statement's text, which holds the password."""
    with_attributes = " ".join(["LOGIN", *(a.upper() for a in attributes)]) if attributes is not None else ""
    create = (
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(role)}) THEN "
        f"EXECUTE format('CREATE ROLE %I', {literal(role)}); END IF; "
        if attributes is not None else ""
    )
    return (
        "DO $pgha$ DECLARE secret text; BEGIN "
        f"SELECT substr(line, {len(prefix) + 1}) INTO secret "
        f"FROM regexp_split_to_table(pg_read_file({literal(passfile)}), E'\\n') AS line "
        f"WHERE starts_with(line, {literal(prefix)}); "
        f"IF coalesce(secret, '') = '' THEN RAISE EXCEPTION 'no password line in %', {literal(passfile)}; END IF; "
        + create
        + f"EXECUTE format('ALTER ROLE %I WITH {with_attributes + ' ' if with_attributes else ''}PASSWORD %L', "
        + f"{literal(role)}, secret); "
        f"EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION 'role %: %', {literal(role)}, SQLERRM; "
        "END $pgha$"
    )
