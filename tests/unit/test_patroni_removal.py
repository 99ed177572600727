"""Removing Patroni members the inventory no longer lists: what is refused, and why, on
given /cluster answers (pgha.patroni.removal)."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import DeployError

from pgha.patroni import removal

from .conftest import cluster_with


def _member(name: str, role: str = "replica", number: int = 0) -> dict:
    return {"name": name, "host": f"10.0.3.{number or int(name[-1]) + 10}", "role": role, "state": "streaming"}


def _two_listed(groups: dict, group_data: dict, **changes):
    """The seed's topology without pg_patroni3 (pg-3)."""
    groups = {**groups, "patroni": [h for h in groups["patroni"] if h[0] != "pg_patroni3"]}
    return cluster_with(groups, group_data, **changes)


RUNNING = [_member("pg-1", "leader"), _member("pg-2"), _member("pg-3")]


def test_slot_names_are_patronis():
    assert removal.slot_name("pg-3") == "pg_3"
    assert removal.slot_name("Node.A") == "node_a"
    assert removal.slot_name("db@1") == "dbu00641"
    assert len(removal.slot_name("x" * 80)) == 63


def test_nothing_to_remove_when_every_member_is_listed(cluster):
    assert removal.unlisted_members(cluster, RUNNING) == []
    assert removal.refusal(cluster, RUNNING, paused=True) is None
    assert removal.removals(cluster, None, None) == []  # no cluster yet: nothing to compare


def test_without_the_setting_the_member_is_named(groups, group_data):
    cluster = _two_listed(groups, group_data)
    with pytest.raises(DeployError) as refused:
        removal.removals(cluster, RUNNING, {"ttl": 30})
    message = str(refused.value)
    assert "pg-3 (10.0.3.13)" in message and "patroni_allow_member_removal = True" in message


def test_with_the_setting_the_member_is_removed(groups, group_data):
    cluster = _two_listed(groups, group_data, patroni_allow_member_removal=True)
    assert removal.removals(cluster, RUNNING, {"ttl": 30}) == [RUNNING[2]]


@pytest.mark.parametrize(
    ("running", "paused", "expected"),
    [
        ([_member("pg-1"), _member("pg-2"), _member("pg-3", "leader")], False,
         "pg-3 (10.0.3.13) leads the cluster and the inventory no longer lists it: switch over first "
         "(pgha switchover --to pg-1)"),
        (RUNNING, True, "maintenance mode"),
        ([_member("pg-1", "leader"), _member("pg-3")], False,
         "removing pg-3 (10.0.3.13) would leave 1 member(s) (pg-1): a cluster keeps at least two"),
    ],
    ids=["leader", "paused", "one left"],
)
def test_refused_with_the_setting(groups, group_data, running, paused, expected):
    cluster = _two_listed(groups, group_data, patroni_allow_member_removal=True)
    assert expected in removal.refusal(cluster, running, paused)


def test_refused_while_a_listed_member_is_absent(cluster):
    """Dropping an absent member's slot would drop an absent listed member's too (Patroni 4
    keeps both for member_slots_ttl)."""
    running = [_member("pg-1", "leader"), _member("pg-2"), _member("pg-4")]
    cluster.settings["patroni_allow_member_removal"] = True
    assert "pg-3 is in the inventory but not in the running cluster" in removal.refusal(cluster, running, False)


def test_the_stop_command_skips_units_the_host_lacks():
    command = removal.stop_command(["patroni.service", "pgbouncer.service"])
    assert command.startswith("for unit in patroni.service pgbouncer.service; do")
    assert 'systemctl disable --now "$unit" || exit 1' in command


def test_the_removed_member_is_reached_as_the_first_node(groups, group_data):
    cluster = _two_listed(groups, group_data, patroni_allow_member_removal=True)
    ssh = removal.ssh_of(cluster)
    assert "ssh_hostname" not in ssh
