"""`pgha upgrade`'s order, refusals and restarts on given answers (pgha.upgrade, and the
registry's units_to_refresh)."""

from __future__ import annotations

from pgha import components, upgrade
from pgha.common.operations import install_command
from pgha.haproxy import hold

PATRONI = ("patroni", "4.0.7-1", "4.0.7-1+pgha1")
ETCD = ("etcd-server", "3.5.16-4", "3.5.16-4+pgha1")
NFT = ("nftables", "1.1.3-1", "1.1.3-2")


def _health(**changes) -> dict:
    members = [{"name": "pg-1", "role": "leader", "lag": 0}, {"name": "pg-2", "role": "replica", "lag": 0},
               {"name": "pg-3", "role": "replica", "lag": 0}]
    return {"members": members, "leader": members[0], "replication": {}, "problems": [], **changes}


def test_order_etcd_then_replicas_then_the_leader_then_the_others(cluster):
    updates = {n.name: [PATRONI] for n in cluster.patroni} | {n.name: [ETCD] for n in cluster.etcd}
    updates |= {n.name: [("pgbackrest", "2.54-1", "2.54-2")] for n in cluster.backup}
    steps = upgrade.plan(cluster, updates, leader="pg-2")
    kinds = [(s.node.name, s.kind) for s in steps]
    assert kinds == [("etcd1", "etcd"), ("etcd2", "etcd"), ("etcd3", "etcd"), ("pg_patroni1", "replica"),
                     ("pg_patroni3", "replica"), ("pg_patroni2", "leader"), ("backup1", "other")]
    assert steps[0].units == {"etcd.service": "restart"}
    assert steps[3].units == {"patroni.service": "restart"}
    assert steps[-1].units == {"pgbackrest-server.service": "restart"}


def test_nodes_without_updates_are_left_alone(cluster):
    assert upgrade.plan(cluster, {"pg_patroni1": [], "etcd1": []}, leader="pg-1") == []


def test_a_shared_package_restarts_nothing(cluster):
    node = cluster.node("pg_patroni1")
    assert components.units_to_refresh(cluster, node, {"nftables"}) == {}
    assert components.units_to_refresh(cluster, node, {"haproxy"}) == {"haproxy.service": "reload"}
    assert components.units_to_refresh(cluster, node, {"pgbouncer", "postgresql-17"}) == {
        "patroni.service": "restart", "pgbouncer.service": "restart"}
    steps = upgrade.plan(cluster, {"pg_patroni1": [NFT]}, leader="pg-1")
    assert steps[0].kind == "leader" and steps[0].units == {}  # no switchover: Patroni does not restart


def test_refusals():
    healthy = {"https://10.0.3.21:2379": True, "https://10.0.3.22:2379": True, "https://10.0.3.23:2379": True}
    assert upgrade.refusal(_health(), False, 1048576, healthy, 3) is None
    assert "not healthy: expected exactly one leader" in upgrade.refusal(
        _health(problems=["expected exactly one leader, found 0: []"]), False, 1048576, healthy, 3)
    assert "maintenance mode" in upgrade.refusal(_health(), True, 1048576, healthy, 3)
    lagging = _health()
    lagging["members"][2]["lag"] = 5 * 1048576
    assert upgrade.refusal(lagging, False, 1048576, healthy, 3) == (
        "replicas lag more than patroni_maximum_lag_on_failover (1.0 MiB): pg-3 (5.0 MiB)")
    assert upgrade.refusal(_health(), False, 1048576, {**healthy, "https://10.0.3.23:2379": False}, 3) == (
        "etcd is not healthy: 2 of 3 members answer healthy")
    assert "1 of 3" in upgrade.refusal(_health(), False, 1048576, {"https://10.0.3.21:2379": True}, 3)


def test_the_update_keeps_services_as_they_are():
    command = install_command(["patroni", "etcd-server"], only_upgrade=True)
    assert command.startswith("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d")
    assert "apt-get install -y -q --only-upgrade -o Dpkg::Options::=--force-confold" in command
    assert command.endswith("patroni etcd-server; status=$?; rm -f /usr/sbin/policy-rc.d; exit $status; }")
    assert "apt-get update" not in command  # the lists were refreshed when the updates were listed


def test_rotation_asks_haproxy_for_the_replicas_backend(monkeypatch):
    asked = []
    monkeypatch.setattr(hold, "ask", lambda socket, command: asked.append((socket, command)) or "\n")
    config = {"socket": "/run/haproxy/admin.sock", "replicas": "replicas"}
    assert hold.rotation(config, "pg-2", "maint") == "replicas/pg-2 maint"
    assert asked == [("/run/haproxy/admin.sock", "set server replicas/pg-2 state maint")]
    monkeypatch.setattr(hold, "ask", lambda socket, command: "No such server.\n")
    try:
        hold.rotation(config, "pg-9", "ready")
    except SystemExit as refused:
        assert "No such server" in str(refused)
    else:
        raise AssertionError("an unknown server must be refused")
