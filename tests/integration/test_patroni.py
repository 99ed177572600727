"""Patroni on the `patroni` group (issue 4): one leader and two streaming replicas, the REST
API and pg_stat_replication agree, replication of a row, the DCS configuration follows
group_data (and a ttl change reaches it), authentication (wrong password, pg_hba, REST API),
the deploy's summary, idempotence, patronictl, the systemd unit, no `main` cluster.

The tests connect to PostgreSQL from this machine (the lab bridge's address, allowed by
`client_networks`). The only change they make to the cluster is the ttl (31, then back to
group_data's value in a finally block) and rows in the `pgha_test` schema.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid

import helpers
import psycopg2
import pytest
import requests
from conftest import CLUSTER, PATRONI_NAMES
from pg_helpers import (
    ADMIN,
    CA,
    PG_PORT,
    PROBE_TABLE,
    REST_USER,
    RW_PORT,
    S,
    connect,
    count_value,
    ensure_probe_table,
    options_status,
    query,
    replication_states,
    rest_cluster,
    rest_url,
    roles,
    unique_value,
    wait_for_healthy_cluster,
)

from pgha.patroni import rest
from pgha.patroni import values as patroni_values

DEPLOY = "deploys/patroni.py"
UNIT_FILE = "/etc/systemd/system/patroni.service"
TTL_CHANGED = S["patroni_ttl"] + 1  # 31 with group_data's 30
PG_NAMES = [n.patroni_name for n in CLUSTER.patroni]


def address(name: str) -> str:
    return CLUSTER.node(name).address


# --- the deploy, run once first: the cluster follows the current group_data --------------


@pytest.fixture(scope="module")
def converged(passwords):
    """`pyinfra -y inventory.py deploys/patroni.py` once, for the tests of the deploy itself
    (destructive: the read-only verification checks the cluster as it was deployed)."""
    rc, output = helpers.run_pyinfra(helpers.INVENTORY, DEPLOY, timeout=900)
    assert rc == 0, "deploys/patroni.py failed:\n" + helpers.tail(output)
    problem = wait_for_healthy_cluster(timeout=60)
    assert not problem, f"cluster not healthy after the deploy: {problem}"
    return output


def show_config(host) -> dict:
    """`patronictl show-config` on a node (as root, no arguments), parsed by the node's yaml."""
    result = host.run(
        "patronictl show-config | python3 -c "
        + shlex.quote("import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))")
    )
    assert result.rc == 0, f"patronictl show-config failed: {result.stderr}"
    return json.loads(result.stdout)


# --- roles and replication ----------------------------------------------------------------


def test_inventory_has_three_patroni_members():
    assert len(PG_NAMES) == 3 and len(set(PG_NAMES)) == 3, PG_NAMES


def test_one_leader_two_streaming_replicas_in_pg_stat_replication(passwords):
    leader, replicas = roles()
    assert len(replicas) == 2, replicas
    states = replication_states(leader.address, passwords["superuser_password"])
    others = {n.patroni_name for n in CLUSTER.patroni if n is not leader}
    assert states == {name: "streaming" for name in others}, states


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_rest_cluster_agrees_from_every_node(name):
    reference = [(m["name"], m["role"]) for m in rest_cluster(CLUSTER.patroni[0].address)]
    members = rest_cluster(address(name))
    assert [(m["name"], m["role"]) for m in members] == reference
    assert sorted(m["name"] for m in members) == sorted(PG_NAMES)
    assert [m["role"] for m in members].count("leader") == 1, members
    assert [m["role"] for m in members].count("replica") == 2, members
    assert all(m["state"] in ("running", "streaming") for m in members), members
    assert len({m["timeline"] for m in members}) == 1, members


def test_health_endpoints_name_one_leader_and_two_replicas():
    """The endpoints HAProxy asks (pgha.patroni.rest: /primary, /replica on 3.0.2 and 4.x)."""
    leader, replicas = roles()
    primary = {n.patroni_name: options_status(n.address, rest.LEADER_CHECK) for n in CLUSTER.patroni}
    replica = {n.patroni_name: options_status(n.address, rest.REPLICA_CHECK) for n in CLUSTER.patroni}
    assert [k for k, v in primary.items() if v == 200] == [leader.patroni_name], primary
    assert sorted(k for k, v in replica.items() if v == 200) == sorted(
        r.patroni_name for r in replicas
    ), replica
    assert replica[leader.patroni_name] != 200, replica
    assert all(primary[r.patroni_name] != 200 for r in replicas), primary


def test_admin_role_logs_in_with_its_attributes(passwords):
    """Kept by the deploy (Patroni 4 has no bootstrap.users): LOGIN, CREATEROLE, CREATEDB."""
    leader, _ = roles()
    conn = connect(leader.address, PG_PORT, passwords["admin_password"])
    try:
        sql = "select rolcreaterole, rolcreatedb, rolsuper from pg_roles where rolname = current_user"
        assert query(conn, sql) == [(True, True, False)]
    finally:
        conn.close()


def test_row_written_on_the_leader_is_read_on_both_replicas(passwords):
    leader, replicas = roles()
    ensure_probe_table(leader.address, passwords)
    value = unique_value("replication")
    conn = connect(leader.address, PG_PORT, passwords["admin_password"])
    try:
        query(conn, f"insert into {PROBE_TABLE} (value) values (%s)", (value,))
        assert query(conn, f"select count(*) from {PROBE_TABLE} where value = %s", (value,)) == [(1,)]
    finally:
        conn.close()
    try:
        seen = {}

        def on_every_replica() -> bool:
            seen.update({
                r.patroni_name: count_value(r.address, PG_PORT, passwords["admin_password"], value)
                for r in replicas
            })
            return all(v == 1 for v in seen.values())

        helpers.wait_until(on_every_replica, 10, interval=0.5)
        assert seen == {r.patroni_name: 1 for r in replicas}, seen
    finally:
        conn = connect(leader.address, PG_PORT, passwords["admin_password"])
        try:
            query(conn, f"delete from {PROBE_TABLE} where value = %s", (value,))
        finally:
            conn.close()


# --- the DCS configuration ------------------------------------------------------------------


def _same(wanted, current) -> bool:
    """Patroni may hand values back as strings ('10', 'on')."""
    if isinstance(wanted, bool):
        return str(current).lower() in (("true", "on", "yes") if wanted else ("false", "off", "no"))
    return str(wanted) == str(current)


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_show_config_matches_group_data(patroni_hosts, name):
    config = show_config(patroni_hosts[name])
    for key, setting in (
        ("ttl", "patroni_ttl"),
        ("loop_wait", "patroni_loop_wait"),
        ("retry_timeout", "patroni_retry_timeout"),
        ("maximum_lag_on_failover", "patroni_maximum_lag_on_failover"),
    ):
        assert key in config, f"{key} missing from show-config: {sorted(config)}"
        assert int(config[key]) == S[setting], f"{key}: {config[key]!r} != {S[setting]!r}"
    parameters = config.get("postgresql", {}).get("parameters", {})
    wrong = {
        k: (parameters.get(k), v)
        for k, v in S["postgresql_parameters"].items()
        if not _same(v, parameters.get(k))
    }
    assert not wrong, f"parameters (DCS, group_data) that differ: {wrong}"


def test_pyinfra_parses_data_integers_as_int():
    """`--data patroni_ttl=31` reaches the deploy as the integer 31 (pyinfra_cli's
    parse_cli_arg: true/false, then int, then JSON, else the string), so the deploy's
    settings check accepts it. Asked in a subprocess: importing pyinfra_cli monkey-patches
    this process (gevent)."""
    result = subprocess.run(
        [str(helpers.PYTHON), "-c",
         f"from pyinfra_cli.util import parse_cli_arg as p; v = p({str(TTL_CHANGED)!r}); print(type(v).__name__, v)"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["int", str(TTL_CHANGED)], result.stdout


@pytest.fixture(scope="module")
def ttl_change(patroni_hosts, passwords):
    """Deploy with `--data patroni_ttl=31` twice, then (always) with group_data's value."""
    first_host = patroni_hosts[PATRONI_NAMES[0]]
    seen: dict = {}
    try:
        seen["first"] = helpers.run_pyinfra(
            helpers.INVENTORY, DEPLOY, "--data", f"patroni_ttl={TTL_CHANGED}", timeout=900
        )
        seen["ttl_after_first"] = {n: show_config(patroni_hosts[n]).get("ttl") for n in PATRONI_NAMES}
        seen["second"] = helpers.run_pyinfra(
            helpers.INVENTORY, DEPLOY, "--data", f"patroni_ttl={TTL_CHANGED}", timeout=900
        )
        seen["ttl_after_second"] = show_config(first_host).get("ttl")
    finally:
        seen["restore"] = helpers.run_pyinfra(helpers.INVENTORY, DEPLOY, timeout=900)
        seen["ttl_restored"] = {n: show_config(patroni_hosts[n]).get("ttl") for n in PATRONI_NAMES}
        seen["healthy_after"] = wait_for_healthy_cluster(60)
    return seen


@pytest.mark.destructive
def test_ttl_change_deploy_succeeds_and_changes_something(ttl_change):
    rc, output = ttl_change["first"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) > 0, helpers.tail(output)
    rows = helpers.changed_operation_rows(output)
    assert any("DCS configuration" in row for row in rows), rows


@pytest.mark.destructive
def test_ttl_change_reaches_the_dcs_seen_from_every_node(ttl_change):
    assert {n: int(v) for n, v in ttl_change["ttl_after_first"].items()} == {
        n: TTL_CHANGED for n in PATRONI_NAMES
    }


@pytest.mark.destructive
def test_ttl_change_rerun_changes_nothing(ttl_change):
    rc, output = ttl_change["second"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
    assert int(ttl_change["ttl_after_second"]) == TTL_CHANGED


@pytest.mark.destructive
def test_ttl_restored_to_group_data(ttl_change):
    rc, output = ttl_change["restore"]
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) > 0, helpers.tail(output)
    assert {n: int(v) for n, v in ttl_change["ttl_restored"].items()} == {
        n: S["patroni_ttl"] for n in PATRONI_NAMES
    }
    assert not ttl_change["healthy_after"], ttl_change["healthy_after"]


# --- authentication -------------------------------------------------------------------------


def test_wrong_password_is_refused():
    leader, _ = roles()
    with pytest.raises(psycopg2.OperationalError) as error:
        connect(leader.address, PG_PORT, f"wrong-{uuid.uuid4().hex}").close()
    assert f'password authentication failed for user "{ADMIN}"' in str(error.value)


def test_right_password_is_accepted_from_this_machine(passwords):
    leader, _ = roles()
    conn = connect(leader.address, PG_PORT, passwords["admin_password"])
    try:
        assert query(conn, "select current_user") == [(ADMIN,)]
    finally:
        conn.close()


# The first answer of a PostgreSQL server to a client that does not speak TLS: a
# StartupMessage (protocol 3.0) for user dba / database postgres, and the server's answer
# "E <SQLSTATE> <message>" (ErrorResponse) or "R <auth type>"; with "ssl", an SSLRequest
# first and the server's one-byte answer (S: it will speak TLS).
_STARTUP_PROBE = r"""
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
if sys.argv[4] == "ssl":
    s.sendall(struct.pack("!ii", 8, 80877103))
    print(s.recv(1).decode())
    sys.exit(0)
params = b"user\0" + sys.argv[3].encode() + b"\0database\0postgres\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
data = b""
while len(data) < 5 or len(data) < 1 + struct.unpack("!i", data[1:5])[0]:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
if data[:1] == b"E":
    fields = {f[:1].decode(): f[1:].decode() for f in data[5:].split(b"\0") if f}
    print("E", fields.get("C"), fields.get("M"))
elif data[:1] == b"R":
    print("R", struct.unpack("!i", data[5:9])[0])
else:
    print("?", data[:40])
"""


def startup_answer(host, target: str, ssl: bool = False) -> str:
    result = host.run(
        "python3 -c %s %s %s %s %s", _STARTUP_PROBE, target, str(PG_PORT), ADMIN, "ssl" if ssl else "plain"
    )
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("target", PATRONI_NAMES)
def test_pg_hba_rejects_a_plaintext_connection_from_an_allowed_node(patroni_hosts, target):
    """A Patroni node may connect (firewall, hostssl rule), but not without TLS."""
    source = PATRONI_NAMES[1] if target == PATRONI_NAMES[0] else PATRONI_NAMES[0]
    answer = startup_answer(patroni_hosts[source], address(target))
    assert answer.startswith("E 28000 pg_hba.conf rejects connection for host "), answer
    assert answer.endswith("no encryption"), answer


@pytest.mark.parametrize("target", PATRONI_NAMES)
def test_postgresql_offers_tls(patroni_hosts, target):
    """Control for the refusal: the same node is answered S to an SSLRequest."""
    source = PATRONI_NAMES[1] if target == PATRONI_NAMES[0] else PATRONI_NAMES[0]
    assert startup_answer(patroni_hosts[source], address(target), ssl=True) == "S"


def _patch_config(target: str, auth) -> requests.Response:
    current = requests.get(rest_url(target, "config"), timeout=5, verify=CA).json()
    return requests.patch(rest_url(target, "config"), json={"ttl": current["ttl"]}, auth=auth, timeout=5, verify=CA)


@pytest.mark.parametrize("target", PATRONI_NAMES)
def test_rest_patch_config_without_auth_is_401(target):
    response = requests.patch(
        rest_url(address(target), "config"), json={"ttl": S["patroni_ttl"]}, timeout=5, verify=CA
    )
    assert response.status_code == 401, (response.status_code, response.text[:200])


@pytest.mark.parametrize("target", PATRONI_NAMES)
def test_rest_patch_config_with_wrong_password_is_401(target):
    response = _patch_config(address(target), (REST_USER, f"wrong-{uuid.uuid4().hex}"))
    assert response.status_code == 401, (response.status_code, response.text[:200])


@pytest.mark.destructive
def test_rest_patch_config_with_the_right_password_is_accepted(passwords):
    """Control for the 401 tests: the same PATCH (ttl set to its current value) with the
    REST API's credentials succeeds."""
    leader, _ = roles()
    response = _patch_config(leader.address, (REST_USER, passwords["restapi_password"]))
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert int(response.json()["ttl"]) == S["patroni_ttl"]


# --- the deploy: summary and idempotence ----------------------------------------------------


@pytest.mark.destructive
def test_deploy_summary_shows_one_leader_and_the_connection_strings(converged):
    """Said last, after pyinfra's results: the member table, then the connection strings,
    the same as `pgha status --dsn` prints from the same directory."""
    last = converged.split("--> Results:")[-1]
    rows = rest.parse_summary(last.split("--> Cluster status")[-1])
    assert sorted(r["member"] for r in rows) == sorted(PG_NAMES), helpers.tail(converged)
    assert [r["role"] for r in rows].count("leader") == 1, rows
    assert all(r["replication"] == "streaming" for r in rows if r["role"] == "replica"), rows
    said = last.split("--> Connect")[-1].strip()
    assert said == helpers.pgha("status", "--dsn").stdout.strip()
    names = ",".join(n.connect_name for n in CLUSTER.patroni)  # addresses (or DNS names)
    assert (f"read-write: host={names} port={RW_PORT} dbname=postgres user={ADMIN} "
            "target_session_attrs=read-write sslmode=verify-full sslrootcert=") in " ".join(said.split())


@pytest.mark.destructive
def test_second_patroni_deploy_changes_nothing(converged):
    rc, output = helpers.run_pyinfra(helpers.INVENTORY, DEPLOY, timeout=900)
    assert rc == 0, helpers.tail(output)
    assert helpers.changed_operations(output) == 0, helpers.changed_operation_rows(output)
    assert helpers.grand_total(output)["error"] == 0


@pytest.mark.destructive
def test_deploy_output_shows_no_secret(converged, ttl_change, passwords):
    """Secrets only reach the hosts inside files: no run's output contains one."""
    outputs = [converged, ttl_change["first"][1], ttl_change["second"][1], ttl_change["restore"][1]]
    leaked = sorted({key for key, value in passwords.items() for out in outputs if value in out})
    assert not leaked, f"secrets shown in deploys/patroni.py's output: {leaked}"


# --- the nodes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_patronictl_list_without_arguments(patroni_hosts, name):
    result = patroni_hosts[name].run("patronictl list")
    assert result.rc == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in PG_NAMES:
            rows[cells[0]] = cells
    assert sorted(rows) == sorted(PG_NAMES), result.stdout
    assert [c[2] for c in rows.values()].count("Leader") == 1, result.stdout
    assert S["patroni_scope"] in result.stdout


def systemd_span(seconds: int) -> str:
    """A duration as `systemctl show` prints it: 60 -> "1min", 90 -> "1min 30s"."""
    minutes, rest_seconds = divmod(seconds, 60)
    return " ".join(part for part in (f"{minutes}min" if minutes else "", f"{rest_seconds}s" if rest_seconds else "") if part)


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_systemd_unit_killmode_timeout_enabled(patroni_hosts, name):
    host = patroni_hosts[name]
    result = host.run(
        "systemctl show patroni -p KillMode -p TimeoutStartUSec -p TimeoutStopUSec "
        "-p UnitFileState -p ActiveState -p FragmentPath"
    )
    assert result.rc == 0, result.stderr
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert props == {
        "KillMode": "process",
        "TimeoutStartUSec": "30s",
        "TimeoutStopUSec": systemd_span(patroni_values.stop_timeout(S)),
        "UnitFileState": "enabled",
        "ActiveState": "active",
        "FragmentPath": UNIT_FILE,
    }
    unit = host.file(UNIT_FILE).content_string
    assert re.search(r"^KillMode=process$", unit, re.M), unit
    assert re.search(rf"^TimeoutStopSec={patroni_values.stop_timeout(S)}$", unit, re.M), unit
    assert host.service("patroni").is_enabled


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_no_main_cluster_and_only_haproxy_on_5432(patroni_hosts, name):
    host = patroni_hosts[name]
    clusters = host.run("pg_lsclusters -h")
    assert clusters.rc == 0, clusters.stderr
    assert clusters.stdout.strip() == "", clusters.stdout
    assert not host.file(f"/etc/postgresql/{S['postgresql_version']}/main/postgresql.conf").exists
    listeners = host.run(f"ss -Hltnp 'sport = :{RW_PORT}'")
    assert listeners.rc == 0, listeners.stderr
    lines = [line for line in listeners.stdout.splitlines() if line.strip()]
    assert lines, f"nothing listens on {RW_PORT}"
    assert all('users:(("haproxy"' in line for line in lines), listeners.stdout
