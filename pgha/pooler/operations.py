"""Operations of the pooler: the lookup function on the leader, PAUSE and RESUME, and the
check that a pooled connection reaches the leader."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from pgha.common import snapshot
from pgha.patroni.facts import PatroniRole
from pgha.pooler.facts import PoolerLookup
from pgha.postgres.facts import make_psql_command


@operation()
def lookup_function(wanted: dict, sql: str, auth_user: str, port: int, restapi_port: int, superuser: str):
    """On the leader only (the replicas get it by replication): the lookup function, its
    owner and their rights are ``wanted`` (pgha.pooler.values.lookup_wanted), else ``sql``
    (values.lookup_sql) runs as ``superuser``."""
    if snapshot.get(PatroniRole, port=restapi_port)["role"] != "leader":
        host.noop(f"{host.name} is not the leader: the lookup function is kept from the leader")
        return
    found = snapshot.get(PoolerLookup, auth_user=auth_user, port=port, superuser=superuser)
    if found == wanted:
        host.noop("the lookup function hands out verifiers to the auth user only")
        return
    yield make_psql_command(sql, port, user=superuser)
