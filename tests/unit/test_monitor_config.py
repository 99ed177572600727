"""The monitoring's files as the hosts get them, checked by the daemons' own tools (Debian's
promtool, amtool and blackbox exporter, from `make tools`), and its topology: the scrape jobs
come from the inventory, the exporters answer the monitoring host only, a bad monitoring
host is refused before any host is touched."""

from __future__ import annotations

import subprocess

import bcrypt
import pytest
import yaml

from pgha import monitoring
from pgha.errors import ConfigError
from pgha.monitor import exporters, server, values
from pgha.monitor.daemons import dropin
from pgha.patroni import values as patroni_values
from pgha.pki import authority
from pghalab import topology

from .conftest import FAKE_SECRETS, REPO_ROOT, cluster_with, render

TOOLS = REPO_ROOT / ".venv" / "tools" / "bin"


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    path = TOOLS / name
    assert path.is_file(), f"{path} is missing: run `make tools` (make unit and make test do)"
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60)


def problems_of(groups, group_data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cluster_with(groups, group_data)
    return info.value.problems


# --- the checkers accept the files ------------------------------------------------------------


def test_prometheus_config_passes_promtool(cluster, tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(server.prometheus_config(cluster))
    proc = tool("promtool", "check", "config", "--syntax-only", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def overview_queries() -> list[str]:
    """Every PromQL expression of the overview page (a `%s` of printf stands for an instance)."""
    import re

    page = (REPO_ROOT / "pgha" / "monitor" / "templates" / server.OVERVIEW_PAGE).read_text()
    quoted = re.findall(r'query "((?:[^"\\]|\\.)*)"', page)
    raw = re.findall(r"printf `([^`]*)`", page)
    return [q.replace('\\"', '"') for q in quoted] + [q.replace("%s", "pg_patroni1") for q in raw]


def test_every_query_of_the_overview_page_parses(tmp_path):
    """Prometheus renders the page at each request: a query it cannot parse is an error page
    (promtool parses each one as a recording rule's expression)."""
    queries = overview_queries()
    assert len(queries) >= 12
    rules = {"groups": [{"name": "page", "rules": [{"record": f"page:query{i}", "expr": q}
                                                   for i, q in enumerate(queries)]}]}
    path = tmp_path / "page.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = tool("promtool", "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_config_passes_amtool(cluster, tmp_path, group_data, groups):
    for case in (cluster, cluster_with(groups, group_data, alert_webhook_url=None, alert_email_to="dba@example.net",
                                       alert_email_from="pgha@example.net", alert_email_smarthost="smtp.example.net:587")):
        path = tmp_path / "alertmanager.yml"
        path.write_text(server.alertmanager_config(case))
        proc = tool("amtool", "check-config", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_blackbox_config_passes_its_own_check(tmp_path):
    path = tmp_path / "blackbox.yml"
    path.write_text(server.blackbox_config())
    proc = tool("prometheus-blackbox-exporter", "--config.check", f"--config.file={path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_web_config_passes_promtool_with_the_password_hash(cluster, tmp_path):
    ca_cert, ca_key = authority.ensure_ca(tmp_path / "ca", "test CA")
    files = authority.issue(tmp_path / "host", "pg_patroni1", ["localhost"], ["127.0.0.1"], ca_cert, ca_key)
    text = values.web_config(cluster)
    document = yaml.safe_load(text)
    password_hash = document["basic_auth_users"]["admin"]
    assert bcrypt.checkpw(FAKE_SECRETS["monitoring_password"].encode(), password_hash.encode())
    assert FAKE_SECRETS["monitoring_password"] not in text
    assert values.web_config(cluster) == text  # the same password, the same file: a second deploy changes nothing
    document["tls_server_config"].update(cert_file=str(files.cert), key_file=str(files.key))
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    proc = tool("promtool", "check", "web-config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- what is scraped: the inventory's nodes -----------------------------------------------------


def jobs(cluster) -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(server.prometheus_config(cluster))["scrape_configs"]}


def targets(job: dict) -> list[tuple[str, str]]:
    return [(c["targets"][0], c["labels"]["instance"]) for c in job["static_configs"]]


def test_every_component_is_scraped_over_tls(cluster):
    found = jobs(cluster)
    assert list(found) == ["node", "patroni", "postgres", "haproxy", "etcd", "pgbackrest", "prometheus",
                           "alertmanager", "tls"]
    assert targets(found["node"]) == [(f"{n.address}:9100", n.name) for n in cluster.nodes]
    assert targets(found["patroni"]) == [("10.0.3.141:8008", "pg_patroni1"), ("10.0.3.201:8008", "pg_patroni2"),
                                         ("10.0.3.68:8008", "pg_patroni3")]
    assert targets(found["etcd"])[0] == ("10.0.3.64:2381", "etcd1")
    assert targets(found["pgbackrest"]) == [("10.0.3.100:9854", "backup1")]
    assert found["postgres"]["static_configs"][1]["labels"] == {"instance": "pg_patroni2", "member": "pg-2"}
    for job in found.values():
        assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": "/etc/pgha/tls/ca.crt"}
    # Patroni and etcd have no password for their metrics; every other target asks for one
    assert sorted(name for name, job in found.items() if "basic_auth" not in job) == ["etcd", "patroni"]
    assert found["node"]["basic_auth"] == {"username": "admin", "password_file": server.PASSWORD_FILE}


def test_a_node_added_to_the_inventory_is_scraped(groups, group_data):
    groups["patroni"].append(("pg_patroni4", {**groups["patroni"][0][1], "address": "10.0.3.90",
                                              "ssh_hostname": "10.0.3.90", "lxc_container": "pg_patroni4",
                                              "patroni_name": "pg-4", "aliases": []}))
    found = jobs(cluster_with(groups, group_data))
    for job in ("node", "patroni", "postgres", "haproxy"):
        assert ("10.0.3.90:" + {"node": "9100", "patroni": "8008", "postgres": "9187", "haproxy": "8405"}[job],
                "pg_patroni4") in targets(found[job])


def test_bookworm_reads_pgbackrest_through_the_node_exporter(groups, group_data):
    cluster = cluster_with(groups, group_data, debian_release="bookworm")
    assert "pgbackrest" not in jobs(cluster)
    backup = cluster.node("backup1")
    assert [d.unit for d in exporters.daemons(cluster, backup)] == ["prometheus-node-exporter"]
    assert exporters.pgbackrest_textfile(cluster, backup)
    assert "jq" in exporters.packages(cluster, backup)
    script = render("monitor/pgbackrest-metrics.sh.j2", exporters.textfile_values(cluster))
    assert "pgbackrest_backup_since_last_completion_seconds" in script
    assert "runuser -u pgbackrest -- pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=my-ha-cluster" in script


def test_every_tls_endpoint_is_probed(cluster):
    probes = jobs(cluster)["tls"]["static_configs"]
    on = lambda name: sorted((c["labels"]["endpoint"], c["targets"][0].rsplit(":", 1)[1])  # noqa: E731
                             for c in probes if c["labels"]["instance"] == name)
    assert on("etcd1") == [("etcd", "2379"), ("etcd metrics", "2381"), ("node exporter", "9100")]
    assert on("pg_patroni1") == [("haproxy metrics", "8405"), ("haproxy stats", "7000"), ("node exporter", "9100"),
                                 ("patroni", "8008"), ("pgbackrest", "8432"), ("postgres exporter", "9187")]
    assert on("monitor1") == [("alertmanager", "9093"), ("node exporter", "9100"), ("prometheus", "9090")]
    assert {c["labels"]["__param_module"] for c in probes} == {server.TLS_MODULE}


# --- who reaches what ---------------------------------------------------------------------------


def test_the_exporters_answer_the_monitoring_host_only(cluster):
    table = exporters.firewall(cluster, cluster.node("pg_patroni1"))
    (monitoring_set,) = table["sets"]
    assert (monitoring_set["ports"], monitoring_set["elements"]) == ("{ 9100, 9187 }", ["10.0.3.101"])
    lines = [line.strip() for line in render("firewall/table.nft.j2", table).splitlines()]
    assert "tcp dport { 9100, 9187 } reject with tcp reset" in lines
    assert exporters.firewall(cluster, cluster.node("backup1"))["sets"][0]["ports"] == "{ 9100, 9854 }"


def test_prometheus_and_alertmanager_answer_client_networks(cluster):
    (clients,) = server.firewall(cluster)["sets"]
    assert (clients["ports"], clients["elements"]) == ("{ 9090, 9093 }", ["10.0.3.1/32"])


def test_the_daemons_get_their_arguments_from_a_drop_in(cluster):
    monitor = cluster.node("monitor1")
    prometheus, alertmanager, blackbox = server.daemons(cluster, monitor)
    text = render("monitor/dropin.conf.j2", dropin(prometheus))
    assert "EnvironmentFile=\n" in text  # Debian's /etc/default file does not count
    assert ("ExecStart=/usr/bin/prometheus --config.file=/etc/pgha/monitoring/prometheus.yml "
            "--web.listen-address=:9090 --web.config.file=/etc/pgha/monitoring/web.yml") in text
    assert "--cluster.listen-address=" in " ".join(alertmanager.arguments)  # one instance, no cluster port
    assert "--web.listen-address=127.0.0.1:9115" in blackbox.arguments
    postgres = next(d for d in exporters.daemons(cluster, cluster.node("pg_patroni1"))
                    if d.unit == "prometheus-postgres-exporter")
    text = render("monitor/dropin.conf.j2", dropin(postgres))
    assert 'Environment="DATA_SOURCE_NAME=host=/var/run/postgresql port=5434 user=pgha_monitor dbname=postgres"' in text
    assert FAKE_SECRETS["monitoring_password"] not in text


def test_the_exporter_logs_in_through_the_ident_map_only(cluster):
    doc = yaml.safe_load(patroni_values.config_text(cluster, cluster.node("pg-1")))
    assert doc["postgresql"]["pg_ident"] == ["pgha_monitoring prometheus pgha_monitor"]
    assert "local postgres pgha_monitor peer map=pgha_monitoring" in doc["postgresql"]["pg_hba"]


def test_without_a_monitoring_host_nothing_is_monitored(groups, group_data):
    cluster = cluster_with(topology.groups(monitor_nodes={}), group_data)
    assert not monitoring.enabled(cluster)
    assert all(exporters.daemons(cluster, n) == [] for n in cluster.nodes)
    doc = yaml.safe_load(patroni_values.config_text(cluster, cluster.node("pg-1")))
    assert "pg_ident" not in doc["postgresql"]
    from pgha.etcd import values as etcd_values

    assert "listen-metrics-urls" not in etcd_values.config(cluster, cluster.node("etcd1"), {
        "initial_cluster": "", "initial_cluster_state": "new"})


# --- refused before any host is touched ----------------------------------------------------------


def test_two_monitoring_hosts_are_refused(group_data):
    groups = topology.groups(monitor_nodes={"monitor1": "10.0.3.101", "monitor2": "10.0.3.102"})
    assert ("inventory: group 'monitor' has 2 hosts (monitor1, monitor2): expected one monitoring host (or none)"
            in problems_of(groups, group_data))


def test_a_monitoring_host_that_is_a_database_node_is_refused(groups, group_data):
    groups["monitor"] = [groups["patroni"][0]]
    assert ("inventory: host 'pg_patroni1' is in groups 'monitor' and 'patroni': expected a monitoring host of its "
            "own (it must see the cluster when a node is lost)") in problems_of(groups, group_data)


@pytest.mark.parametrize("setting, value, expected", [
    ("monitoring_scrape_interval", "15 seconds", "a Prometheus duration such as 30s, 5m, 1h or 15d"),
    ("alert_webhook_url", "chat.example.net/hook", "None or an http(s) URL Alertmanager posts the alerts to"),
    ("alert_filesystem_free_percent", 80, "a percentage from 1 to 50"),
    ("prometheus_port", 0, "an integer port number from 1 to 65535"),
])
def test_a_bad_monitoring_setting_is_refused_with_what_is_expected(groups, group_data, setting, value, expected):
    group_data[setting] = value
    assert f"group_data: {setting} = {value!r}: expected {expected}" in problems_of(groups, group_data)


def test_an_email_receiver_needs_its_sender_and_relay(groups, group_data):
    group_data["alert_email_to"] = "dba@example.net"
    assert ("group_data: alert_email_to = 'dba@example.net' without alert_email_from and alert_email_smarthost: "
            "expected all three (or alert_email_to = None)") in problems_of(groups, group_data)


def test_an_exporter_port_taken_by_another_service_is_refused(groups, group_data):
    group_data["node_exporter_port"] = 8008
    assert any("node_exporter_port = 8008" in p and "patroni_restapi_port = 8008" in p
               for p in problems_of(groups, group_data))


def test_the_deploys_prometheus_query_reads_the_http_api_with_a_login_file():
    """curl with a root-only config file (bookworm's promtool cannot log in); no password on
    the command line; an answer that is not Prometheus's is no answer."""
    from pgha.monitor.facts import PROMETHEUS_CURLRC, PrometheusQuery

    query = PrometheusQuery()
    command = query.command("up == 0", 9090)
    assert f"-K {PROMETHEUS_CURLRC}" in command and "'up == 0'" in command and FAKE_SECRETS[values.SECRET_KEY] not in command
    answer = ('{"status":"success","data":{"resultType":"vector","result":'
              '[{"metric":{"job":"node","instance":"etcd1"},"value":[1764000000.1,"0"]}]}}')
    assert query.process([answer]) == [{"metric": {"job": "node", "instance": "etcd1"}, "value": 0.0}]
    assert query.process([""]) is None
    assert query.process(["Unauthorized"]) is None
