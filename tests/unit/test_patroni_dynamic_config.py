"""The wanted dynamic configuration (pgha.patroni.values.dynamic_config) against Patroni's
/config: what is a change, the synchronous settings, failsafe mode."""

from __future__ import annotations

import json

import pytest
import yaml

from pgha.patroni import values as patroni
from pgha.patroni.facts import PatroniDynamicConfig
from pgha.patroni.values import dynamic_config, dynamic_config_changes
from pgha.settings.loader import load_group_data

from .conftest import FAKE_SECRETS, GROUP_DATA_DIR, cluster_with, load_member, recorded

# /config (patroni-3.0.2-config.json) was recorded on a lab deployed with group_data's own
# values: these tests compare what group_data wants with what Patroni answered. (The two wal
# timeouts and the four client timeouts came later, added as Patroni stores a parameter: as
# the deploy gave it, trixie's /config answered the same.)
RECORDED_SETTINGS = {
    key: value
    for key, value in load_group_data(GROUP_DATA_DIR)["all"].items()
    if key.startswith(("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout",
                       "patroni_maximum_lag", "patroni_synchronous", "postgresql_parameters"))
} | {"patroni_failsafe_mode": False}  # recorded on bookworm (Patroni 3.0.2), failsafe off


def recorded_config() -> dict:
    return json.loads(recorded("patroni-3.0.2-config.json"))


def recorded_data(group_data: dict, **changes) -> dict:
    """group_data with the values the recorded /config was made from (and ``changes``)."""
    return {**group_data, **RECORDED_SETTINGS, **changes}


# --- dynamic_config_changes -------------------------------------------------------------------


def test_recorded_config_matches_the_settings_it_was_made_from(group_data):
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), recorded_config()) == {}


def test_recorded_config_through_the_fact(group_data):
    current = PatroniDynamicConfig().process(recorded("patroni-3.0.2-config.json").splitlines())
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_changed_ttl(group_data):
    wanted = dynamic_config(recorded_data(group_data, patroni_ttl=31))
    assert dynamic_config_changes(wanted, recorded_config()) == {"ttl": 31}


def test_new_parameter(group_data):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "max_connections": 200}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    assert dynamic_config_changes(wanted, recorded_config()) == {"postgresql.parameters.max_connections": 200}


def test_changed_parameter(group_data):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "max_connections": 200}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    current = recorded_config()
    current["postgresql"]["parameters"]["max_connections"] = "100"
    assert dynamic_config_changes(wanted, current) == {"postgresql.parameters.max_connections": 200}
    current["postgresql"]["parameters"]["max_connections"] = "200"
    assert dynamic_config_changes(wanted, current) == {}


def test_numbers_given_back_as_strings_are_the_same(group_data):
    current = recorded_config()
    current.update(ttl="30", loop_wait="10", retry_timeout="10", maximum_lag_on_failover="1048576")
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("value", [True, "true", "on", "True", "yes"])
def test_use_slots_true_in_any_spelling(group_data, value):
    current = recorded_config()
    current["postgresql"]["use_slots"] = value
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("value", [False, "false", "off"])
def test_use_slots_false_is_a_change(group_data, value):
    current = recorded_config()
    current["postgresql"]["use_slots"] = value
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {"postgresql.use_slots": True}


def test_missing_keys_are_changes(group_data):
    current = recorded_config()
    del current["retry_timeout"]
    del current["postgresql"]["parameters"]["wal_level"]
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {
        "retry_timeout": 10,
        "postgresql.parameters.wal_level": "replica",
    }


def test_no_current_config_means_everything_changes(group_data):
    changes = dynamic_config_changes(dynamic_config(recorded_data(group_data)), None)
    assert changes["ttl"] == 30
    assert changes["postgresql.use_pg_rewind"] is True
    assert changes["postgresql.parameters.max_wal_senders"] == 10
    assert len(changes) == 4 + 2 + len(RECORDED_SETTINGS["postgresql_parameters"])


def test_keys_only_in_the_dcs_are_left_alone(group_data):
    current = recorded_config()
    current["master_start_timeout"] = 300
    current["postgresql"]["parameters"]["work_mem"] = "8MB"
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_parameter_stored_as_the_opposite_boolean_is_a_change(group_data):
    current = recorded_config()
    current["postgresql"]["parameters"]["hot_standby"] = False  # as `-p hot_standby=off` stores it
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {"postgresql.parameters.hot_standby": "on"}


def test_parameter_stored_as_boolean_by_patronictl_is_the_same(group_data):
    # regression: _same compared str("on") with str(True) and proposed the change on every run.
    # dynamic_config_applied runs `patronictl edit-config -p hot_standby=on`; patronictl
    # stores yaml.safe_load("on"), i.e. True. The next run must then see no change.
    current = recorded_config()
    current["postgresql"]["parameters"]["hot_standby"] = yaml.safe_load("on")
    assert current["postgresql"]["parameters"]["hot_standby"] is True
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


@pytest.mark.parametrize("word, stored", [("on", True), ("off", False), ("yes", True)])
def test_any_on_off_parameter_stored_as_boolean_is_the_same(group_data, word, stored):
    parameters = {**RECORDED_SETTINGS["postgresql_parameters"], "wal_log_hints": word}
    wanted = dynamic_config(recorded_data(group_data, postgresql_parameters=parameters))
    current = recorded_config()
    current["postgresql"]["parameters"]["wal_log_hints"] = yaml.safe_load(word)
    assert current["postgresql"]["parameters"]["wal_log_hints"] is stored
    assert dynamic_config_changes(wanted, current) == {}


# --- synchronous replication settings (in the DCS) -------------------------------------------


def test_bootstrap_synchronous_settings_from_group_data(cluster, group_data):
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is group_data["patroni_synchronous_mode"]
    assert dcs["synchronous_mode_strict"] is group_data["patroni_synchronous_mode_strict"]
    assert dcs["synchronous_node_count"] == group_data["patroni_synchronous_node_count"]


def test_bootstrap_synchronous_settings_follow_group_data(groups, group_data):
    cluster = cluster_with(
        groups, group_data, patroni_synchronous_mode=True, patroni_synchronous_mode_strict=True,
        patroni_synchronous_node_count=2,
    )
    dcs = load_member(cluster)["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_mode_strict"], dcs["synchronous_node_count"]) == (True, True, 2)


def test_synchronous_settings_absent_from_the_dcs_are_patroni_defaults(group_data):
    # the recorded /config (Patroni 3.0.2) has no synchronous_* key: Patroni's defaults apply
    current = recorded_config()
    assert not any(key.startswith("synchronous") for key in current)
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}


def test_turning_synchronous_mode_on_is_a_change(group_data):
    wanted = dynamic_config(recorded_data(group_data, patroni_synchronous_mode=True))
    assert dynamic_config_changes(wanted, recorded_config()) == {"synchronous_mode": True}
    current = {**recorded_config(), "synchronous_mode": True}
    assert dynamic_config_changes(wanted, current) == {}


@pytest.mark.parametrize(("setting", "role"), [("patroni_superuser", "postgres"), ("patroni_replication_user", "repl")])
def test_bootstrap_roles_get_their_password_only(cluster, setting, role):
    sql = patroni.role_password_sql(cluster, setting)
    passfile = patroni.ROLE_PASSWORDS[setting][1]
    assert f"pg_read_file('{passfile}'), E'\\n')" in sql
    assert f"WHERE starts_with(line, '127.0.0.1:5434:*:{role}:')" in sql
    assert f"EXECUTE format('ALTER ROLE %I WITH PASSWORD %L', '{role}', secret)" in sql
    assert "CREATE ROLE" not in sql
    assert all(secret not in sql for secret in FAKE_SECRETS.values())


# --- DCS failsafe mode -------------------------------------------------------------------------


@pytest.mark.parametrize(("release", "chosen", "expected"), [
    ("trixie", None, True), ("bookworm", None, False), ("bookworm", True, True), ("trixie", False, False),
])
def test_failsafe_mode_follows_the_release_unless_chosen(group_data, release, chosen, expected):
    settings = {**group_data, "debian_release": release, "patroni_failsafe_mode": chosen}
    assert dynamic_config(settings)["failsafe_mode"] is expected


def test_failsafe_mode_absent_from_the_dcs_is_off(group_data):
    current = recorded_config()
    assert "failsafe_mode" not in current
    assert dynamic_config_changes(dynamic_config(recorded_data(group_data)), current) == {}
    turned_on = dynamic_config(recorded_data(group_data, patroni_failsafe_mode=True))
    assert dynamic_config_changes(turned_on, current) == {"failsafe_mode": True}
