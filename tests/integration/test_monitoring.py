"""The monitoring, read-only (issue 21): Prometheus scrapes every target of the inventory and
every TLS probe passes; Prometheus, Alertmanager and each exporter refuse a request without
the monitoring password; the metrics tell the roles Patroni reports; the overview page renders
in a real headless browser (Debian's chromium) and shows the members as they are; `pgha
status` reports the firing alerts (none on a healthy cluster).

Exporters answer only the monitoring host (their firewall): they are reached through an SSH
tunnel from it. The port scans (test_port_scan.py) prove nothing else reaches them.
"""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import threading

import helpers
import pg_helpers
import pytest
import requests
from conftest import CLUSTER

from pgha.monitor import api, exporters, server, values
from pgha.pki.authority import client_ca

S = CLUSTER.settings
MONITORED = bool(CLUSTER.groups.get(values.GROUP))
pytestmark = pytest.mark.skipif(not MONITORED, reason=f"{helpers.INVENTORY} has no host in the group monitor")

CA = str(client_ca(CLUSTER))
USER = S["monitoring_user"]
PASSWORD = CLUSTER.secrets.get(values.SECRET_KEY, "")
SCREENSHOT = helpers.PROJECT_ROOT / ".lab" / "overview.png"


def expected_targets() -> set[tuple[str, str]]:
    """(job, instance) of every scrape target the inventory implies (the TLS probes as
    "tls/<endpoint>")."""
    found = set()
    for job in server.scrape_jobs(CLUSTER):
        for config in job["static_configs"]:
            name = job["job_name"]
            if name == "tls":
                name = f"tls/{config['labels']['endpoint']}"
            found.add((name, config["labels"]["instance"]))
    return found


def test_every_target_is_scraped_and_up():
    samples = api.query(CLUSTER, "up")
    seen = {}
    for sample in samples:
        job = sample["metric"]["job"]
        if job == "tls":
            job = f"tls/{sample['metric']['endpoint']}"
        seen[(job, sample["metric"]["instance"])] = sample["value"]
    assert set(seen) == expected_targets()
    assert [target for target, value in seen.items() if value != 1] == []


def test_every_tls_probe_passes_with_the_cluster_ca():
    probes = api.query(CLUSTER, 'probe_success{job="tls"}')
    assert len(probes) == sum(1 for job, _ in expected_targets() if job.startswith("tls/"))
    failing = [f"{p['metric']['instance']}/{p['metric']['endpoint']}" for p in probes if p["value"] != 1]
    assert failing == []
    expiry = api.query(CLUSTER, 'probe_ssl_earliest_cert_expiry{job="tls"} - time()')
    assert expiry and min(e["value"] for e in expiry) > S["alert_certificate_days"] * 86400


@pytest.mark.parametrize("port_key, path", [("prometheus_port", "/api/v1/status/buildinfo"),
                                            ("alertmanager_port", "/api/v2/status")])
def test_prometheus_and_alertmanager_ask_for_the_password(port_key, path):
    url = f"https://{values.monitor_host(CLUSTER).address}:{S[port_key]}{path}"
    assert requests.get(url, verify=CA, timeout=5).status_code == 401
    assert requests.get(url, verify=CA, timeout=5, auth=(USER, PASSWORD + "x")).status_code == 401
    assert requests.get(url, verify=CA, timeout=5, auth=(USER, PASSWORD)).status_code == 200


def exporter_endpoints() -> list[tuple[str, str, int]]:
    """(node, address, port) of every exporter with a password."""
    found = [(n.name, n.address, S["node_exporter_port"]) for n in CLUSTER.nodes]
    for node in CLUSTER.patroni:
        found += [(node.name, node.address, S["postgres_exporter_port"]),
                  (node.name, node.address, S["haproxy_metrics_port"])]
    if exporters.has_pgbackrest_exporter(CLUSTER):
        found += [(n.name, n.address, S["pgbackrest_exporter_port"]) for n in CLUSTER.backup]
    return found


@pytest.mark.parametrize("node, address, port", exporter_endpoints(), ids=lambda v: str(v))
def test_each_exporter_asks_for_the_password(ssh_config, node, address, port):
    via = values.monitor_host(CLUSTER).name

    def get(login=None):
        return helpers.https_get_through(ssh_config, via, address, port, "/metrics", CA, login=login)

    assert " 401 " in get() + " "
    assert " 401 " in get((USER, PASSWORD + "x")) + " "
    assert get((USER, PASSWORD)).startswith("HTTP/1.1 200")


def test_metrics_tell_the_roles_patroni_reports():
    leader, replicas = pg_helpers.roles()
    primaries = {s["metric"]["instance"] for s in api.query(CLUSTER, "pgha_postgres_primary == 1")}
    streaming = {s["metric"]["instance"] for s in api.query(CLUSTER, "pgha_postgres_streaming == 1")}
    assert primaries == {leader.name}
    assert streaming == {r.name for r in replicas}
    etcd_leaders = api.query(CLUSTER, "sum(etcd_server_is_leader)")
    assert etcd_leaders and etcd_leaders[0]["value"] == 1


def test_pgha_status_reports_no_firing_alert():
    result = helpers.pgha("status", timeout=120)
    assert "alerts: none firing" in result.stdout, helpers.tail(result.stdout)


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Plain HTTP on 127.0.0.1 to Prometheus over TLS with the password: the browser needs
    neither the CA nor the password on its command line."""

    def do_GET(self):  # noqa: N802 - http.server's name
        upstream = requests.get(api.base_url(CLUSTER) + self.path, verify=CA, timeout=10, auth=(USER, PASSWORD))
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", "text/html"))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_url():
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{proxy.server_address[1]}/consoles/{server.OVERVIEW_PAGE}"
    proxy.shutdown()


def chromium(*args: str) -> str:
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (make browser)"
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--window-size=1280,1500", *args], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_overview_page_renders_in_a_real_browser(page_url):
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(f"--screenshot={SCREENSHOT}", page_url)
    assert SCREENSHOT.stat().st_size > 20_000  # a drawn page, not a blank one
    dom = chromium("--dump-dom", page_url)
    leader, replicas = pg_helpers.roles()
    tiles = {member: kind for kind, member in re.findall(r'<div class="tile (\w+)" data-member="([^"]+)"', dom)}
    assert tiles == {leader.patroni_name: "primary", **{r.patroni_name: "replica" for r in replicas}}
    assert dom.count('<b class="ok">yes</b>') == len(replicas)  # each replica streams
    assert "replication lag" in dom and "transactions/s" in dom and "connections" in dom
    assert re.search(r'WAL archiving \(primary\)</th><td>\s*<span class="ok">working', dom)
    if CLUSTER.backup:
        assert re.search(r"newest full backup</th><td>[^<]+ ago", dom)
    assert re.search(r'<table id="alerts">.*?class="ok">none<', dom, re.S)
    assert dom.count("raft leader") == 1
