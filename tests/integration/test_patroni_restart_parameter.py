"""A PostgreSQL parameter that needs a restart (max_connections), changed in group_data,
is applied by the deploy itself: a rolling restart, replicas first, the leader last, with
no change of leader; the next run changes nothing. Raised, then lowered back (lowering
needs a second round: a hot standby cannot run below its primary's max_connections). A
client writing through PgBouncer meanwhile sees no error: every PgBouncer is paused around
the leader's restart."""

from __future__ import annotations

import json

import pytest
from helpers import INVENTORY, changed_operations, run_pyinfra

from pgha.patroni import rest
from pgha.postgres.facts import make_psql_command
from pghalab.drills.writer import Writer, setup_table

pytestmark = pytest.mark.destructive


def _show_max_connections(cluster, host) -> int:
    out = host.check_output("cd /tmp && " + make_psql_command("show max_connections", cluster.settings["postgresql_port"]))
    return int(out.strip())


def _leader(cluster) -> str:
    return rest.leader(cluster)["name"]


@pytest.mark.parametrize("value", [120, 100])
def test_restart_parameter_is_rolled_out_by_the_deploy(cluster, patroni_hosts, value):
    parameters = dict(cluster.settings["postgresql_parameters"], max_connections=value)
    leader_before = _leader(cluster)
    setup_table(cluster)
    writer = Writer(cluster, label="pooled-restart", interval=0.02, port_setting="pgbouncer_port")
    writer.start()
    try:
        code, output = run_pyinfra(
            INVENTORY, "deploys/patroni.py", "--data", f"postgresql_parameters={json.dumps(parameters)}"
        )
    finally:
        writer.stop()
    assert code == 0, output[-3000:]
    assert changed_operations(output) > 0
    assert writer.errors == [] and writer.acks, writer.errors
    print(f"pooled writer: {len(writer.acks)} writes, longest gap {writer.longest_gap(writer.started_at)['seconds']:.2f}s")
    assert {name: _show_max_connections(cluster, h) for name, h in patroni_hosts.items()} == {
        name: value for name in patroni_hosts
    }
    assert _leader(cluster) == leader_before

    code, output = run_pyinfra(
        INVENTORY, "deploys/patroni.py", "--data", f"postgresql_parameters={json.dumps(parameters)}"
    )
    assert code == 0, output[-3000:]
    assert changed_operations(output) == 0, output[-3000:]
