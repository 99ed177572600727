"""HAProxy's routing when things move (issue 22): a replica further behind than
haproxy_replica_max_lag leaves the read-only rotation and comes back once it has caught up;
with no replica within the lag the reads go to the leader; a reload under writes sends no
write to a replica (the servers' states survive the reload).
"""

from __future__ import annotations

import csv
import io
import time

import helpers
import pg_helpers
import psycopg2
import pytest
import requests
from conftest import CLUSTER

from pgha.haproxy import values as haproxy

pytestmark = [pytest.mark.destructive]

S = CLUSTER.settings
TIMEOUT = 90  # Patroni sees a replica's lag at its next loop; HAProxy at its next checks


def servers_up(node, backend: str) -> set[str]:
    """The servers of ``backend`` HAProxy on ``node`` sends connections to (its stats page, CSV).

    A server going down shows "UP 1/3" until its checks have failed ``fall`` times, and it still
    takes connections meanwhile; one coming back shows "DOWN 1/2" and takes none yet.
    """
    answer = requests.get(f"https://{node.address}:{S['haproxy_stats_port']}/;csv", timeout=5, verify=pg_helpers.CA,
                          auth=(S["haproxy_stats_user"], CLUSTER.secrets["haproxy_stats_password"]))
    answer.raise_for_status()
    rows = csv.DictReader(io.StringIO(answer.text.lstrip("# ")))
    return {r["svname"] for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")
            and r["status"].split()[0] == "UP"}


def everywhere(backend: str, expected: set[str]) -> bool:
    return all(servers_up(node, backend) == expected for node in CLUSTER.patroni)




def read_only_servers(node, tries: int = 6) -> set[tuple[str, bool]]:
    """(address, in recovery) of the servers new connections to ``node``'s read-only port reach."""
    found = set()
    for _ in range(tries):
        identity = pg_helpers.try_server_identity(node.address, S["haproxy_ro_port"], CLUSTER.secrets["admin_password"])
        if identity:
            found.add(identity)
    return found


@pytest.mark.slow
def test_a_lagging_replica_leaves_the_read_rotation_and_comes_back(patroni_hosts):
    leader, replicas = pg_helpers.roles()
    lagging, other = replicas
    everyone = {r.patroni_name for r in replicas}
    assert helpers.wait_until(lambda: everywhere(haproxy.REPLICAS_BACKEND, everyone), TIMEOUT)
    blocked = [leader.address] + [n.address for n in CLUSTER.backup]
    ports = [S["postgresql_port"], S["pgbackrest_tls_port"]]
    with helpers.cut_off(patroni_hosts[lagging.name], blocked, ports):
        started = time.monotonic()
        pg_helpers.write_wal(patroni_hosts[leader.name])  # beyond patroni_maximum_lag_on_failover (the lab's 1 MiB)
        left = helpers.wait_until(lambda: everywhere(haproxy.REPLICAS_BACKEND, {other.patroni_name}), TIMEOUT)
        left_after = time.monotonic() - started
        reads_during = read_only_servers(leader)
        # no replica within the lag: the reads go to the leader
        with helpers.cut_off(patroni_hosts[other.name], blocked, ports):
            pg_helpers.write_wal(patroni_hosts[leader.name])
            none_left = helpers.wait_until(lambda: everywhere(haproxy.REPLICAS_BACKEND, set()), TIMEOUT)
            reads_without_replicas = read_only_servers(leader, tries=3)
        healed = time.monotonic()
    back = helpers.wait_until(lambda: everywhere(haproxy.REPLICAS_BACKEND, everyone), TIMEOUT)
    back_after = time.monotonic() - healed
    print(f"lagging replica out of the rotation after {left_after:.1f} s, back {back_after:.1f} s after the heal")
    assert left, f"{lagging.patroni_name} stayed in the read rotation {TIMEOUT}s after falling behind"
    assert reads_during == {(other.address, True)}, reads_during
    assert none_left, "the replicas stayed in the read rotation while both lagged"
    assert reads_without_replicas == {(leader.address, False)}, reads_without_replicas
    assert back, f"{lagging.patroni_name} did not come back into the read rotation {TIMEOUT}s after catching up"
    assert not pg_helpers.wait_for_healthy_cluster(TIMEOUT)


class Writer(helpers.Background):
    """A new connection a write through one node's read-write port, as fast as it goes; the
    writes a replica refused (read-only transaction) and the other errors counted."""

    def __init__(self, node):
        super().__init__()
        self.node = node
        self.writes = self.refused_read_only = 0
        self.errors: list[str] = []

    def step(self):
        try:
            conn = pg_helpers.connect(self.node.address, S["haproxy_rw_port"], CLUSTER.secrets["admin_password"])
            try:
                pg_helpers.query(conn, f"insert into {pg_helpers.PROBE_TABLE} (value) values (%s)",
                                 (pg_helpers.unique_value("reload"),))
                self.writes += 1
            finally:
                conn.close()
        except psycopg2.errors.ReadOnlySqlTransaction:
            self.refused_read_only += 1
        except psycopg2.Error as error:
            self.errors.append(str(error).strip().splitlines()[0])


def test_a_reload_under_writes_sends_no_write_to_a_replica(patroni_hosts, passwords):
    leader, replicas = pg_helpers.roles()
    pg_helpers.ensure_probe_table(leader.address, passwords)
    node = replicas[0]  # its HAProxy: the leader is elsewhere, as for most clients
    with Writer(node) as writer:
        for _ in range(5):
            time.sleep(1)
            patroni_hosts[node.name].run("systemctl reload haproxy")
        time.sleep(1)
    print(f"{writer.writes} writes across 5 reloads, {writer.refused_read_only} refused by a replica, "
          f"{len(writer.errors)} other errors")
    assert writer.writes > 20
    assert writer.refused_read_only == 0, f"{writer.refused_read_only} writes reached a replica after a reload"
    assert writer.errors == []
