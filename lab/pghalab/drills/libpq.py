"""PostgreSQL with a hard deadline, as the superuser, straight to one node (not through HAProxy).

libpq's connect_timeout is whole seconds with a minimum of 2: the monitor needs 0.5 s, so
connections here are asynchronous and waited for with select() and a deadline of our own.
"""

from __future__ import annotations

import select
import time

import psycopg2
import psycopg2.extensions

from pgha.client import tls_options


def error_line(error: Exception) -> str:
    """An error as the drills record it: its first line, or its type when it has no text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _wait(conn, deadline: float) -> None:
    """Drive an asynchronous connection until its current operation completes; a socket
    wait on select(), not a poll loop, so it does not go through pgha.waiting."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline exceeded")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)


def async_connect(dsn: str, timeout: float):
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(dsn, async_=True)
    try:
        _wait(conn, deadline)
    except BaseException:
        conn.close()
        raise
    return conn


def async_query(conn, sql: str, timeout: float) -> list[tuple]:
    deadline = time.monotonic() + timeout
    cur = conn.cursor()
    cur.execute(sql)
    _wait(conn, deadline)
    return cur.fetchall() if cur.description else []


def superuser_dsn(cluster, address: str, sslmode: str | None = None) -> str:
    """``sslmode`` other than verify-full only to watch a cluster deployed before TLS."""
    s = cluster.settings
    tls = tls_options(cluster) if sslmode is None else {"sslmode": sslmode}
    return (
        f"host={address} port={s['postgresql_port']} user={s['patroni_superuser']} "
        f"password={cluster.secrets['superuser_password']} dbname=postgres "
        "application_name=pgha-drill "
        + " ".join(f"{k}={v}" for k, v in tls.items())
    )


def try_query(cluster, address: str, sql: str, timeout: float = 3.0) -> list[tuple] | None:
    """``sql`` as the superuser on one node's PostgreSQL, or None if it fails or is late."""
    conn = None
    try:
        conn = async_connect(superuser_dsn(cluster, address), timeout)
        return async_query(conn, sql, timeout)
    except (psycopg2.Error, TimeoutError, OSError):
        return None
    finally:
        if conn is not None:
            conn.close()
