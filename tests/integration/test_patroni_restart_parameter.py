"""A PostgreSQL parameter that needs a restart (max_connections), changed in group_data,
is applied by the deploy itself: a rolling restart, replicas first, the leader last, with
no change of leader; the next run changes nothing. Raised, then lowered back (lowering
needs a second round: a hot standby cannot run below its primary's max_connections)."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import INVENTORY, changed_operations, run_pyinfra


def _show_max_connections(host) -> int:
    out = host.check_output(
        "cd /tmp && runuser -u postgres -- psql -h /var/run/postgresql -p 5434 -Atc 'show max_connections'"
    )
    return int(out.strip())


def _leader(cluster) -> str:
    node = cluster.patroni[0]
    out = subprocess.run(
        ["curl", "-s", "-m", "3", f"http://{node.address}:8008/cluster"], capture_output=True, text=True
    ).stdout
    return next(m["name"] for m in json.loads(out)["members"] if m["role"] in ("leader", "master", "primary"))


@pytest.mark.parametrize("value", [120, 100])
def test_restart_parameter_is_rolled_out_by_the_deploy(cluster, patroni_hosts, value):
    parameters = dict(cluster.settings["postgresql_parameters"], max_connections=value)
    leader_before = _leader(cluster)

    code, output = run_pyinfra(
        INVENTORY, "deploys/patroni.py", "--data", f"postgresql_parameters={json.dumps(parameters)}"
    )
    assert code == 0, output[-3000:]
    assert changed_operations(output) > 0
    assert {name: _show_max_connections(h) for name, h in patroni_hosts.items()} == {
        name: value for name in patroni_hosts
    }
    assert _leader(cluster) == leader_before

    code, output = run_pyinfra(
        INVENTORY, "deploys/patroni.py", "--data", f"postgresql_parameters={json.dumps(parameters)}"
    )
    assert code == 0, output[-3000:]
    assert changed_operations(output) == 0, output[-3000:]
