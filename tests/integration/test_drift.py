"""`pgha diff` on the lab (issue 23): 0 on the converged cluster; after a DCS setting is
changed behind the deploy's back (`patronictl edit-config --set ttl=15`), 1 with a line
naming ttl, its live and its wanted value; 0 again once the deploy has put it back. It
changes nothing itself."""

from __future__ import annotations

import helpers
import pytest
from conftest import CLUSTER

from pgha.patroni import rest
from pgha.patroni.facts import patronictl
from pgha.patroni.values import config_file

S = CLUSTER.settings


def _diff():
    result = helpers.pgha("diff", timeout=120)
    print(f"$ pgha diff  (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


def _assert_no_difference_but_packages(result):
    others = [line for line in result.stdout.splitlines() if not line.startswith("package ")]
    assert result.returncode in (0, 1) and not result.stderr, result.stdout + result.stderr
    assert others == ["no difference: the live cluster matches the inventory and group_data"] or (
        result.returncode == 1 and others == []), result.stdout


def test_diff_finds_nothing_but_package_updates_on_the_converged_cluster_and_changes_nothing():
    """Package updates aside (a user's machines may have some waiting: not a fault of the
    deploy), the converged cluster has no difference."""
    before = rest.get_json(CLUSTER, "config")
    _assert_no_difference_but_packages(_diff())
    assert rest.get_json(CLUSTER, "config") == before


@pytest.mark.destructive
def test_diff_names_a_dcs_setting_changed_behind_the_deploys_back(patroni_hosts):
    node = CLUSTER.patroni[0]
    wanted = S["patroni_ttl"]
    edit = patroni_hosts[node.name].run(f"{patronictl(config_file(node))} edit-config --force --quiet -s ttl=15")
    assert edit.rc == 0, edit.stderr
    try:
        result = _diff()
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"DCS ttl: live 15, wanted {wanted}" in result.stdout.splitlines(), result.stdout
    finally:
        code, output = helpers.run_pyinfra(helpers.INVENTORY, "deploys/patroni.py", timeout=900)
    assert code == 0, helpers.tail(output)
    _assert_no_difference_but_packages(_diff())
