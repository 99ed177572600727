"""The HA drills' own logic, without a host: the writer's and the monitor's figures on
synthetic samples, the DRILLS registry, and cluster_state's verdict on stubbed REST answers
(the drills themselves run on the lab: tests/integration/test_ha_drills.py)."""

from __future__ import annotations

import pytest

from pgha.cluster import Cluster, Node
from pgha.patroni import rest
from pghalab import drills
from pghalab.drills import scenarios, state

SETTINGS = {
    "postgresql_port": 5434,
    "patroni_restapi_port": 8008,
    "patroni_superuser": "postgres",
    "patroni_admin_user": "admin",
    "haproxy_rw_port": 5432,
    "etcd_client_port": 2379,
    "patroni_ttl": 30,
    "patroni_loop_wait": 10,
    "patroni_retry_timeout": 10,
}
SECRETS = {"superuser_password": "fake-super", "admin_password": "fake-admin"}
PATRONI = {"pg-1": "10.0.3.141", "pg-2": "10.0.3.201", "pg-3": "10.0.3.68"}
WAL_ON_TIMELINE_3 = [("0000000300000000000000A1",)]


def make_cluster(etcd_members: int = 3) -> Cluster:
    etcd = [Node(f"etcd{i}", f"10.0.3.{10 + i}", {"etcd"}) for i in range(1, etcd_members + 1)]
    patroni = [
        Node(f"pg_patroni{i}", address, {"patroni"}, patroni_name=name)
        for i, (name, address) in enumerate(PATRONI.items(), 1)
    ]
    return Cluster(settings=dict(SETTINGS), groups={"etcd": etcd, "patroni": patroni, "backup": []}, secrets=dict(SECRETS))


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster()


def cluster_answer(*roles: str, timeline: int = 2) -> list[dict]:
    """rest.members' view of a /cluster answer with one member per role (pg-1, pg-2, ...)."""
    return rest.parse_cluster(
        {
            "members": [
                {"name": name, "host": PATRONI[name], "role": role,
                 "state": "running" if role in ("leader", "master") else "streaming", "timeline": timeline}
                for name, role in zip(PATRONI, roles)
            ]
        }
    )


# --- Writer.longest_gap -------------------------------------------------------------------------


def writer_with(cluster, times: list[float], stopped_at: float | None = None) -> drills.Writer:
    writer = drills.Writer(cluster, label="test")  # not started: no connection
    writer.acks = [(t, f"{writer.prefix}-{i:07d}") for i, t in enumerate(times, 1)]
    writer.stopped_at = stopped_at
    return writer


def test_longest_gap_is_the_longest_wait_between_acks_in_the_window(cluster):
    writer = writer_with(cluster, [0.0, 1.0, 2.0, 5.0, 5.5, 6.0])
    gap = writer.longest_gap(1.5, 6.0)
    assert gap == {"seconds": 3.0, "from": 2.0, "to": 5.0, "resumed": True}


def test_longest_gap_counts_from_the_last_ack_before_the_window(cluster):
    # the fault at 1.5: the client last wrote at 1.0 and again only at 4.0
    gap = writer_with(cluster, [0.0, 1.0, 4.0, 4.1]).longest_gap(1.5, 4.5)
    assert gap == {"seconds": 3.0, "from": 1.0, "to": 4.0, "resumed": True}


def test_longest_gap_without_writes_before_starts_at_the_window(cluster):
    gap = writer_with(cluster, [3.0, 3.1]).longest_gap(1.0, 3.2)
    assert gap["seconds"] == pytest.approx(2.0)
    assert (gap["from"], gap["to"], gap["resumed"]) == (1.0, 3.0, True)


def test_longest_gap_until_the_writer_stopped_when_writes_never_resumed(cluster):
    writer = writer_with(cluster, [0.0, 1.0], stopped_at=10.0)
    assert writer.longest_gap(1.5) == {"seconds": 9.0, "from": 1.0, "to": 10.0, "resumed": False}


def test_longest_gap_ignores_acks_after_the_window(cluster):
    gap = writer_with(cluster, [0.0, 1.0, 2.0, 9.0, 20.0]).longest_gap(0.5, 3.0)
    # 2.0 -> 9.0 overlaps the window; 9.0 -> 20.0 does not
    assert gap == {"seconds": 7.0, "from": 2.0, "to": 9.0, "resumed": True}


def test_acks_between_and_last_ack(cluster):
    writer = writer_with(cluster, [0.0, 1.0, 2.0, 3.0])
    assert writer.acks_between(1.0, 2.0) == 2
    assert writer.last_ack() == 3.0
    assert writer_with(cluster, []).last_ack() == 0.0


def test_writer_rotates_the_first_host_of_its_dsn(cluster):
    writer = drills.Writer(cluster)
    hosts = [dsn.split("host=")[1].split()[0] for dsn in writer._dsns]
    addresses = list(PATRONI.values())
    assert hosts == [",".join(addresses[i:] + addresses[:i]) for i in range(3)]
    assert all("password=fake-admin" in dsn and "keepalives=1" in dsn for dsn in writer._dsns)


# --- Monitor -----------------------------------------------------------------------------------


def monitor_with(cluster, samples: dict[str, list[tuple[float, str | None]]]) -> drills.Monitor:
    monitor = drills.Monitor(cluster)  # not started: no connection
    monitor.samples = samples
    return monitor


def test_primary_periods_are_runs_of_primary_samples(cluster):
    monitor = monitor_with(cluster, {
        "pg-1": [(0, "primary"), (1, "primary"), (2, None), (3, "primary")],
        "pg-2": [(0, "replica"), (1, None), (2, "primary"), (3, "primary"), (4, "replica")],
        "pg-3": [(0, "replica"), (1, "replica")],
    })
    assert monitor.primary_periods() == {"pg-1": [(0, 1), (3, 3)], "pg-2": [(2, 3)], "pg-3": []}


def test_two_primaries_are_overlapping_periods(cluster):
    monitor = monitor_with(cluster, {
        "pg-1": [(0, "primary"), (1, "primary"), (2, None), (3, "primary")],
        "pg-2": [(0, "replica"), (1, None), (2, "primary"), (3, "primary"), (4, "replica")],
        "pg-3": [(0, "replica")],
    })
    assert monitor.two_primaries() == [{"nodes": ("pg-1", "pg-2"), "from": 3, "to": 3}]


def test_a_clean_handover_is_not_two_primaries(cluster):
    # pg-1 unreachable (None) between its last primary sample and pg-2's first one
    monitor = monitor_with(cluster, {
        "pg-1": [(0, "primary"), (1, "primary"), (2, None), (3, "replica")],
        "pg-2": [(0, "replica"), (1, "replica"), (2.5, "primary"), (3, "primary")],
        "pg-3": [],
    })
    assert monitor.two_primaries() == []
    assert monitor.primaries_between(0.5, 2.6) == {"pg-1", "pg-2"}
    assert monitor.primaries_between(2.0, 2.4) == set()


def test_sampled_since_needs_a_sample_of_every_node(cluster):
    monitor = monitor_with(cluster, {"pg-1": [(5, None)], "pg-2": [(6, "replica")], "pg-3": [(1, "primary")]})
    assert not monitor.sampled_since(4)
    monitor.samples["pg-3"].append((7, None))
    assert monitor.sampled_since(4)


# --- the registry ------------------------------------------------------------------------------


def test_registry_names():
    assert sorted(drills.DRILLS) == [
        "etcd-one-down", "etcd-quorum-lost", "etcd-quorum-lost-leader-cut", "leader-haproxy-stopped", "leader-killed",
        "leader-network-cut", "leader-patroni-stopped", "replica-killed", "switchover",
    ]
    for name, make in drills.DRILLS.items():
        drill = make()
        assert drill.name == name and repr(drill) == name
        assert drill.description
        assert drill.affected in ("leader", "target", None)


def test_the_etcd_drills_are_one_class_with_a_count():
    one, lost = drills.DRILLS["etcd-one-down"](), drills.DRILLS["etcd-quorum-lost"]()
    assert type(one) is type(lost) is drills.EtcdMembersDown
    assert (one.count, one.quorum_lost, one.affected, one.failover) == (1, False, None, False)
    assert (lost.count, lost.quorum_lost, lost.affected, lost.failover) == (2, True, "leader", False)
    assert lost.description.startswith("two etcd members stopped (quorum lost)")


def context(cluster, leader: str = "pg-1") -> drills.Context:
    return drills.Context(cluster, writer=None, monitor=None, old_leader={"name": leader}, timeline=2)


@pytest.mark.parametrize("count, target", [(1, None), (2, "pg_patroni1")])
def test_etcd_drills_stop_the_raft_leader_first(cluster, monkeypatch, count, target):
    monkeypatch.setattr(scenarios, "etcd_leader_first", lambda c: [c.etcd[2], c.etcd[0], c.etcd[1]])
    monkeypatch.setattr(scenarios, "failsafe_mode", lambda c: True)
    ctx = context(cluster)
    drills.EtcdMembersDown(count).choose(ctx)
    assert [n.name for n in ctx.etcd_targets] == ["etcd3", "etcd1"][:count]
    assert (ctx.target.name if ctx.target else None) == target
    assert ctx.notes.get("failsafe") is (True if count == 2 else None)


@pytest.mark.parametrize("failsafe", [True, False])
def test_the_quorum_lost_and_leader_cut_drill_stops_two_etcd_members_and_aims_at_the_leader(cluster, monkeypatch, failsafe):
    monkeypatch.setattr(scenarios, "etcd_leader_first", lambda c: [c.etcd[1], c.etcd[0], c.etcd[2]])
    monkeypatch.setattr(scenarios, "failsafe_mode", lambda c: failsafe)
    ctx = context(cluster)
    drills.DRILLS["etcd-quorum-lost-leader-cut"]().choose(ctx)
    assert [n.name for n in ctx.etcd_targets] == ["etcd2", "etcd1"]
    assert ctx.target.name == "pg_patroni1" and ctx.notes["failsafe"] is failsafe


@pytest.mark.parametrize("count, members", [(2, 5), (1, 1), (4, 3)])
def test_etcd_drills_refuse_a_count_that_does_not_match_their_name(monkeypatch, count, members):
    monkeypatch.setattr(scenarios, "etcd_leader_first", lambda c: pytest.fail("no etcd request expected"))
    with pytest.raises(drills.DrillError, match="quorum"):
        drills.EtcdMembersDown(count).choose(context(make_cluster(etcd_members=members)))


@pytest.mark.parametrize("sync, expected", [([], "pg-2"), (["pg-3"], "pg-3")])
def test_replica_drills_prefer_the_synchronous_standby(cluster, monkeypatch, sync, expected):
    monkeypatch.setattr(scenarios, "sync_standbys", lambda c: sync)
    ctx = context(cluster)
    drills.ReplicaKilled().choose(ctx)
    assert ctx.target.patroni_name == expected
    ctx = context(cluster)
    drills.Switchover().choose(ctx)
    assert ctx.notes["candidate"] == expected and ctx.target.patroni_name == "pg-1"


# --- cluster_state -----------------------------------------------------------------------------


@pytest.fixture
def rest_answers(monkeypatch):
    """Stubbed REST answers (rest.health, GET /config) and WAL file name; tests fill them."""
    answers = {
        "members": cluster_answer("leader", "replica", "replica"),
        "replication": {"pg-2": "streaming", "pg-3": "streaming"},
        "problems": [],
        "config": {"synchronous_mode": False},
        "wal": WAL_ON_TIMELINE_3,
        "asked": [],
    }

    def health(cluster, timeout=2):
        members = answers["members"]
        return {
            "members": members,
            "leader": next((m for m in members if m["role"] == "leader"), None),
            "replication": answers["replication"],
            "problems": answers["problems"],
        }

    def get_json(cluster, path, timeout=2, address=None):
        answers["asked"].append(path)
        return answers["config"] if path == "config" else None

    def try_query(cluster, address, sql, timeout=3.0):
        answers["asked"].append((address, sql))
        return answers["wal"]

    monkeypatch.setattr(rest, "health", health)
    monkeypatch.setattr(rest, "get_json", get_json)
    monkeypatch.setattr(state, "try_query", try_query)
    return answers


def test_a_healthy_cluster(cluster, rest_answers):
    result = drills.cluster_state(cluster)
    assert result["ok"] and result["problem"] == "" and result["problems"] == []
    assert result["leader"] == "pg-1"
    assert result["streaming"] == ["pg-2", "pg-3"]
    assert result["timeline"] == 3  # the leader's WAL file, not /cluster's 2
    assert "sync_standbys" not in result
    assert (PATRONI["pg-1"], "select pg_walfile_name(pg_current_wal_lsn())") in rest_answers["asked"]


def test_timeline_from_cluster_when_the_wal_is_unreadable(cluster, rest_answers):
    rest_answers["wal"] = None
    assert drills.cluster_state(cluster)["timeline"] == 2


def test_the_health_verdict_is_rest_health(cluster, rest_answers):
    rest_answers["replication"] = {"pg-2": "streaming", "pg-3": "catchup"}
    rest_answers["problems"] = ["replica pg-3 is not streaming from the leader", "something else"]
    result = drills.cluster_state(cluster)
    assert not result["ok"]
    assert result["problem"] == "replica pg-3 is not streaming from the leader; something else"
    assert result["streaming"] == ["pg-2"]
    assert "config" not in rest_answers["asked"]  # no synchronous check on a broken cluster


def test_no_leader(cluster, rest_answers):
    rest_answers["members"] = cluster_answer("replica", "replica", "replica")
    rest_answers["replication"] = {}
    rest_answers["problems"] = ["expected exactly one leader, found 0: []"]
    result = drills.cluster_state(cluster)
    assert (result["ok"], result["leader"], result["timeline"], result["streaming"]) == (False, None, None, [])
    assert rest_answers["asked"] == []  # no leader to ask its WAL


def test_synchronous_mode_needs_its_synchronous_standby(cluster, rest_answers):
    rest_answers["config"] = {"synchronous_mode": True}
    result = drills.cluster_state(cluster)
    assert not result["ok"]
    assert result["problem"] == "synchronous mode: 0 synchronous standby(s) [], expected 1"
    assert result["sync_standbys"] == []

    rest_answers["members"] = cluster_answer("master", "sync_standby", "replica")
    result = drills.cluster_state(cluster)
    assert result["ok"], result["problem"]
    assert result["sync_standbys"] == ["pg-2"]


def test_synchronous_node_count_is_capped_by_the_replicas(cluster, rest_answers):
    rest_answers["members"] = cluster_answer("leader", "sync_standby", "replica")
    rest_answers["config"] = {"synchronous_mode": True, "synchronous_node_count": 2}
    assert drills.cluster_state(cluster)["problem"] == (
        "synchronous mode: 1 synchronous standby(s) ['pg-2'], expected 2"
    )
    rest_answers["config"]["synchronous_node_count"] = 5  # capped to the 2 replicas
    rest_answers["members"] = cluster_answer("leader", "sync_standby", "sync_standby")
    assert drills.cluster_state(cluster)["ok"]


def test_wait_healthy_notes_when_the_watched_member_streams(cluster, monkeypatch):
    states = iter([
        {"ok": False, "streaming": [], "problem": "a"},
        {"ok": False, "streaming": ["pg-1"], "problem": "b"},
        {"ok": True, "streaming": ["pg-1", "pg-2"], "problem": ""},
    ])
    monkeypatch.setattr(state, "cluster_state", lambda c: next(states))
    result = drills.wait_healthy(cluster, timeout=5, interval=0, watch="pg-1")
    assert result["ok"] and result["watch_streaming_at"] is not None


def test_wait_healthy_gives_the_last_state_after_the_timeout(cluster, monkeypatch):
    monkeypatch.setattr(state, "cluster_state", lambda c: {"ok": False, "streaming": [], "problem": "down"})
    result = drills.wait_healthy(cluster, timeout=0, interval=0, watch="pg-1")
    assert (result["ok"], result["problem"], result["watch_streaming_at"]) == (False, "down", None)


class _Connection:
    def __init__(self, dsn: str):
        self.dsn = dsn

    def close(self) -> None:
        pass


def test_the_write_probe_counts_only_acknowledged_commits(cluster, monkeypatch):
    """A committed row: writable; a replica's read-only error (25006): replica, the
    connection kept; a commit that waits past the deadline (a synchronous standby gone): no
    answer, which counts for nothing."""
    import psycopg2

    from pghalab.drills import monitor as watcher

    class ReadOnly(psycopg2.Error):
        pgcode = watcher.READ_ONLY_TRANSACTION

    answers = {"pg-1": None, "pg-2": ReadOnly("cannot execute INSERT in a read-only transaction"),
               "pg-3": TimeoutError("deadline exceeded")}
    connects, statements = [], []
    monkeypatch.setattr(watcher, "async_connect", lambda dsn, timeout: connects.append(dsn) or _Connection(dsn))

    def query(conn, sql, timeout):
        statements.append(sql)
        member = sql.split("'")[1]
        if answers[member] is not None:
            raise answers[member]
        return []

    monkeypatch.setattr(watcher, "async_query", query)
    probe = drills.Monitor(cluster, interval=0.0, write=True)
    for node in cluster.patroni:
        samples = probe.samples[node.patroni_name]
        monkeypatch.setattr(probe._stop_event, "is_set", lambda samples=samples: len(samples) >= 3)
        probe._poll(node)
    assert {name: {state for _, state in rows} for name, rows in probe.samples.items()} == {
        "pg-1": {"primary"}, "pg-2": {"replica"}, "pg-3": {None}}
    assert all(sql.startswith(f"insert into {watcher.PROBE_TABLE} (member) values ") for sql in statements)
    hosts = [dsn.split("host=")[1].split()[0] for dsn in connects]
    assert hosts.count(PATRONI["pg-1"]) == 1 and hosts.count(PATRONI["pg-2"]) == 1
    assert hosts.count(PATRONI["pg-3"]) == 3  # a late commit: the connection is dropped
