"""Secret rotation (issue 13): `pgha rotate KEY...` writes new values, the next deploy rolls
them out under writes (ALTER ROLE on the leader before Patroni reloads, HAProxy reloaded),
and the old values stop working.

The test rotates the cluster's real secrets: afterwards the shared CLUSTER carries the new
values, so the tests that run after it use them.
"""

from __future__ import annotations

import json

import helpers
import psycopg2
import pytest
import requests
from conftest import CLUSTER
from pg_helpers import CA, PG_PORT, STATS_PORT, STATS_USER, connect, roles

from pgha import secrets
from pgha.patroni import rest
from pgha.waiting import wait_for
from pghalab.drills import under_writes

pytestmark = [pytest.mark.destructive, pytest.mark.needs_lxc, pytest.mark.slow]

ROTATED = [
    "superuser_password",
    "replication_password",
    "admin_password",
    "restapi_password",
    "haproxy_stats_password",
]
LOGINS = {  # secrets key -> the role that logs in with it
    "superuser_password": CLUSTER.settings["patroni_superuser"],
    "replication_password": CLUSTER.settings["patroni_replication_user"],
    "admin_password": CLUSTER.settings["patroni_admin_user"],
}


@pytest.fixture(scope="module")
def rotation():
    old = dict(CLUSTER.secrets)
    result = helpers.python_module("-m", "pgha.cli", "rotate", *ROTATED)
    assert result.returncode == 0, result.stderr
    assert all(old[key] not in result.stdout + result.stderr for key in ROTATED)  # no value printed
    new = json.loads(secrets.path().read_text(encoding="utf-8"))
    (code, output), figures = under_writes.measure(
        CLUSTER, lambda: helpers.run_pyinfra(helpers.INVENTORY, "deploys/all.py"), label="rotation"
    )
    print(f"\nrotation under writes: {json.dumps(figures)}")
    CLUSTER.secrets.update(new)  # the tests after this one use the new values
    return {"old": old, "new": new, "code": code, "output": output, "figures": figures}


def test_rotate_changes_only_the_keys_asked_for(rotation):
    assert all(rotation["new"][k] != rotation["old"][k] for k in ROTATED)
    assert all(rotation["new"][k] == rotation["old"][k] for k in secrets.KEYS if k not in ROTATED)


def test_the_deploy_rolls_the_rotation_out(rotation):
    assert rotation["code"] == 0, helpers.tail(rotation["output"])


def test_writes_continue_during_the_rotation(rotation):
    figures = rotation["figures"]
    assert figures["writes_refused"] == 0, figures
    assert figures["writes_acknowledged"] > 0 and not figures["two_primaries_at_once"], figures


def test_no_daemon_restarts_for_a_rotation(rotation):
    restarts = [row for row in helpers.changed_operation_rows(rotation["output"]) if "restart" in row]
    assert not restarts, restarts


@pytest.mark.parametrize("key", sorted(LOGINS))
def test_old_role_password_stops_working_and_the_new_one_works(rotation, key):
    leader, _ = roles()
    with pytest.raises(psycopg2.OperationalError) as error:
        connect(leader.address, PG_PORT, rotation["old"][key], user=LOGINS[key]).close()
    assert "password authentication failed" in str(error.value)
    connect(leader.address, PG_PORT, rotation["new"][key], user=LOGINS[key]).close()


def test_old_rest_api_password_stops_working(rotation):
    """Patroni applies a reload at the start of its next HA loop: within loop_wait."""
    leader, _ = roles()
    user = CLUSTER.settings["patroni_restapi_username"]

    def status(password: str) -> int:
        return rest.request(CLUSTER, "POST", leader.address, "reload", auth=(user, password), timeout=5).status_code

    assert wait_for(lambda: status(rotation["old"]["restapi_password"]) == 401,
                    timeout=CLUSTER.settings["patroni_loop_wait"] + 10, interval=1), "old REST API password still accepted"
    assert status(rotation["new"]["restapi_password"]) == 202


def test_old_stats_password_stops_working(rotation):
    leader, _ = roles()
    url = f"https://{leader.address}:{STATS_PORT}/"
    for password, expected in ((rotation["old"]["haproxy_stats_password"], 401), (rotation["new"]["haproxy_stats_password"], 200)):
        assert requests.get(url, auth=(STATS_USER, password), verify=CA, timeout=5).status_code == expected
