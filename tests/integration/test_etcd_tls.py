"""etcd's TLS and authentication, on the real cluster: plaintext clients and peers are refused,
a client must log in, Patroni's user reads and writes its cluster's keys and nothing else,
the passwords live in 0600 files only, and Patroni and `pgha status` still work.

Nothing here changes the cluster: the keys it writes are its own and deleted again.
"""

from __future__ import annotations

import json
import uuid

import helpers
import pytest
import requests
import yaml
from conftest import CLUSTER, ETCD_NAMES, PATRONI_NAMES

from pgha.etcd import values as etcd
from pgha.etcd.facts import make_etcdctl_command
from pgha.patroni import rest
from pgha.pki.values import CA_FILE

CLIENT_PORT = CLUSTER.settings["etcd_client_port"]
PEER_PORT = CLUSTER.settings["etcd_peer_port"]
PATRONI_USER = CLUSTER.settings["etcd_patroni_user"]
OWN_PREFIX = etcd.patroni_prefix(CLUSTER)
PLAIN = f"http://127.0.0.1:{CLIENT_PORT}"


def key(prefix: str) -> str:
    return f"{prefix}pgha-test-{uuid.uuid4().hex[:12]}"


def as_patroni(host, *args: str):
    return helpers.etcdctl(host, *args, user=PATRONI_USER)


@pytest.fixture(scope="module")
def member(etcd_hosts):
    return etcd_hosts[ETCD_NAMES[0]]


# --- TLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_a_plaintext_client_is_refused(etcd_hosts, name):
    result = etcd_hosts[name].run(make_etcdctl_command(PLAIN, "endpoint", "health", dial_timeout=2, command_timeout=3))
    assert result.rc != 0, result.stdout
    node = CLUSTER.node(name)
    try:
        answer = requests.get(f"http://{node.address}:{CLIENT_PORT}/health", timeout=3).text
    except requests.RequestException as error:  # refused by TLS or by the firewall
        answer = str(error)
    assert '"health"' not in answer, answer


@pytest.fixture(scope="module")
def patroni_node(patroni_hosts):
    """A Patroni node: allowed to reach etcd's client port, and it has curl (the deploy
    installs it there for its own facts), which an etcd member need not have."""
    return patroni_hosts[PATRONI_NAMES[0]]


@pytest.mark.parametrize("target", CLUSTER.etcd, ids=lambda n: n.name)
def test_a_client_that_does_not_trust_the_cluster_ca_gets_no_answer(patroni_node, target):
    url = f"https://{target.address}:{CLIENT_PORT}/health"
    result = patroni_node.run(f"curl -s -m 3 {url}")
    assert result.rc == 60, (result.rc, result.stdout)  # the server's certificate is not trusted
    ok = patroni_node.run(f"curl -s -m 3 --cacert {CA_FILE} {url}")
    assert json.loads(ok.stdout)["health"] == "true", ok.stdout


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_peers_talk_tls(etcd_hosts, name):
    members = helpers.member_list(etcd_hosts[name])
    assert members == helpers.expected_members(CLUSTER)
    assert all(url.startswith("https://") for m in members for url in m["peerURLs"] + m["clientURLs"]), members


def test_the_peer_port_wants_a_certificate_of_the_cluster_ca(ssh_config, cluster):
    """From another member (the firewall lets only members reach the peer port), through an
    SSH tunnel to it: nothing on the node but sshd is needed."""
    other, target = cluster.etcd[1], cluster.etcd[0]
    ca, files = cluster.tls[target.name].ca, cluster.tls[other.name]

    def get(*certificate):
        return helpers.https_get_through(ssh_config, other.name, target.address, PEER_PORT, "/version", ca, *certificate)

    without_certificate = get()
    assert without_certificate.startswith("tls:") and "CERTIFICATE" in without_certificate.upper(), without_certificate
    with_certificate = get(files.cert, files.key)
    assert with_certificate.startswith("HTTP/1.1 200"), with_certificate


# --- authentication -----------------------------------------------------------------------------


def test_a_client_without_credentials_is_refused(member):
    result = helpers.etcdctl(member, "get", OWN_PREFIX, "--prefix", "--keys-only", user=None)
    assert result.rc != 0
    assert "user name is empty" in result.stderr, result.stderr


def test_a_wrong_password_is_refused(member):
    wrong = make_etcdctl_command(etcd.local_endpoint(CLUSTER), "get", OWN_PREFIX, "--prefix", "--keys-only")
    result = member.run(f"ETCDCTL_USER={PATRONI_USER}:not-the-password {wrong}")
    assert result.rc != 0
    assert "authentication failed" in result.stderr, result.stderr


def test_patroni_user_reads_and_writes_its_cluster_keys(member):
    own = key(OWN_PREFIX)
    try:
        assert as_patroni(member, "put", own, "x").rc == 0
        assert as_patroni(member, "get", own, "--print-value-only").stdout.strip() == "x"
        # what Patroni itself wrote: its leader key and member keys
        keys = as_patroni(member, "get", OWN_PREFIX, "--prefix", "--keys-only").stdout.split()
        assert f"{OWN_PREFIX}leader" in keys and any(k.startswith(f"{OWN_PREFIX}members/") for k in keys), keys
    finally:
        as_patroni(member, "del", own)


@pytest.mark.parametrize("prefix", [helpers.TEST_KEY_PREFIX, f"{etcd.PATRONI_NAMESPACE}another-cluster/",
                                    OWN_PREFIX.rstrip("/") + "-other/"])
def test_patroni_user_cannot_read_or_write_elsewhere(member, prefix):
    other = key(prefix)
    try:
        assert helpers.etcdctl(member, "put", other, "root's").rc == 0
        for args in (["put", other, "x"], ["get", other], ["del", other], ["get", "", "--prefix", "--keys-only"]):
            result = as_patroni(member, *args)
            assert result.rc != 0 and "permission denied" in result.stderr, (args, result.stderr)
        assert helpers.get_key(member, other) == "root's"
    finally:
        helpers.etcdctl(member, "del", other)


def test_patroni_user_cannot_manage_etcd(member):
    # what only root may do, each harmless had it been allowed (a verification changes nothing)
    for args in (["user", "list"], ["role", "list"], ["user", "get", "root"]):
        result = as_patroni(member, *args)
        assert result.rc != 0 and "permission denied" in result.stderr, (args, result.stderr)


# --- where the passwords are ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_password_files_are_root_only(etcd_hosts, name):
    host = etcd_hosts[name]
    for user in (etcd.ROOT_USER, PATRONI_USER):
        for path in (etcd.password_file(user), etcd.wanted_password_file(user)):
            f = host.file(path)
            assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path


@pytest.mark.parametrize("name", ETCD_NAMES)
def test_no_password_in_etcd_config_or_command_lines(etcd_hosts, name):
    host = etcd_hosts[name]
    secrets = [CLUSTER.secrets["etcd_root_password"], CLUSTER.secrets["etcd_patroni_password"]]
    config = host.file("/etc/etcd/etcd.conf.yml").content_string
    commands = host.check_output("ps -eo args")
    assert not any(s in config or s in commands for s in secrets)


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_patroni_logs_in_over_tls(patroni_hosts, name):
    host = patroni_hosts[name]
    f = host.file(f"/etc/patroni/{CLUSTER.node(name).patroni_name}.yml")
    assert (f.user, f.mode) == ("postgres", 0o600)
    dcs = yaml.safe_load(f.content_string)["etcd3"]
    assert (dcs["protocol"], dcs["username"]) == ("https", PATRONI_USER)
    assert host.file(CA_FILE).exists


# --- Patroni and the tools still work ---------------------------------------------------------------


@pytest.mark.parametrize("name", PATRONI_NAMES)
def test_patronictl_list(patroni_hosts, name):
    result = patroni_hosts[name].run("patronictl list -f json")
    assert result.rc == 0, result.stderr
    members = json.loads(result.stdout)
    assert sorted(m["Member"] for m in members) == sorted(n.patroni_name for n in CLUSTER.patroni)
    assert [m["Role"] for m in members].count("Leader") == 1, members


def test_pgha_status():
    result = helpers.pgha("status", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = rest.parse_summary(result.stdout)
    assert sorted(r["member"] for r in rows) == sorted(n.patroni_name for n in CLUSTER.patroni), result.stdout
    assert [r["role"] for r in rows].count("leader") == 1, result.stdout
