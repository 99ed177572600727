"""pgha.patroni.facts and pgha.patroni.rest (the cluster check and the member table): parsing the recorded answers
of Patroni 3.0.2 (the lab) and answers written in Patroni 4.x's shape. No Patroni runs here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pgha.patroni.facts import (
    PatroniCluster,
    PatroniDynamicConfig,
    PatroniRole,
    PatroniStatus,
    TextFileHeader,
)
from pgha.patroni.rest import (
    SUMMARY_HEADERS,
    cluster_problems,
    lag_text,
    member_rows,
    normalize_role,
    parse_cluster,
    row_problems,
)
from pgha.patroni.rest import summary as _summary

from .conftest import recorded

EXPECTED = ["pg-1", "pg-2", "pg-3"]


def role_outputs() -> tuple[list[str], list[str]]:
    """The recorded PatroniRole command output: the leader's 5 lines, then the replica's."""
    lines = recorded("patroni-3.0.2-role-outputs.txt").splitlines()
    assert len(lines) == 10
    return lines[:5], lines[5:]


def recorded_json(name: str) -> dict:
    return json.loads(recorded(name))


def replication_of(status: dict) -> dict:
    """As cluster_healthy builds it from the leader's /patroni answer."""
    return {r.get("application_name"): r.get("state") for r in status.get("replication", [])}


# Patroni 4.x: the leader says "primary" in /patroni, replicas report "streaming".
LEADER_4_STATUS = {
    "state": "running",
    "postmaster_start_time": "2026-11-26 09:12:01.120391+00:00",
    "role": "primary",
    "server_version": 160006,
    "xlog": {"location": 83886080},
    "timeline": 3,
    "replication": [
        {"usename": "repl", "application_name": "pg-2", "client_addr": "10.0.3.201", "state": "streaming",
         "sync_state": "async", "sync_priority": 0},
        {"usename": "repl", "application_name": "pg-3", "client_addr": "10.0.3.68", "state": "streaming",
         "sync_state": "sync", "sync_priority": 1},
    ],
    "dcs_last_seen": 1795700000,
    "database_system_identifier": "7712176652203550949",
    "patroni": {"version": "4.0.4", "scope": "my-ha-cluster", "name": "pg-1"},
}
REPLICA_4_STATUS = {
    "state": "streaming",
    "postmaster_start_time": "2026-11-26 09:12:05.500000+00:00",
    "role": "replica",
    "server_version": 160006,
    "xlog": {"received_location": 83886080, "replayed_location": 83886080, "paused": False},
    "timeline": 3,
    "replication_state": "streaming",
    "dcs_last_seen": 1795700001,
    "database_system_identifier": "7712176652203550949",
    "patroni": {"version": "4.0.4", "scope": "my-ha-cluster", "name": "pg-2"},
}
LEADER_4_LINES = ["master 200", "primary 200", "replica 503", "health 200", "patroni " + json.dumps(LEADER_4_STATUS)]
REPLICA_4_LINES = ["master 503", "primary 503", "replica 200", "health 200", "patroni " + json.dumps(REPLICA_4_STATUS)]
DOWN_LINES = ["master 000", "primary 000", "replica 000", "health 000", "patroni "]

CLUSTER_4 = {
    "members": [
        {"name": "pg-3", "role": "sync_standby", "state": "streaming", "api_url": "http://10.0.3.68:8008/patroni",
         "host": "10.0.3.68", "port": 5434, "timeline": 3, "receive_lag": 0, "replay_lag": 0, "lag": 0},
        {"name": "pg-1", "role": "leader", "state": "running", "api_url": "http://10.0.3.141:8008/patroni",
         "host": "10.0.3.141", "port": 5434, "timeline": 3},
        {"name": "pg-2", "role": "replica", "state": "running", "api_url": "http://10.0.3.201:8008/patroni",
         "host": "10.0.3.201", "port": 5434, "timeline": 3, "lag": "unknown", "pending_restart": True},
    ],
    "scope": "my-ha-cluster",
}


# --- PatroniRole -----------------------------------------------------------------------------


def test_role_of_the_recorded_leader():
    leader, _ = role_outputs()
    role = PatroniRole().process(leader)
    assert role["role"] == "leader"
    assert role["codes"] == {"master": 200, "primary": 200, "replica": 503, "health": 200}
    assert role["state"] == "running"
    assert role["timeline"] == 2
    assert role["pending_restart"] is False
    assert len(role["replication"]) == 2
    assert [r["application_name"] for r in role["replication"]] == ["pg-2", "pg-3"]
    assert {r["state"] for r in role["replication"]} == {"streaming"}


def test_role_of_the_recorded_replica():
    _, replica = role_outputs()
    role = PatroniRole().process(replica)
    assert role["role"] == "replica"
    assert role["codes"] == {"master": 503, "primary": 503, "replica": 200, "health": 200}
    assert role["state"] == "running"
    assert role["timeline"] is None  # Patroni 3.0.2 reports no timeline on a replica
    assert role["replication"] == []


def test_role_of_a_patroni_4_leader():
    role = PatroniRole().process(LEADER_4_LINES)
    assert role["role"] == "leader"
    assert role["state"] == "running"
    assert role["timeline"] == 3


def test_role_of_a_patroni_4_leader_answering_only_primary():
    # the codes alone decide (no /patroni answer to fall back on)
    lines = ["master 404", "primary 200", "replica 503", "health 200", "patroni "]
    assert PatroniRole().process(lines)["role"] == "leader"


def test_role_of_a_patroni_4_replica():
    role = PatroniRole().process(REPLICA_4_LINES)
    assert role["role"] == "replica"
    assert role["state"] == "streaming"


def test_role_when_the_api_is_down():
    role = PatroniRole().process(DOWN_LINES)
    assert role["role"] is None
    assert role["codes"] == {"master": 0, "primary": 0, "replica": 0, "health": 0}
    assert role["state"] is None
    assert role["timeline"] is None
    assert role["replication"] == []
    assert role["pending_restart"] is False


def test_role_of_empty_output():
    role = PatroniRole().process([])
    assert role["role"] is None
    assert role["codes"] == {}


def test_role_when_no_health_check_passes_comes_from_the_status():
    # a replica still starting: /replica is not 200 yet, /patroni says what it is
    status = {"state": "starting", "role": "replica", "timeline": None}
    lines = ["master 503", "primary 503", "replica 503", "health 503", "patroni " + json.dumps(status)]
    role = PatroniRole().process(lines)
    assert role["role"] == "replica"
    assert role["state"] == "starting"


def test_role_with_a_garbled_status():
    lines = ["master 503", "primary 503", "replica 503", "health 503", "patroni <html>503</html>"]
    assert PatroniRole().process(lines)["role"] is None


def test_role_pending_restart():
    status = dict(LEADER_4_STATUS, pending_restart=True)
    lines = LEADER_4_LINES[:4] + ["patroni " + json.dumps(status)]
    assert PatroniRole().process(lines)["pending_restart"] is True


FAKE_CURL = """#!{python}
import json, os, sys
args = sys.argv[1:]
folder = os.environ["FAKE_CURL_DIR"]
urls = [a for a in args if a.startswith("https://")]
assert args[args.index("--cacert") + 1] == "/etc/pgha/tls/ca.crt", args
method = args[args.index("-X") + 1] if "-X" in args else "GET"
with open(os.path.join(folder, "calls"), "a") as log:
    for url in urls:
        log.write(method + " " + url + "\\n")
codes = json.load(open(os.path.join(folder, "codes.json")))
if "-w" in args:  # one line per transfer, as curl's --write-out does
    assert args[args.index("-w") + 1] == "%{{url_effective}} %{{http_code}}\\\\n", args
    for url in urls:
        sys.stdout.write(url + " " + str(codes.get(url.rsplit("/", 1)[1], "000")) + "\\n")
    sys.exit(0 if all(u.rsplit("/", 1)[1] in codes for u in urls) else 7)
path = urls[0].rsplit("/", 1)[1]
status = os.path.join(folder, "status.json")
if path == "patroni" and os.path.exists(status):
    sys.stdout.write(json.dumps(json.load(open(status)), indent=2) + "\\n")  # several lines
    sys.exit(0)
sys.exit(7)
"""


def run_role_command(tmp_path, codes: dict, status: dict | None) -> tuple[list[str], list[str]]:
    """PatroniRole's command, run by sh with a stand-in curl (no network): its output lines
    and the curl calls made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text(FAKE_CURL.format(python=sys.executable), encoding="utf-8")
    curl.chmod(0o755)
    (tmp_path / "codes.json").write_text(json.dumps(codes), encoding="utf-8")
    if status is not None:
        (tmp_path / "status.json").write_text(json.dumps(status), encoding="utf-8")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_CURL_DIR=str(tmp_path))
    result = subprocess.run(
        ["sh", "-c", PatroniRole().command(port=8008)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    return result.stdout.splitlines(), calls


def test_role_command_output_is_what_process_reads(tmp_path):
    status = recorded_json("patroni-3.0.2-leader-patroni.json")
    lines, calls = run_role_command(tmp_path, {"master": 200, "primary": 200, "replica": 503, "health": 200}, status)
    assert calls == [
        "OPTIONS https://127.0.0.1:8008/master",
        "OPTIONS https://127.0.0.1:8008/primary",
        "OPTIONS https://127.0.0.1:8008/replica",
        "OPTIONS https://127.0.0.1:8008/health",
        "GET https://127.0.0.1:8008/patroni",
    ]
    assert lines[:4] == ["master 200", "primary 200", "replica 503", "health 200"]
    assert len(lines) == 5  # the pretty-printed /patroni answer is joined on one line
    role = PatroniRole().process(lines)
    assert role["role"] == "leader"
    assert role["timeline"] == 2
    assert len(role["replication"]) == 2


def test_role_command_when_the_api_is_down(tmp_path):
    lines, _ = run_role_command(tmp_path, {}, None)
    assert [line.rstrip() for line in lines] == DOWN_LINES[:4] + ["patroni"]
    assert PatroniRole().process(lines)["role"] is None


# --- PatroniCluster -------------------------------------------------------------------------


def test_recorded_cluster():
    members = PatroniCluster().process(recorded("patroni-3.0.2-cluster.json").splitlines())
    assert members == [
        {"name": "pg-1", "host": "10.0.3.141", "role": "leader", "raw_role": "leader", "state": "running", "timeline": 2, "lag": 0,
         "pending_restart": False},
        {"name": "pg-2", "host": "10.0.3.201", "role": "replica", "raw_role": "replica", "state": "running", "timeline": 2, "lag": 0,
         "pending_restart": False},
        {"name": "pg-3", "host": "10.0.3.68", "role": "replica", "raw_role": "replica", "state": "running", "timeline": 2, "lag": 0,
         "pending_restart": False},
    ]


def test_patroni_4_cluster_is_normalized_and_sorted():
    members = PatroniCluster().process(json.dumps(CLUSTER_4, indent=2).splitlines())
    assert [m["name"] for m in members] == EXPECTED
    assert [m["role"] for m in members] == ["leader", "replica", "replica"]
    assert [m["state"] for m in members] == ["running", "running", "streaming"]
    assert [m["lag"] for m in members] == [0, "unknown", 0]
    assert [m["pending_restart"] for m in members] == [False, True, False]
    assert [m["timeline"] for m in members] == [3, 3, 3]


def test_cluster_with_master_role_is_normalized():
    data = {"members": [{"name": "pg-1", "role": "master", "state": "running", "host": "10.0.3.141"}]}
    assert parse_cluster(data)[0]["role"] == "leader"


@pytest.mark.parametrize("output", [[], [""], ["<html><body>502 Bad Gateway</body></html>"], ["{\"members\": ["]])
def test_cluster_of_a_non_json_answer(output):
    assert PatroniCluster().process(output) is None


@pytest.mark.parametrize(
    "role, expected",
    [
        ("master", "leader"),
        ("primary", "leader"),
        ("leader", "leader"),
        ("replica", "replica"),
        ("sync_standby", "replica"),
        ("standby_leader", "standby_leader"),
        (None, None),
    ],
)
def test_normalize_role(role, expected):
    assert normalize_role(role) == expected


# --- PatroniDynamicConfig, PatroniStatus, TextFileHeader -----------------------------------------


def test_dynamic_config_of_the_recorded_answer():
    config = PatroniDynamicConfig().process(recorded("patroni-3.0.2-config.json").splitlines())
    assert config["ttl"] == 30
    assert config["postgresql"]["use_slots"] is True
    assert config["postgresql"]["parameters"]["max_wal_senders"] == "10"
    assert config == recorded_json("patroni-3.0.2-config.json")


def test_dynamic_config_over_several_lines():
    text = json.dumps(recorded_json("patroni-3.0.2-config.json"), indent=2)
    assert PatroniDynamicConfig().process(text.splitlines()) == recorded_json("patroni-3.0.2-config.json")


@pytest.mark.parametrize("output", [[], ["curl: (7) Failed to connect"]])
def test_dynamic_config_when_the_api_does_not_answer(output):
    assert PatroniDynamicConfig().process(output) is None


def test_status_of_the_recorded_leader():
    status = PatroniStatus().process(recorded("patroni-3.0.2-leader-patroni.json").splitlines())
    assert status["role"] == "master"
    assert replication_of(status) == {"pg-2": "streaming", "pg-3": "streaming"}


def test_status_when_the_api_does_not_answer():
    assert PatroniStatus().process([]) == {}


def test_text_file_header():
    assert TextFileHeader().process(["# dcs-digest: abc123"]) == {"dcs-digest": "abc123"}


def test_text_file_header_several_keys_and_none():
    lines = ["# dcs-digest: abc123", "# base-recipe: 0f1e2d"]
    assert TextFileHeader().process(lines) == {"dcs-digest": "abc123", "base-recipe": "0f1e2d"}
    assert TextFileHeader().process([]) == {}


def test_text_file_header_command_on_a_file(tmp_path):
    path = tmp_path / "pg-1.yml"
    path.write_text(
        "# Managed by pgha (deploys/patroni.py) -- changes here are overwritten.\n"
        "# dcs-digest: 0123456789ab\nscope: 'my-ha-cluster'\nname: 'pg-1'\n\n"
        "# late-key: past the 5th line, not read\n",
        encoding="utf-8",
    )
    result = subprocess.run(["sh", "-c", TextFileHeader().command(str(path))], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert TextFileHeader().process(result.stdout.splitlines()) == {"dcs-digest": "0123456789ab"}
    assert "Managed" not in result.stdout
    missing = subprocess.run(
        ["sh", "-c", TextFileHeader().command(str(tmp_path / "absent.yml"))], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 0 and missing.stdout == ""


# --- cluster_problems and the summary ---------------------------------------------------------


def recorded_members() -> list[dict]:
    return PatroniCluster().process(recorded("patroni-3.0.2-cluster.json").splitlines())


def recorded_replication() -> dict:
    return replication_of(recorded_json("patroni-3.0.2-leader-patroni.json"))


def test_healthy_recorded_cluster():
    assert cluster_problems(EXPECTED, recorded_members(), recorded_replication()) == []


def test_healthy_patroni_4_cluster():
    members = parse_cluster(CLUSTER_4)
    assert cluster_problems(EXPECTED, members, replication_of(LEADER_4_STATUS)) == []


def test_two_leaders():
    members = recorded_members()
    members[1]["role"] = "leader"
    problems = cluster_problems(EXPECTED, members, recorded_replication())
    leader_problems = [p for p in problems if "exactly one leader" in p]
    assert len(leader_problems) == 1
    assert "found 2" in leader_problems[0]
    assert "pg-1" in leader_problems[0] and "pg-2" in leader_problems[0]


def test_no_leader():
    members = recorded_members()
    members[0]["role"] = "replica"
    problems = cluster_problems(EXPECTED, members, {})
    assert any("exactly one leader" in p and "found 0" in p for p in problems)


def test_replica_not_in_the_leaders_replication_list():
    replication = {"pg-2": "streaming"}
    problems = cluster_problems(EXPECTED, recorded_members(), replication)
    assert len(problems) == 1
    assert "pg-3" in problems[0]
    assert "not streaming" in problems[0]
    assert "not connected" in problems[0]


def test_replica_catching_up_is_not_streaming():
    replication = {"pg-2": "streaming", "pg-3": "catchup"}
    problems = cluster_problems(EXPECTED, recorded_members(), replication)
    assert len(problems) == 1
    assert "replica pg-3 is not streaming" in problems[0]
    assert "catchup" in problems[0]


def test_missing_member():
    members = [m for m in recorded_members() if m["name"] != "pg-3"]
    problems = cluster_problems(EXPECTED, members, recorded_replication())
    assert len(problems) == 1
    assert "missing" in problems[0]
    assert "pg-3" in problems[0]


def test_api_not_answering():
    problems = cluster_problems(EXPECTED, None, {})
    assert len(problems) == 1
    assert "REST API" in problems[0]
    assert "GET /cluster" in problems[0]


def _expected(members) -> list[dict]:
    return [{"name": m["name"], "host": m["host"]} for m in members]


def _own(members, silent=()) -> dict:
    """Each member's own /patroni as the DCS lists it (``silent``: no answer)."""
    return {m["name"]: None if m["name"] in silent else {"role": m["raw_role"], "state": m["state"],
                                                       "timeline": m["timeline"]} for m in members}


def _table(rows) -> dict[str, dict[str, str]]:
    """The printed table read back: {member: {header: cell}} (cells cut at the columns)."""
    lines = _summary(rows).splitlines()
    header = lines[0]
    starts = [header.index(h) for h in SUMMARY_HEADERS]
    table = {}
    for line in lines[2:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        table[cells[0]] = dict(zip(SUMMARY_HEADERS, cells))
    return table


def test_summary_table():
    members = recorded_members()
    replication = {"pg-2": "streaming"}
    lines = _summary(member_rows(_expected(members), members, replication, _own(members))).splitlines()
    assert lines[0].split() == list(SUMMARY_HEADERS)
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    rows = _table(member_rows(_expected(members), members, replication, _own(members)))
    assert list(rows) == EXPECTED
    assert rows["pg-1"]["replication"] == "-" and rows["pg-1"]["lag"] == "-"
    assert rows["pg-2"]["replication"] == "streaming"
    assert rows["pg-3"]["replication"] == "not connected"
    assert [rows["pg-1"][h] for h in ("host", "role", "state", "TL")] == ["10.0.3.141", "leader", "running", "2"]
    assert rows["pg-2"]["lag"] == "0 B"


def test_columns_fit_the_longest_state():
    """On a first deploy Patroni 4 says `in archive recovery`: the columns follow it."""
    members = recorded_members()
    own = _own(members)
    own["pg-2"]["state"] = "in archive recovery"
    rows = _table(member_rows(_expected(members), members, {"pg-2": "streaming", "pg-3": "streaming"}, own))
    assert rows["pg-2"]["state"] == "in archive recovery"
    assert rows["pg-2"]["TL"] == "2" and rows["pg-3"]["replication"] == "streaming"


def test_lag_has_its_unit_and_is_weighed_against_maximum_lag_on_failover():
    members = recorded_members()
    members[2]["lag"] = 16777216
    rows = _table(member_rows(_expected(members), members, {}, _own(members), maximum_lag=1048576))
    assert rows["pg-3"]["lag"] == "16.0 MiB (> maximum_lag_on_failover 1.0 MiB: no failover to it)"
    assert rows["pg-2"]["lag"] == "0 B"
    assert lag_text(1048576, 1048576) == "1.0 MiB"


def test_lag_is_read_live_from_the_members_when_they_say():
    """Right after a WAL switch the DCS still holds each member's position of its last loop:
    the members' own /patroni, asked at the same moment, give the lag as it is."""
    members = recorded_members()
    members[2]["lag"] = 16777216  # the DCS's stale figure
    own = _own(members)
    own["pg-1"]["xlog"] = {"location": 117440512}
    own["pg-2"]["xlog"] = {"received_location": 117440000, "replayed_location": 117439000}
    own["pg-3"]["xlog"] = {"received_location": 117440512, "replayed_location": 117440512}
    rows = _table(member_rows(_expected(members), members, {}, own, maximum_lag=1048576))
    assert rows["pg-3"]["lag"] == "0 B"
    assert rows["pg-2"]["lag"] == "512 B"


def test_a_silent_leader_is_unreachable_not_running():
    """The machine is gone: the DCS still names it leader until the ttl runs out."""
    members = recorded_members()
    rows = member_rows(_expected(members), members, {}, _own(members, silent={"pg-1"}))
    leader = next(r for r in rows if r["name"] == "pg-1")
    assert (leader["role"], leader["state"]) == (None, "unreachable")
    assert "the DCS says: leader, running" in leader["note"] and "ttl" in leader["note"]
    assert row_problems(rows) == [f"pg-1: {leader['note']}"]


def test_every_inventory_member_is_listed_even_absent_from_patroni():
    members = [m for m in recorded_members() if m["name"] != "pg-3"]
    expected = _expected(recorded_members())
    rows = {r["name"]: r for r in member_rows(expected, members, {}, {**_own(members), "pg-3": None})}
    assert list(rows) == EXPECTED
    assert rows["pg-3"]["state"] == "unreachable" and "the DCS says: nothing" in rows["pg-3"]["note"]
    answering = {**_own(members), "pg-3": {"role": "replica", "state": "stopped", "timeline": None}}
    rows = {r["name"]: r for r in member_rows(expected, members, {}, answering)}
    assert rows["pg-3"]["note"] == "absent from Patroni's member list (not in the DCS)"
    assert any(p.startswith("pg-3: absent") for p in row_problems(list(rows.values())))


def test_a_member_of_the_dcs_not_in_the_inventory_is_listed():
    members = recorded_members()
    rows = member_rows(_expected(members)[:2], members, {}, _own(members))
    assert rows[-1]["name"] == "pg-3" and rows[-1]["note"] == "in the DCS but not in the inventory"


def test_summary_of_a_patroni_4_cluster():
    members = parse_cluster(CLUSTER_4)
    rows = _table(member_rows(_expected(members), members, replication_of(LEADER_4_STATUS), _own(members)))
    assert rows["pg-2"]["TL"] == "3" and rows["pg-2"]["lag"] == "unknown"
    assert rows["pg-3"]["replication"] == "streaming"
    no_timeline = [dict(m, timeline=None, host=None) for m in members]
    row = _table(member_rows(_expected(no_timeline), no_timeline, {}, _own(no_timeline)))["pg-1"]
    assert [row[h] for h in ("host", "role", "state", "TL")] == ["-", "leader", "running", "-"]


@pytest.mark.parametrize("version", ["3.0.2", "4.0.7"])
def test_roles_of_the_recorded_members_of_each_version(version):
    """Recorded on the bookworm (3.0.2) and trixie (4.0.7) labs: 4.x names the leader's role
    `primary` in /patroni, 3.0.2 `master`; both are the leader."""
    lines = recorded(f"patroni-{version}-role-outputs.txt").splitlines()
    leader, replica = PatroniRole().process(lines[:5]), PatroniRole().process(lines[5:])
    assert (leader["role"], replica["role"]) == ("leader", "replica")
    assert leader["codes"]["primary"] == 200 and replica["codes"]["primary"] == 503
    assert leader["state"] == replica["state"] == "running"
    assert [r["state"] for r in leader["replication"]] == ["streaming", "streaming"]


# --- PatroniPaused: `patronictl show-config`, as the DCS holds it ---------------------------------

from pgha.patroni.facts import PatroniPaused  # noqa: E402


@pytest.mark.parametrize(("output", "expected"), [(["paused"], True), (["managed"], False), ([], None)])
def test_paused_as_the_dcs_says(output, expected):
    assert PatroniPaused().process(output) is expected


@pytest.mark.parametrize(("config", "expected"), [("loop_wait: 10\npause: true\nttl: 30\n", "paused"),
                                                   ("loop_wait: 10\nttl: 30\n", "managed"), (None, "")])
def test_paused_command_on_show_config_output(tmp_path, config, expected):
    # a stand-in patronictl printing what `show-config` prints (or failing: DCS unreachable)
    fake = tmp_path / "patronictl"
    fake.write_text("#!/bin/sh\n" + (f"printf '%s' '{config}'\n" if config is not None else "exit 1\n"))
    fake.chmod(0o755)
    command = PatroniPaused().command(config_file="/etc/patroni/pg-1.yml")
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.stdout.strip() == expected


# --- WatchdogHost: a container or a machine, and who owns /dev/watchdog ------------------------

from pgha.patroni.facts import WatchdogHost  # noqa: E402


@pytest.mark.parametrize(("output", "expected"), [
    (["lxc", "-"], {"container": "lxc", "device": None}),  # a lab container (recorded)
    (["none", "root"], {"container": None, "device": "root"}),  # a machine, softdog just loaded
    (["none", "postgres"], {"container": None, "device": "postgres"}),
    (["none", "-"], {"container": None, "device": None}),
])
def test_watchdog_host(output, expected):
    assert WatchdogHost().process(output) == expected


def test_watchdog_host_command_runs_here():
    """The command itself, on this control machine: one kind and one owner line."""
    done = subprocess.run(["sh", "-c", WatchdogHost().command()], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2, done
