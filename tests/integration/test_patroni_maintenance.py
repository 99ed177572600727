"""The maintenance commands on the lab (issue 23): `pgha pause` shows in `pgha status`, a
deploy leaves it on and says so, `pgha resume` ends it; `pgha failover` makes a replica the
leader of a paused cluster whose leader is gone, refused while a leader answers or its
PostgreSQL still runs as a primary; `pgha history` names the failover; `pgha restart`
restarts replicas first and the leader after a paused switchover, `--pending` the members
waiting for a parameter."""

from __future__ import annotations

import time

import helpers
import pg_helpers
import pytest
import yaml
from conftest import CLUSTER

from pgha import client, maintenance
from pgha.patroni import rest
from pgha.postgres import bin_dir, data_dir
from pgha.postgres.facts import make_psql_command

pytestmark = [pytest.mark.destructive, pytest.mark.slow]

S = CLUSTER.settings


def _pgha(*args: str, timeout: float = 300):
    result = helpers.pgha(*args, timeout=timeout)
    print(f"$ pgha {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


def _members_paused() -> dict[str, bool]:
    return {n.patroni_name: bool((rest.get_json(CLUSTER, "patroni", address=n.address) or {}).get("pause"))
            for n in CLUSTER.patroni}


def test_pause_shows_in_status_the_deploy_keeps_it_and_resume_ends_it():
    paused = _pgha("pause")
    try:
        assert paused.returncode == 0, paused.stderr
        assert _members_paused() == {n.patroni_name: True for n in CLUSTER.patroni}
        status = _pgha("status")
        assert "maintenance mode: on" in status.stdout, status.stdout
        code, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/patroni.py", timeout=900)
        assert code == 0, helpers.tail(output)
        assert "--> Maintenance mode" in output and "stays so" in output, helpers.tail(output)
        assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
        assert maintenance.paused(CLUSTER) is True, "the deploy resumed the user's maintenance mode"
        again = _pgha("pause")
        assert again.returncode == 0 and "already on" in again.stdout
    finally:
        resumed = _pgha("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _members_paused() == {n.patroni_name: False for n in CLUSTER.patroni}
    assert "maintenance mode" not in _pgha("status").stdout


def test_failover_to_a_replica_when_the_paused_leader_is_gone(patroni_hosts):
    leader, replicas = pg_helpers.roles()
    candidate = replicas[0]
    refused = _pgha("failover", "--to", candidate.patroni_name)
    assert refused.returncode == 1 and "pgha switchover" in refused.stderr, refused.stderr
    old = patroni_hosts[leader.name]
    assert _pgha("pause").returncode == 0
    try:
        old.run("systemctl stop patroni")
        # paused, a stopped Patroni leaves PostgreSQL running as the primary
        refused = _pgha("failover", "--to", candidate.patroni_name)
        assert refused.returncode == 1 and "still runs as a primary" in refused.stderr, refused.stderr
        stopped = old.run(f"su postgres -c '{bin_dir(S)}/pg_ctl -D {data_dir(S)} stop -m fast'")
        assert stopped.rc == 0, stopped.stderr
        started = time.monotonic()
        done = _pgha("failover", "--to", candidate.patroni_name, timeout=300)
        print(f"failover took {time.monotonic() - started:.1f}s (the old leader key lives until its ttl)")
        assert done.returncode == 0, done.stderr
        assert client.write_probe(CLUSTER) == candidate.address
        # right after a promotion the new leader reports its old timeline until its
        # end-of-recovery checkpoint and its next loop: the table may lag by that much
        seen = {}

        def names_the_candidate() -> bool:
            history = seen["history"] = _pgha("history")
            assert history.returncode == 0, history.stderr
            ended = [line.split() for line in history.stdout.splitlines()[2:]]
            return candidate.patroni_name in ended[-2]  # the last ended timeline: who led next

        assert helpers.wait_until(names_the_candidate, 60, interval=2), seen["history"].stdout
    finally:
        old.run("systemctl start patroni")
        resumed = _pgha("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not pg_helpers.wait_for_healthy_cluster(180)


def _wal_buffers(host) -> str:
    return host.check_output("cd /tmp && " + make_psql_command("show wal_buffers", S["postgresql_port"])).strip()


def _set_wal_buffers(value) -> None:
    leader = rest.leader(CLUSTER)
    response = maintenance._post(CLUSTER, "PATCH", leader["host"], "config",
                             {"postgresql": {"parameters": {"wal_buffers": value}}}, timeout=10)
    assert response.status_code == 200, response.text
    # Patroni flags the members at its next loop
    assert helpers.wait_until(lambda: all(m["pending_restart"] for m in rest.members(CLUSTER)),
                              2 * S["patroni_loop_wait"] + 10), rest.members(CLUSTER)


def test_restart_moves_the_leadership_first_and_pending_restarts_every_member(patroni_hosts):
    leader, replicas = pg_helpers.roles()
    one = _pgha("restart", replicas[0].patroni_name)
    assert one.returncode == 0, one.stderr
    assert rest.leader(CLUSTER)["name"] == leader.patroni_name, "restarting a replica moved the leadership"
    before = {name: _wal_buffers(h) for name, h in patroni_hosts.items()}
    _set_wal_buffers("8MB")
    try:
        pending = _pgha("restart", "--pending")
        assert pending.returncode == 0, pending.stderr
        lines = [line for line in pending.stdout.splitlines() if " restarted" in line]
        assert len(lines) == len(CLUSTER.patroni) and leader.patroni_name in lines[-1], pending.stdout
        assert "by its switchover" in lines[-1], pending.stdout
        assert rest.leader(CLUSTER)["name"] != leader.patroni_name
        assert {name: _wal_buffers(h) for name, h in patroni_hosts.items()} == {n: "8MB" for n in patroni_hosts}
        # each member's flag in the DCS is as old as its last HA loop
        assert helpers.wait_until(lambda: not [m for m in rest.members(CLUSTER) if m["pending_restart"]],
                                  2 * S["patroni_loop_wait"] + 5), rest.members(CLUSTER)
        assert "no member waits" in _pgha("restart", "--pending").stdout
    finally:
        _set_wal_buffers(None)
        back = _pgha("restart", "--pending")
    assert back.returncode == 0, back.stderr
    assert {name: _wal_buffers(h) for name, h in patroni_hosts.items()} == before
    assert not pg_helpers.wait_for_healthy_cluster(120)


def test_the_watchdog_on_the_labs_containers(patroni_hosts):
    """Containers have no watchdog device (softdog would load into the kernel they share
    with the host): with 'automatic', the default, their files say off and nothing is
    loaded; 'required' is refused before anything changes, naming the host and what would
    work."""
    for name, host in patroni_hosts.items():
        config = host.file(f"/etc/patroni/{CLUSTER.node(name).patroni_name}.yml").content_string
        assert yaml.safe_load(config)["watchdog"]["mode"] == "off", config[-300:]
        assert not host.file("/etc/modules-load.d/pgha-watchdog.conf").exists
    code, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/patroni.py", "--data", "patroni_watchdog=required")
    assert code != 0
    assert "patroni_watchdog = 'required'" in output and "is a container (lxc)" in output, helpers.tail(output)
    assert "expected 'automatic'" in output and "Traceback" not in output, helpers.tail(output)
    assert "--> Starting operation" not in output, "refused only once operations ran"
