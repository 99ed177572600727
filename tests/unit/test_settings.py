"""pgha.settings.check: the valid seed config passes, and every rule refuses a bad value
with a message that names the setting (or host), the bad value and what is expected."""

from __future__ import annotations

import json
import logging
import os

import pytest

from pgha import secrets
from pgha.cluster import Cluster
from pgha.errors import ConfigError
from pgha.settings.checks import check
from pgha.settings.loader import checked_cluster
from pgha.settings.schema import all_settings

from .conftest import etcd_host

SETTINGS = all_settings()

# --- helpers ------------------------------------------------------------------------------


def problems_of(groups, data, with_secrets=False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        (checked_cluster if with_secrets else check)(groups, data)
    problems = info.value.problems
    assert isinstance(problems, list)
    # the exception's text lists every problem
    for problem in problems:
        assert problem in str(info.value)
    return problems


def matching(problems: list[str], *parts: str) -> list[str]:
    """The problems that contain every one of `parts`; fails when there is none."""
    found = [p for p in problems if all(part in p for part in parts)]
    assert found, f"no problem contains all of {parts!r}; problems were:\n" + "\n".join(problems)
    return found


def host_entry(groups, group: str, name: str) -> tuple[int, dict]:
    for index, (host_name, data) in enumerate(groups[group]):
        if host_name == name:
            return index, data
    raise KeyError(name)


def set_address(groups, group: str, name: str, address: str) -> None:
    index, data = host_entry(groups, group, name)
    groups[group][index] = (name, {**data, "address": address, "ssh_hostname": address})


def set_host_data(groups, group: str, name: str, **changes) -> None:
    index, data = host_entry(groups, group, name)
    groups[group][index] = (name, {**data, **changes})


# --- the valid configuration --------------------------------------------------------------


def test_valid_config_passes(groups, group_data, caplog):
    secrets.ensure()
    with caplog.at_level(logging.WARNING, logger="pgha"):
        cluster = check(groups, group_data)
    assert isinstance(cluster, Cluster)
    assert [n.name for n in cluster.etcd] == ["etcd1", "etcd2", "etcd3"]
    assert [n.name for n in cluster.patroni] == ["pg_patroni1", "pg_patroni2", "pg_patroni3"]
    assert [n.address for n in cluster.etcd] == ["10.0.3.64", "10.0.3.78", "10.0.3.32"]
    assert [n.address for n in cluster.patroni] == ["10.0.3.141", "10.0.3.201", "10.0.3.68"]
    assert [n.patroni_name for n in cluster.patroni] == ["pg-1", "pg-2", "pg-3"]
    assert cluster.node("pg-2").all_names == ["pg_patroni2", "pg-2", "p2"]
    assert [n.name for n in cluster.backup] == ["backup1"]
    assert [n.name for n in cluster.monitor] == ["monitor1"]
    assert len(cluster.nodes) == 8
    assert cluster.settings["postgresql_port"] == group_data["postgresql_port"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_valid_config_passes_without_secrets(groups, group_data):
    cluster = check(groups, group_data)
    assert (len(cluster.etcd), len(cluster.patroni)) == (3, 3)


def test_config_error_is_a_pyinfra_error():
    from pyinfra.api.exceptions import PyinfraError

    error = ConfigError(["first problem", "second problem"])
    assert isinstance(error, PyinfraError)
    assert error.problems == ["first problem", "second problem"]
    assert str(error) == "invalid pgha configuration:\n  - first problem\n  - second problem"


def test_every_problem_is_reported_at_once(groups, group_data, secrets_path):
    group_data["haproxy_rw_port"] = 0
    group_data["patroni_retry_timeout"] = 20
    set_address(groups, "etcd", "etcd2", "10.0.3.1")
    problems = problems_of(groups, group_data, with_secrets=True)
    matching(problems, "haproxy_rw_port = 0")
    matching(problems, "patroni_ttl = 30")
    matching(problems, "'etcd2'", "10.0.3.1", "lab_gateway")
    matching(problems, str(secrets_path), "does not exist")
    assert len(problems) == 4, problems


# --- host names and addresses -------------------------------------------------------------


def _same_name_in_etcd_and_patroni_with_other_address(groups):
    groups["etcd"][2] = etcd_host("pg_patroni1", "10.0.3.32")
    return ("'pg_patroni1'", "10.0.3.32", "10.0.3.141", "expected one address per host")


def _same_name_twice_in_one_group(groups):
    groups["etcd"].append(etcd_host("etcd1", "10.0.3.64"))
    return ("'etcd1'", "listed twice", "'etcd'", "expected")


def _alias_equal_to_another_host_name(groups):
    set_host_data(groups, "patroni", "pg_patroni1", aliases=["p1", "etcd2"])
    return ("'etcd2'", "'pg_patroni1'", "expected distinct names")


def _patroni_name_equal_to_another_patroni_name(groups):
    set_host_data(groups, "patroni", "pg_patroni2", patroni_name="pg-1")
    return ("'pg-1'", "'pg_patroni1'", "'pg_patroni2'", "expected distinct names")


def _alias_equal_to_another_alias(groups):
    set_host_data(groups, "patroni", "pg_patroni3", aliases=["p1"])
    return ("'p1'", "'pg_patroni1'", "'pg_patroni3'", "expected distinct names")


@pytest.mark.parametrize(
    "make_duplicate",
    [
        _same_name_in_etcd_and_patroni_with_other_address,
        _same_name_twice_in_one_group,
        _alias_equal_to_another_host_name,
        _patroni_name_equal_to_another_patroni_name,
        _alias_equal_to_another_alias,
    ],
)
def test_duplicate_host_name_is_refused(groups, group_data, make_duplicate):
    parts = make_duplicate(groups)
    matching(problems_of(groups, group_data), *parts)


@pytest.mark.parametrize(
    ("group", "name", "taken_by"),
    [
        ("patroni", "pg_patroni3", "etcd1"),  # a Patroni node on an etcd node's address
        ("patroni", "pg_patroni2", "pg_patroni1"),  # two Patroni nodes
        ("etcd", "etcd3", "etcd2"),  # two etcd nodes
    ],
)
def test_duplicate_address_is_refused(groups, group_data, group, name, taken_by):
    other_group = "etcd" if taken_by.startswith("etcd") else "patroni"
    _, other = host_entry(groups, other_group, taken_by)
    set_address(groups, group, name, other["address"])
    matching(
        problems_of(groups, group_data),
        f"address {other['address']} is used by both",
        repr(taken_by),
        repr(name),
        "expected a distinct address per host",
    )


def test_bad_inventory_address_is_refused(groups, group_data):
    set_address(groups, "etcd", "etcd1", "10.0.3.300")
    matching(problems_of(groups, group_data), "'etcd1'", "'10.0.3.300'", "expected an IPv4 address")


# --- the lab network ----------------------------------------------------------------------


OUTSIDE = "expected a host address inside lab_subnet 10.0.3.0/24"
DHCP = ("lab_dhcp_range 10.0.3.2-10.0.3.30", "expected an address outside the DHCP range")


@pytest.mark.parametrize(
    ("group", "name", "address", "parts"),
    [
        ("etcd", "etcd2", "10.0.4.78", (OUTSIDE,)),
        ("etcd", "etcd2", "192.168.1.10", (OUTSIDE,)),
        ("etcd", "etcd2", "10.0.3.0", (OUTSIDE,)),
        ("etcd", "etcd2", "10.0.3.255", (OUTSIDE,)),
        ("patroni", "pg_patroni2", "10.0.3.1", ("lab_gateway", "expected another address in 10.0.3.0/24")),
        ("etcd", "etcd3", "10.0.3.2", DHCP),
        ("etcd", "etcd3", "10.0.3.17", DHCP),
        ("etcd", "etcd3", "10.0.3.30", DHCP),
    ],
)
def test_lab_address_is_refused(groups, group_data, group, name, address, parts):
    set_address(groups, group, name, address)
    matching(problems_of(groups, group_data), f"lab host {name!r}", f"address {address}", *parts)


def test_non_lab_host_may_be_outside_lab_subnet(groups, group_data):
    name = "pg_patroni3"
    index, _ = host_entry(groups, "patroni", name)
    groups["patroni"][index] = (name, {"ssh_hostname": "192.168.7.20", "patroni_name": "pg-3"})
    cluster = check(groups, group_data)
    node = cluster.node(name)
    assert (node.address, node.extra.get("lxc_container")) == ("192.168.7.20", None)


def test_lab_address_just_after_dhcp_range_is_accepted(groups, group_data):
    set_address(groups, "etcd", "etcd3", "10.0.3.31")
    assert check(groups, group_data).node("etcd3").address == "10.0.3.31"


INSIDE = "expected a host address inside lab_subnet 10.0.3.0/24"
RANGE = "expected [first, last] with first <= last, both inside lab_subnet 10.0.3.0/24"


@pytest.mark.parametrize(
    ("setting", "value", "parts"),
    [
        ("lab_gateway", "10.0.4.1", ("lab_gateway = '10.0.4.1'", INSIDE)),
        ("lab_gateway", "10.0.3.0", ("lab_gateway = '10.0.3.0'", INSIDE)),
        ("lab_gateway", "10.0.3.255", ("lab_gateway = '10.0.3.255'", INSIDE)),
        ("lab_gateway", "10.0.3.10", ("lab_dhcp_range = ['10.0.3.2', '10.0.3.30']", "covers lab_gateway 10.0.3.10",
                                       "expected a range that leaves it out")),
        ("lab_dhcp_range", ["10.0.3.30", "10.0.3.2"], ("lab_dhcp_range = ['10.0.3.30', '10.0.3.2']", RANGE)),
        ("lab_dhcp_range", ["10.0.3.2", "10.0.4.30"], ("lab_dhcp_range = ['10.0.3.2', '10.0.4.30']", RANGE)),
        ("lab_dhcp_range", ["10.0.2.2", "10.0.3.30"], ("lab_dhcp_range = ['10.0.2.2', '10.0.3.30']", RANGE)),
    ],
)
def test_lab_network_setting_is_refused(groups, group_data, setting, value, parts):
    group_data[setting] = value
    matching(problems_of(groups, group_data), *parts)


# --- ports --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "port", "other", "group"),
    [
        ("haproxy_stats_port", 5434, "postgresql_port", "patroni"),
        ("haproxy_ro_port", 5432, "haproxy_rw_port", "patroni"),
        ("patroni_restapi_port", 2379, "haproxy_etcd_port", "patroni"),
        ("etcd_peer_port", 2379, "etcd_client_port", "etcd"),
    ],
)
def test_two_services_on_one_port_are_refused(groups, group_data, setting, port, other, group):
    assert group_data[other] == port  # the collision is with the real setting
    group_data[setting] = port
    problems = problems_of(groups, group_data)
    for name, _ in groups[group]:
        # the message names both settings (in either order), the port and the host
        found = matching(problems, f"= {port} and ", f"on host {name!r}", "expected a distinct port per service")
        assert any(f"{setting} = {port}" in p and f"{other} = {port}" in p for p in found), found
    # only the hosts running both services are named
    other_group = "etcd" if group == "patroni" else "patroni"
    for name, _ in groups[other_group]:
        assert not [p for p in problems if f"on host {name!r}" in p], problems


def test_haproxy_etcd_port_may_equal_etcd_client_port_on_separate_hosts(groups, group_data):
    group_data["haproxy_etcd_port"] = group_data["etcd_client_port"] = 2379
    cluster = check(groups, group_data)
    assert {n.name for n in cluster.etcd}.isdisjoint(n.name for n in cluster.patroni)


def _colocated_groups(groups):
    """etcd1, etcd2 and pg_patroni1 (which is also a Patroni node) form the etcd cluster."""
    groups["etcd"] = [
        etcd_host("etcd1", "10.0.3.64"),
        etcd_host("etcd2", "10.0.3.78"),
        etcd_host("pg_patroni1", "10.0.3.141"),
    ]


def test_haproxy_etcd_port_equal_to_etcd_client_port_on_a_shared_host_is_refused(groups, group_data):
    _colocated_groups(groups)
    group_data["haproxy_etcd_port"] = group_data["etcd_client_port"] = 2379
    problems = problems_of(groups, group_data)
    matching(
        problems,
        "haproxy_etcd_port = 2379",
        "etcd_client_port = 2379",
        "on host 'pg_patroni1'",
        "expected a distinct port per service",
    )
    assert len(problems) == 1, problems


def test_shared_host_with_distinct_ports_is_accepted(groups, group_data):
    _colocated_groups(groups)
    group_data["haproxy_etcd_port"] = 2391
    cluster = check(groups, group_data)
    assert cluster.node("pg_patroni1").groups == {"etcd", "patroni"}
    assert len(cluster.nodes) == 7  # 3 shared hosts, 2 Patroni-only, the repository host, the monitor


@pytest.mark.parametrize("value", [0, -1, 65536, 70000, "5432", 5432.0, True, None])
def test_port_out_of_range_or_not_an_integer_is_refused(groups, group_data, value):
    group_data["postgresql_port"] = value
    matching(
        problems_of(groups, group_data),
        f"postgresql_port = {value!r}",
        "expected an integer port number from 1 to 65535",
    )


@pytest.mark.parametrize("value", [1, 65535])
def test_port_range_limits_are_accepted(groups, group_data, value):
    group_data["haproxy_stats_port"] = value
    assert check(groups, group_data).settings["haproxy_stats_port"] == value


# --- member counts ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_patroni_members_are_refused(groups, group_data, count):
    groups["patroni"] = groups["patroni"][:count]
    matching(
        problems_of(groups, group_data),
        f"group 'patroni' has {count} member(s)",
        "expected at least 2",
    )


def test_two_patroni_members_are_accepted(groups, group_data):
    groups["patroni"] = groups["patroni"][:2]
    assert len(check(groups, group_data).patroni) == 2


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_etcd_members_are_refused(groups, group_data, count):
    groups["etcd"] = groups["etcd"][:count]
    group_data["etcd_allow_even_members"] = True  # no way around it
    matching(
        problems_of(groups, group_data),
        f"group 'etcd' has {count} member(s)",
        "expected 3 or 5",
    )


def _etcd_members(groups, count):
    extra = [etcd_host("etcd4", "10.0.3.40"), etcd_host("etcd5", "10.0.3.41")]
    groups["etcd"] = (groups["etcd"] + extra)[:count]


@pytest.mark.parametrize("count", [2, 4])
def test_even_etcd_count_is_refused_by_default(groups, group_data, count):
    _etcd_members(groups, count)
    assert group_data["etcd_allow_even_members"] is False
    matching(
        problems_of(groups, group_data),
        f"group 'etcd' has {count} members",
        "expected an odd number",
        "etcd_allow_even_members",
    )


@pytest.mark.parametrize("count", [2, 4])
def test_even_etcd_count_is_accepted_with_a_warning_when_allowed(groups, group_data, caplog, count):
    _etcd_members(groups, count)
    group_data["etcd_allow_even_members"] = True
    with caplog.at_level(logging.WARNING, logger="pgha"):
        cluster = check(groups, group_data)
    assert len(cluster.etcd) == count
    warnings = [r for r in caplog.records if r.name == "pgha" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.records
    assert f"group 'etcd' has {count} members" in warnings[0].getMessage()


@pytest.mark.parametrize("count", [3, 5])
def test_odd_etcd_count_gives_no_warning(groups, group_data, caplog, count):
    _etcd_members(groups, count)
    group_data["etcd_allow_even_members"] = True
    with caplog.at_level(logging.WARNING, logger="pgha"):
        assert len(check(groups, group_data).etcd) == count
    assert [r for r in caplog.records if r.name == "pgha"] == []


# --- Patroni timings ----------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "loop_wait", "retry_timeout"), [(30, 10, 11), (20, 10, 6), (15, 5, 6)])
def test_timings_exceeding_ttl_are_refused(groups, group_data, ttl, loop_wait, retry_timeout):
    group_data.update(patroni_ttl=ttl, patroni_loop_wait=loop_wait, patroni_retry_timeout=retry_timeout)
    total = loop_wait + 2 * retry_timeout
    matching(
        problems_of(groups, group_data),
        f"{loop_wait} + 2 * {retry_timeout} = {total}",
        f"patroni_ttl = {ttl}",
        "expected loop_wait + 2 * retry_timeout <= ttl",
    )


@pytest.mark.parametrize(
    ("release", "ttl", "loop_wait", "retry_timeout"),
    [("trixie", 30, 10, 10), ("trixie", 20, 10, 5), ("trixie", 20, 1, 3), ("bookworm", 7, 1, 3)],
)
def test_timings_equal_to_ttl_are_accepted(groups, group_data, release, ttl, loop_wait, retry_timeout):
    group_data.update(debian_release=release, patroni_ttl=ttl, patroni_loop_wait=loop_wait,
                      patroni_retry_timeout=retry_timeout)
    assert check(groups, group_data).settings["patroni_ttl"] == ttl


# --- unknown keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("wal_keep_segment", ("did you mean wal_keep_size", "inside postgresql_parameters")),
        ("patroni_tll", ("did you mean patroni_ttl",)),
        ("haproxy_stat_port", ("did you mean haproxy_stats_port",)),
        # a parameter outside its mapping
        ("max_replication_slots", ("did you mean postgresql_parameters['max_replication_slots']",)),
        # ... and misspelt too
        ("max_relication_slots", ("did you mean max_replication_slots", "inside postgresql_parameters")),
    ],
)
def test_top_level_typo_is_refused(groups, group_data, key, hint):
    group_data[key] = 10
    matching(problems_of(groups, group_data), f"unknown setting {key!r}", *hint)


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("max_relication_slots", "max_replication_slots"),
        ("wal_keep_segments", "wal_keep_size"),
        ("shared_bufers", "shared_buffers"),
    ],
)
def test_postgresql_parameter_typo_is_refused(groups, group_data, key, hint):
    group_data["postgresql_parameters"][key] = 10
    matching(
        problems_of(groups, group_data),
        f"postgresql_parameters[{key!r}]",
        "unknown parameter",
        "did you mean",
        hint,
    )


def test_keys_unlike_any_setting_are_left_alone(groups, group_data):
    group_data["team_contact"] = "dba@example.org"
    group_data["ssh_port"] = 22
    group_data["postgresql_parameters"]["pg_stat_statements.max"] = 5000
    cluster = check(groups, group_data)
    assert cluster.settings["team_contact"] == "dba@example.org"


# --- missing settings ---------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_missing_setting_is_refused(groups, group_data, key):
    del group_data[key]
    matching(
        problems_of(groups, group_data),
        f"setting {key!r} is missing",
        f"expected {SETTINGS[key][1]}",
    )


# --- secrets ------------------------------------------------------------------------------


def _write(path, text, mode=0o600):
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)


def _secrets_mode_0644(path):
    secrets.ensure()
    os.chmod(path, 0o644)
    return (str(path), "mode 0644", "expected 0600")


def _secrets_invalid_json(path):
    _write(path, '{"superuser_password": "aaaaaaaaaaaaaaaaaaaaaaaa",\n')
    return (str(path), "is not valid JSON", "expected a JSON object")


def _secrets_missing_key(path):
    values = json.loads(secrets.ensure().read_text())
    del values["admin_password"]
    _write(path, json.dumps(values))
    return ("key 'admin_password' is missing", str(path), "expected a generated password")


def _secrets_too_short(path):
    values = json.loads(secrets.ensure().read_text())
    values["restapi_password"] = "tooShort"
    _write(path, json.dumps(values))
    return ("restapi_password", "has 8 characters", "expected a string of at least 16 characters")


def _secrets_missing_file(path):
    return (str(path), "does not exist", "expected the generated secrets file")


@pytest.mark.parametrize(
    "make_bad_secrets",
    [_secrets_mode_0644, _secrets_invalid_json, _secrets_missing_key, _secrets_too_short, _secrets_missing_file],
)
def test_secrets_problems_are_refused(groups, group_data, secrets_path, make_bad_secrets):
    parts = make_bad_secrets(secrets_path)
    problems = problems_of(groups, group_data, with_secrets=True)
    matching(problems, "secrets:", *parts)
    assert all(p.startswith("secrets:") for p in problems), problems
    assert "tooShort" not in "\n".join(problems)


def test_check_without_secrets_does_not_look_at_them(groups, group_data, secrets_path, monkeypatch):
    _write(secrets_path, "not json at all", mode=0o644)

    def forbidden(*args, **kwargs):
        raise AssertionError("secrets were looked at")

    monkeypatch.setattr(secrets, "problems", forbidden)
    monkeypatch.setattr(secrets, "path", forbidden)
    monkeypatch.setattr(secrets, "ensure", forbidden)
    cluster = check(groups, group_data)
    assert len(cluster.nodes) == 8
    assert secrets_path.read_text() == "not json at all"


def test_check_reports_but_never_creates_secrets(groups, group_data, secrets_path):
    matching(problems_of(groups, group_data, with_secrets=True), str(secrets_path), "does not exist")
    assert not secrets_path.exists()


def test_config_error_is_raised_before_secrets_are_needed(groups, group_data, secrets_path):
    """A bad setting is reported together with the secrets problem, nothing is created."""
    group_data["postgresql_port"] = "5432"
    problems = problems_of(groups, group_data, with_secrets=True)
    matching(problems, "postgresql_port = '5432'")
    matching(problems, "does not exist")
    assert not secrets_path.exists()
    # and without secrets, only the setting is reported
    assert problems_of(groups, group_data) == [
        "group_data: postgresql_port = '5432': expected an integer port number from 1 to 65535"
    ]


def test_load_group_data_returns_only_settings(group_data):
    assert set(group_data) == set(SETTINGS)
    assert "__file__" not in group_data
