"""pgha.haproxy and templates/haproxy/haproxy.cfg.j2: the rendered configuration of the
HAProxy on every Patroni node."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest

from pgha.haproxy import values as haproxy
from pgha.patroni.rest import LEADER_CHECK, REPLICA_CHECK

from .conftest import ETCD_NODES, FAKE_SECRETS, PATRONI_NODES, cluster_with, recorded, render

PG_SERVERS = [
    f"server {pg} {address}:5434 check port 8008 check-ssl verify required ca-file /etc/pgha/tls/ca.crt verifyhost {pg}"
    for (address, pg, _aliases) in PATRONI_NODES.values()
]
ETCD_SERVERS = [f"server {name} {address}:2379 check" for name, address in ETCD_NODES.items()]
CHECK_PREFIX = "haproxy_check_"


def check_options(data: dict) -> dict[str, str]:
    """What every `haproxy_check_<keyword>` setting asks for: ``{"inter": "2s", "rise": "2", ...}``."""
    return {key[len(CHECK_PREFIX):]: str(value) for key, value in data.items() if key.startswith(CHECK_PREFIX)}


def default_server(lines: list[str]) -> dict[str, str]:
    """The section's one `default-server` line as keyword/value pairs; it must end with
    `on-marked-down shutdown-sessions` (clients of a demoted leader are cut off)."""
    found = [line for line in lines if line.startswith("default-server ")]
    assert len(found) == 1, lines
    words = found[0].split()[1:]
    assert words[-2:] == ["on-marked-down", "shutdown-sessions"]
    words = words[:-2]
    assert len(words) % 2 == 0, found[0]
    pairs = dict(zip(words[::2], words[1::2]))
    assert len(pairs) == len(words) // 2, f"a keyword twice in {found[0]!r}"
    return pairs


def render_cfg(cluster, secrets: dict = FAKE_SECRETS) -> str:
    return render("haproxy/haproxy.cfg.j2", haproxy.config(dataclasses.replace(cluster, secrets=secrets)))


def sections(text: str) -> dict[str, list[str]]:
    """``{"listen stats": ["mode http", "bind *:7000", ...]}``: each section's lines, comments
    dropped, whitespace collapsed, in order."""
    result: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if raw.lstrip().startswith("#") else raw.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = " ".join(line.split())
            assert current not in result, f"section {current!r} twice"
            result[current] = []
        else:
            assert current is not None, f"line {raw!r} outside any section"
            result[current].append(" ".join(line.split()))
    return result


def servers(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("server ")]


def test_sections(cluster):
    assert list(sections(render_cfg(cluster))) == [
        "global",
        "defaults",
        "listen stats",
        "userlist pgha_monitoring",
        "frontend metrics",
        "listen etcd",
        "listen primary",
        "listen replicas",
    ]


def test_defaults_are_tcp(cluster):
    defaults = sections(render_cfg(cluster))["defaults"]
    assert "mode tcp" in defaults
    assert "timeout check 2s" in defaults


def test_stats(cluster):
    stats = sections(render_cfg(cluster))["listen stats"]
    assert "bind *:7000 ssl crt /etc/pgha/tls/haproxy.pem" in stats
    assert "mode http" in stats
    assert "stats enable" in stats
    assert f"stats auth admin:{FAKE_SECRETS['haproxy_stats_password']}" in stats


def test_etcd_proxy(cluster):
    etcd = sections(render_cfg(cluster))["listen etcd"]
    assert "bind 127.0.0.1:2379" in etcd
    assert "option tcp-check" in etcd
    assert "balance roundrobin" in etcd
    assert servers(etcd) == ETCD_SERVERS


def listen(cluster, name: str, port: int, check: str) -> list[str]:
    """A listen section, bound to ``port``, checking the members with OPTIONS ``check``."""
    lines = sections(render_cfg(cluster))[f"listen {name}"]
    assert f"bind *:{port}" in lines
    assert f"option httpchk OPTIONS {check}" in lines and "http-check expect status 200" in lines
    assert servers(lines) == PG_SERVERS
    return lines


def test_primary(cluster):
    primary = listen(cluster, "primary", 5432, "/primary")
    # a refused connection fails at once and marks the old leader down (fast switchover)
    assert "retries 0" in primary
    assert default_server(primary) == {
        **check_options(cluster.settings),
        "observe": "layer4",
        "error-limit": "1",
        "on-error": "mark-down",
    }


def checked_endpoint(lines: list[str]) -> str:
    """The REST API path a section's health check asks (`option httpchk OPTIONS /path`),
    without its query."""
    found = [line.split() for line in lines if line.startswith("option httpchk ")]
    assert len(found) == 1 and found[0][2] == "OPTIONS", lines
    return found[0][3].split("?")[0]


def recorded_codes(version: str) -> tuple[dict[str, str], dict[str, str]]:
    """{endpoint: HTTP code} of the leader and of a replica, recorded from Patroni ``version``
    (the PatroniRole fact's output: master, primary, replica, health, then /patroni)."""
    lines = recorded(f"patroni-{version}-role-outputs.txt").splitlines()
    leader, replica = lines[:4], lines[5:9]
    return tuple(dict(line.split(" ", 1) for line in part) for part in (leader, replica))


@pytest.mark.parametrize("version", ["3.0.2", "4.0.7"])
def test_health_checks_ask_what_both_patroni_versions_answer(cluster, version):
    leader, replica = recorded_codes(version)
    cfg = sections(render_cfg(cluster))
    primary = checked_endpoint(cfg["listen primary"]).lstrip("/")
    replicas = checked_endpoint(cfg["listen replicas"]).lstrip("/")
    assert (leader[primary], replica[primary]) == ("200", "503")
    assert (leader[replicas], replica[replicas]) == ("503", "200")


def test_health_checks_come_from_the_rest_module(cluster):
    cfg = sections(render_cfg(cluster))
    assert checked_endpoint(cfg["listen primary"]) == LEADER_CHECK
    assert checked_endpoint(cfg["listen replicas"]) == REPLICA_CHECK


def test_replicas(cluster):
    replicas = listen(cluster, "replicas", 5433, "/replica?lag=1048576")
    assert "balance roundrobin" in replicas
    assert default_server(replicas) == check_options(cluster.settings)
    # no replica within the lag: the reads go to the leader
    assert "use_backend primary if { nbsrv(replicas) eq 0 }" in replicas


def test_a_replica_lagging_beyond_its_setting_leaves_the_read_rotation(groups, group_data):
    """Patroni's /replica?lag= answers 503 beyond the lag: patroni_maximum_lag_on_failover by
    default, haproxy_replica_max_lag when set."""
    group_data["patroni_maximum_lag_on_failover"] = 2097152
    listen(cluster_with(groups, group_data), "replicas", 5433, "/replica?lag=2097152")
    group_data["haproxy_replica_max_lag"] = 16777216
    listen(cluster_with(groups, group_data), "replicas", 5433, "/replica?lag=16777216")


def test_a_reloaded_haproxy_keeps_the_servers_states(cluster):
    """The reload saves `show servers state` (the hold program) before it signals HAProxy;
    the new process reads it: no server starts as up until its first check."""
    text = render_cfg(cluster)
    parsed = sections(text)
    assert "server-state-file /var/lib/haproxy/server-state" in parsed["global"]
    assert "load-server-state-from-file global" in parsed["defaults"]
    dropin = render("haproxy/reload.conf.j2", haproxy.reload_dropin()).splitlines()
    reloads = [line for line in dropin if line.startswith("ExecReload=")]
    assert reloads == ["ExecReload=", "ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS",
                       "ExecReload=/usr/local/lib/pgha/haproxy-hold save-state", "ExecReload=/bin/kill -USR2 $MAINPID"]
    # a start (after a stop, a crash) must not take the states an older process saved
    assert "ExecStartPre=/bin/sh -c 'echo 1 > /var/lib/haproxy/server-state'" in dropin


def test_check_timing_from_group_data(cluster, group_data):
    options = check_options(group_data)
    assert {"inter", "fastinter", "rise", "fall"} <= set(options)
    check = haproxy.config(cluster)["check"].split()
    assert dict(zip(check[::2], check[1::2])) == options


def test_check_timing_with_the_seed_values(groups, group_data):
    cluster = cluster_with(
        groups, group_data, haproxy_check_inter="2s", haproxy_check_fastinter="1s", haproxy_check_rise=2,
        haproxy_check_fall=1,
    )
    line = next(each for each in sections(render_cfg(cluster))["listen primary"] if each.startswith("default-server"))
    pairs = default_server([line])
    assert (pairs["inter"], pairs["fastinter"], pairs["rise"], pairs["fall"]) == ("2s", "1s", "2", "1")
    if "downinter" not in pairs:
        assert line == "default-server inter 2s fastinter 1s rise 2 fall 1 on-marked-down shutdown-sessions"


def test_check_timing_follows_a_change(groups, group_data):
    changes = {
        "haproxy_check_inter": "500ms",
        "haproxy_check_fastinter": "100ms",
        "haproxy_check_rise": 3,
        "haproxy_check_fall": 4,
    }
    if "haproxy_check_downinter" in group_data:
        changes["haproxy_check_downinter"] = "750ms"
    before = sections(render_cfg(cluster_with(groups, group_data)))
    cluster = cluster_with(groups, group_data, **changes)
    parsed = sections(render_cfg(cluster))
    wanted = check_options({**group_data, **changes})
    assert wanted["inter"] == "500ms" and wanted["fall"] == "4"
    for name in ("listen primary", "listen replicas"):
        timing = {k: v for k, v in default_server(parsed[name]).items() if k in wanted}
        assert timing == wanted
        assert {k: v for k, v in default_server(before[name]).items() if k in wanted} != wanted
    # the etcd proxy's own checks do not follow the Patroni check settings
    assert parsed["listen etcd"] == before["listen etcd"]


def test_ports_follow_the_settings(groups, group_data):
    cluster = cluster_with(
        groups,
        group_data,
        haproxy_rw_port=6432,
        haproxy_ro_port=6433,
        pgbouncer_port=6440,
        haproxy_stats_port=7001,
        haproxy_etcd_port=12379,
        postgresql_port=5444,
        patroni_restapi_port=8018,
        etcd_client_port=22379,
    )
    parsed = sections(render_cfg(cluster))
    assert "bind *:6432" in parsed["listen primary"]
    assert "bind *:6433" in parsed["listen replicas"]
    assert "bind *:7001 ssl crt /etc/pgha/tls/haproxy.pem" in parsed["listen stats"]
    assert "bind 127.0.0.1:12379" in parsed["listen etcd"]
    assert servers(parsed["listen primary"])[0] == "server pg-1 10.0.3.141:5444 check port 8018 check-ssl verify required ca-file /etc/pgha/tls/ca.crt verifyhost pg-1"
    assert servers(parsed["listen etcd"])[0] == "server etcd1 10.0.3.64:22379 check"


def test_servers_follow_the_inventory(groups, group_data):
    groups["patroni"] = groups["patroni"][:2]
    parsed = sections(render_cfg(cluster_with(groups, group_data)))
    assert servers(parsed["listen primary"]) == PG_SERVERS[:2]
    assert servers(parsed["listen replicas"]) == PG_SERVERS[:2]


def test_only_the_stats_and_metrics_passwords_are_in_the_file(cluster):
    text = render_cfg(cluster)
    own = ("haproxy_stats_password", "monitoring_password")
    assert [text.count(FAKE_SECRETS[key]) for key in own] == [1, 1]
    for key, value in FAKE_SECRETS.items():
        if key not in own:
            assert value not in text, key


def test_the_metrics_frontend_asks_for_the_monitoring_login_over_tls(cluster):
    metrics = sections(render_cfg(cluster))["frontend metrics"]
    assert metrics[:2] == ["mode http", "bind *:8405 ssl crt /etc/pgha/tls/haproxy.pem"]
    assert "http-request auth realm metrics unless { http_auth(pgha_monitoring) }" in metrics
    assert metrics[-2:] == ["http-request use-service prometheus-exporter if { path /metrics }", "http-request deny"]


def test_no_metrics_frontend_without_a_monitoring_host(group_data):
    from pghalab import topology

    text = render_cfg(cluster_with(topology.groups(monitor_nodes={}), group_data))
    assert "frontend metrics" not in text and "userlist" not in text


def test_rendered_file_ends_with_a_newline(cluster):
    text = render_cfg(cluster)
    # keep_trailing_newline, as pyinfra renders it; the loops leave blank lines (no trim_blocks)
    assert text.endswith("\n")
    assert text.rstrip("\n").endswith("server pg-3 10.0.3.68:5434 check port 8008 check-ssl verify required ca-file /etc/pgha/tls/ca.crt verifyhost pg-3")


def test_haproxy_accepts_the_file_when_it_is_installed(cluster, tmp_path):
    # haproxy is usually not installed where the unit tests run: then only the text is checked
    # (above); where it is, `haproxy -c` must accept the file as deploys/haproxy.py requires.
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_cfg(cluster), encoding="utf-8")
    assert path.read_text(encoding="utf-8").startswith("# Managed by pgha")
    binary = shutil.which("haproxy")
    if binary:
        result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr


# --- the client boundary (firewall of HAProxy's ports) ---------------------------------------


def test_haproxy_ports_answer_client_networks_and_the_cluster_nodes_only(cluster):
    from pgha.haproxy import values as haproxy_values

    config = haproxy_values.firewall(cluster)
    clients, monitoring = config["sets"]
    assert clients["ports"] == "{ 5432, 5433, 7000, 5434, 8008 }"
    assert clients["elements"] == ["10.0.3.141", "10.0.3.201", "10.0.3.68", "10.0.3.1/32"]
    # the monitoring host: Patroni's metrics and the TLS probes of the REST API and the stats page
    assert (monitoring["ports"], monitoring["elements"]) == ("{ 8008, 7000, 8405 }", ["10.0.3.101"])
    lines = [line.strip() for line in render("firewall/table.nft.j2", config).splitlines()]
    assert "tcp dport { 5432, 5433, 7000, 5434, 8008 } ip saddr @clients accept" in lines
    assert lines[-3] == "tcp dport { 5432, 5433, 7000, 5434, 8008, 8405 } reject with tcp reset"
    assert "delete table inet pgha_haproxy" in lines


def test_the_hold_program_gets_its_backends_socket_and_timeouts_from_its_settings(cluster):
    settings = haproxy.hold_settings(cluster)
    assert settings == {"socket": "/run/haproxy/admin.sock", "primary": "primary", "replicas": "replicas",
                        "state_file": "/var/lib/haproxy/server-state", "settle_timeout": 15, "release_after": 300}
    parsed = sections(render_cfg(cluster))
    assert f"listen {settings['primary']}" in parsed and f"listen {settings['replicas']}" in parsed
    assert f"stats socket {settings['socket']} mode 660 level admin" in render_cfg(cluster)


STAT = """# pxname,svname,status,check_status
primary,FRONTEND,OPEN,
primary,pg-1,UP,* L7OK
primary,pg-2,DOWN,L7STS
primary,pg-3,DOWN,L7STS
primary,BACKEND,UP,
replicas,pg-1,DOWN,L7STS
replicas,pg-2,UP,L7OK
replicas,pg-3,UP,L7OK
stats,FRONTEND,OPEN,
"""


def test_the_hold_program_keeps_up_what_passes_its_check():
    from pgha.haproxy import hold

    rows = hold.servers(STAT, ["primary", "replicas"])
    assert [f"{r['pxname']}/{r['svname']}" for r in rows] == [
        "primary/pg-1", "primary/pg-2", "primary/pg-3", "replicas/pg-1", "replicas/pg-2", "replicas/pg-3"]
    assert hold.settled(rows, "primary")  # "* L7OK": a check under way, passed last time
    assert hold.passing(rows) == ["primary/pg-1", "replicas/pg-2", "replicas/pg-3"]
    two_leaders = [dict(r, status="UP", check_status="L7OK") if r["svname"] == "pg-2" else r for r in rows]
    assert not hold.settled(two_leaders, "primary")


def test_the_hold_program_is_shipped_as_it_is(cluster):
    assert haproxy.HOLD_PROGRAM.read_text().startswith("#!/usr/bin/python3\n")
    assert haproxy.HOLD_CONFIG == "/etc/pgha/haproxy-hold.json"


def test_the_saved_state_has_no_agent_port():
    """HAProxy 2.6 (bookworm) puts the check port in srv_agent_port and then warns, loading
    it, that the server has no agent check: the hold program's save-state clears it."""
    from pgha.haproxy import hold

    state = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_agent_port\n"
             "5 primary 1 pg-1 10.0.3.141 0 8008\n6 replicas 1 pg-1 10.0.3.141 2 8008\n\n")
    assert hold.without_agent_port(state) == ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_agent_port\n"
                                              "5 primary 1 pg-1 10.0.3.141 0 0\n6 replicas 1 pg-1 10.0.3.141 2 0\n\n")
    assert hold.without_agent_port("1\n") == "1\n"
