"""pgha.etcd and templates/etcd/: the bootstrap/join plan and each member's rendered files.

No etcd runs here: the member states are what the EtcdNodeState fact would report.
"""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from pgha.errors import EtcdPlanError
from pgha.etcd import values as etcd_config
from pgha.etcd.facts import EtcdMembers, EtcdNodeState
from pgha.etcd.values import client_endpoints, extra_members, plan
from pgha.releases import RELEASES

from .conftest import ETCD_NODES, cluster_with, recorded, render

THREE = "etcd1=https://10.0.3.64:2380,etcd2=https://10.0.3.78:2380,etcd3=https://10.0.3.32:2380"
TWO = "etcd1=https://10.0.3.64:2380,etcd2=https://10.0.3.78:2380"

CONFIG_KEYS = {
    "name",
    "data-dir",
    "listen-peer-urls",
    "listen-client-urls",
    "initial-advertise-peer-urls",
    "advertise-client-urls",
    "listen-metrics-urls",  # with a monitoring host
    "client-transport-security",
    "peer-transport-security",
    "initial-cluster",
    "initial-cluster-token",
    "initial-cluster-state",
    "enable-grpc-gateway",
    "enable-v2",
    "logger",
    "log-outputs",
}


def two_member_cluster(groups, group_data):
    """The inventory with etcd1 and etcd2 only (as before a scale-out)."""
    groups["etcd"] = [entry for entry in groups["etcd"] if entry[0] in ("etcd1", "etcd2")]
    return cluster_with(groups, group_data, etcd_allow_even_members=True)


def with_data(initial_cluster: str | None, state: str | None = "new") -> dict:
    return {"has_data": True, "initial_cluster": initial_cluster, "initial_cluster_state": state}


def without_data() -> dict:
    return EtcdNodeState.default()


def render_config(cluster, name: str, the_plan: dict) -> str:
    node = cluster.node(name)
    return etcd_config.config_text(cluster, node, the_plan[name])


def state_from_file(text: str, has_data: bool) -> dict:
    """What EtcdNodeState reads from a member: its command greps these lines of the file."""
    lines = ["has_data: yes"] if has_data else []
    lines += [line for line in text.splitlines() if re.match(r"^(initial-cluster(-state)?|client-transport-security):", line)]
    return EtcdNodeState().process(lines)


# --- plan(): bootstrap ----------------------------------------------------------------------


def test_fresh_three_member_cluster_bootstraps_together(cluster):
    expected = {"initial_cluster": THREE, "initial_cluster_state": "new", "joins": False}
    assert plan(cluster, {}) == {"etcd1": expected, "etcd2": expected, "etcd3": expected}


def test_fresh_cluster_with_default_fact_states(cluster):
    states = {name: without_data() for name in ETCD_NODES}
    result = plan(cluster, states)
    assert {name: p["initial_cluster"] for name, p in result.items()} == {
        "etcd1": THREE,
        "etcd2": THREE,
        "etcd3": THREE,
    }
    assert {p["initial_cluster_state"] for p in result.values()} == {"new"}
    assert not any(p["joins"] for p in result.values())


def test_leftover_config_without_data_is_rewritten(cluster):
    # a bootstrap that failed before any member wrote data: the files' 2-member initial-cluster
    # is not kept, every member bootstraps the inventory's 3
    states = {name: {**without_data(), "initial_cluster": TWO, "initial_cluster_state": "new"} for name in ETCD_NODES}
    assert {p["initial_cluster"] for p in plan(cluster, states).values()} == {THREE}


def test_initial_cluster_uses_the_peer_port(groups, group_data):
    cluster = cluster_with(groups, group_data, etcd_peer_port=12380)
    assert plan(cluster, {})["etcd1"]["initial_cluster"] == (
        "etcd1=https://10.0.3.64:12380,etcd2=https://10.0.3.78:12380,etcd3=https://10.0.3.32:12380"
    )


def test_two_member_inventory(groups, group_data):
    cluster = two_member_cluster(groups, group_data)
    assert [n.name for n in cluster.etcd] == ["etcd1", "etcd2"]
    expected = {"initial_cluster": TWO, "initial_cluster_state": "new", "joins": False}
    assert plan(cluster, {}) == {"etcd1": expected, "etcd2": expected}


# --- plan(): scale-out ------------------------------------------------------------------------


def scale_out_states() -> dict:
    return {"etcd1": with_data(TWO), "etcd2": with_data(TWO), "etcd3": without_data()}


def test_scale_out_third_member_joins_existing(cluster):
    result = plan(cluster, scale_out_states())
    assert result["etcd3"] == {"initial_cluster": THREE, "initial_cluster_state": "existing", "joins": True}


def test_scale_out_running_members_keep_their_bootstrap_values(cluster):
    result = plan(cluster, scale_out_states())
    keep = {"initial_cluster": TWO, "initial_cluster_state": "new", "joins": False}
    assert result["etcd1"] == keep
    assert result["etcd2"] == keep


def test_scale_out_leaves_the_running_members_files_unchanged(groups, group_data):
    two = two_member_cluster(dict(groups), group_data)
    three = cluster_with(groups, group_data)
    two_plan = plan(two, {})
    three_plan = plan(three, scale_out_states())
    for name in ("etcd1", "etcd2"):
        assert render_config(three, name, three_plan) == render_config(two, name, two_plan)


def test_scale_out_from_the_files_the_two_member_deploy_wrote(groups, group_data):
    # the states come from the files rendered by the 2-member deploy, read as the fact reads them
    two = two_member_cluster(dict(groups), group_data)
    two_plan = plan(two, {})
    states = {name: state_from_file(render_config(two, name, two_plan), has_data=True) for name in ("etcd1", "etcd2")}
    states["etcd3"] = without_data()
    three = cluster_with(groups, group_data)
    result = plan(three, states)
    assert result["etcd1"]["initial_cluster"] == TWO
    assert result["etcd3"]["initial_cluster"] == THREE
    assert result["etcd3"]["initial_cluster_state"] == "existing"


def test_plan_is_stable_once_the_new_member_has_joined(cluster):
    # run N+1: every member has data; each file is rendered again from what it holds
    first = plan(cluster, scale_out_states())
    files = {name: render_config(cluster, name, first) for name in ETCD_NODES}
    states = {name: state_from_file(text, has_data=True) for name, text in files.items()}
    second = plan(cluster, states)
    for name in ETCD_NODES:
        assert render_config(cluster, name, second) == files[name]
        assert second[name]["joins"] is False
    assert second["etcd3"]["initial_cluster_state"] == "existing"


def test_joining_member_that_already_has_data_is_not_a_newcomer(cluster):
    # etcd3 started and wrote data after `member add`, but the run failed before the end
    states = {**scale_out_states(), "etcd3": with_data(THREE, "existing")}
    result = plan(cluster, states)
    assert result["etcd3"] == {"initial_cluster": THREE, "initial_cluster_state": "existing", "joins": False}


def test_two_newcomers_at_once_are_refused(cluster):
    states = {"etcd1": with_data("etcd1=https://10.0.3.64:2380"), "etcd2": without_data(), "etcd3": without_data()}
    with pytest.raises(EtcdPlanError) as info:
        plan(cluster, states)
    message = str(info.value)
    assert "etcd2" in message and "etcd3" in message
    assert "etcd1" not in message
    assert "2 new members" in message
    assert "one member per deploy run" in message


# --- rendered etcd.conf.yml ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ETCD_NODES))
def test_rendered_config_parses_with_the_member_values(cluster, name):
    address = ETCD_NODES[name]
    doc = yaml.safe_load(render_config(cluster, name, plan(cluster, {})))
    assert set(doc) == CONFIG_KEYS
    assert doc["name"] == name
    assert doc["data-dir"] == "/var/lib/etcd/pgha"
    assert doc["listen-peer-urls"] == f"https://{address}:2380"
    client_urls = doc["listen-client-urls"].split(",")
    assert "https://127.0.0.1:2379" in client_urls
    assert f"https://{address}:2379" in client_urls
    assert len(client_urls) == 2
    assert doc["initial-advertise-peer-urls"] == f"https://{address}:2380"
    assert doc["advertise-client-urls"] == f"https://{address}:2379"
    assert doc["initial-cluster"] == THREE
    assert doc["initial-cluster-token"] == "patroni"
    assert doc["initial-cluster-state"] == "new"
    assert doc["enable-grpc-gateway"] is True


def test_rendered_config_of_a_joining_member(cluster):
    doc = yaml.safe_load(render_config(cluster, "etcd3", plan(cluster, scale_out_states())))
    assert doc["initial-cluster"] == THREE
    assert doc["initial-cluster-state"] == "existing"


def test_rendered_config_follows_ports_and_token(groups, group_data):
    cluster = cluster_with(groups, group_data, etcd_client_port=12379, etcd_peer_port=12380, etcd_cluster_token="pg-prod")
    doc = yaml.safe_load(render_config(cluster, "etcd2", plan(cluster, {})))
    assert doc["listen-client-urls"] == "https://127.0.0.1:12379,https://10.0.3.78:12379"
    assert doc["listen-peer-urls"] == "https://10.0.3.78:12380"
    assert doc["advertise-client-urls"] == "https://10.0.3.78:12379"
    assert doc["initial-cluster-token"] == "pg-prod"


def test_rendered_config_keeps_state_and_token_as_strings(groups, group_data):
    # a token YAML would read as a number or a boolean stays a string (it is quoted)
    cluster = cluster_with(groups, group_data, etcd_cluster_token="yes")
    doc = yaml.safe_load(render_config(cluster, "etcd1", plan(cluster, {})))
    assert doc["initial-cluster-token"] == "yes"
    assert doc["name"] == "etcd1"


def test_rendered_config_round_trips_through_the_node_state_fact(cluster):
    the_plan = plan(cluster, scale_out_states())
    state = state_from_file(render_config(cluster, "etcd3", the_plan), has_data=False)
    assert state == {"has_data": False, "initial_cluster": THREE, "initial_cluster_state": "existing", "tls": True}


def test_clients_and_peers_speak_tls_and_peers_show_a_certificate(cluster):
    doc = yaml.safe_load(render_config(cluster, "etcd1", plan(cluster, {})))
    assert doc["client-transport-security"] == {"cert-file": "/etc/pgha/tls/etcd.crt", "key-file": "/etc/pgha/tls/etcd.key"}
    # a trusted CA for clients would make etcd ask them for a certificate: they log in instead
    assert "trusted-ca-file" not in doc["client-transport-security"]
    assert doc["peer-transport-security"] == {
        "cert-file": "/etc/pgha/tls/etcd.crt",
        "key-file": "/etc/pgha/tls/etcd.key",
        "trusted-ca-file": "/etc/pgha/tls/ca.crt",
        "client-cert-auth": True,
    }
    urls = [doc["listen-peer-urls"], doc["initial-advertise-peer-urls"], doc["advertise-client-urls"],
            *doc["listen-client-urls"].split(","), *doc["initial-cluster"].replace("=", ",").split(",")[1::2]]
    assert all(url.startswith("https://") for url in urls), urls


def test_a_member_keeps_its_identity_when_its_peer_url_moves_to_https(cluster):
    # the member list of a cluster deployed before TLS: no member is "extra"
    members = [{"name": n, "ID": "1", "peerURLs": [f"http://{a}:2380"]} for n, a in ETCD_NODES.items()]
    assert etcd_config.extra_members(cluster, members) == []
    stranger = {"name": "old", "ID": "2", "peerURLs": ["http://10.0.3.99:2380"]}
    assert etcd_config.extra_members(cluster, members + [stranger]) == [stranger]


def test_users_and_the_patroni_role_prefix(cluster):
    users = etcd_config.users(cluster)
    assert [(u["name"], u["roles"]) for u in users] == [("root", ["root"]), ("patroni", ["patroni"])]
    assert [u["password"] for u in users] == [cluster.secrets["etcd_root_password"], cluster.secrets["etcd_patroni_password"]]
    # Patroni's keys: /service/<scope>/leader, /members/..., /config, ...
    assert etcd_config.roles(cluster) == {"patroni": [["readwrite", "/service/my-ha-cluster/"]]}
    assert etcd_config.password_file("root") == "/etc/etcd/.root-password"
    assert etcd_config.wanted_password_file("root") == "/etc/etcd/.root-password.wanted"


def test_rendered_config_is_yaml_after_its_header(cluster):
    text = render_config(cluster, "etcd1", plan(cluster, {}))
    assert text.startswith("# Managed by pgha (deploys/etcd.py)") and text.endswith("- stderr\n")
    assert yaml.safe_load(text)["peer-transport-security"]["client-cert-auth"] is True  # a boolean, not 'true'


# --- what etcd 3.4 (bookworm) and 3.5 (trixie) leave to their defaults: pinned, same file ---

# (key, value) the etcd of every supported release is given, whatever its defaults
PINNED = [
    ("enable-grpc-gateway", True),  # Patroni's etcd3 client uses the HTTP/JSON gateway
    ("enable-v2", False),
    ("logger", "zap"),  # 3.4's default capnslog is deprecated
    ("log-outputs", ["stderr"]),
]


@pytest.mark.parametrize("release", sorted(RELEASES))
@pytest.mark.parametrize(("key", "value"), PINNED, ids=[k for k, _ in PINNED])
def test_daemon_settings_are_pinned_for_every_release(groups, group_data, release, key, value):
    cluster = cluster_with(groups, group_data, debian_release=release)
    doc = yaml.safe_load(render_config(cluster, "etcd1", plan(cluster, {})))
    assert doc[key] == value


def test_every_release_renders_the_same_etcd_config(groups, group_data):
    rendered = {
        release: render_config(cluster, "etcd2", plan(cluster, {}))
        for release in RELEASES
        for cluster in [cluster_with(groups, group_data, debian_release=release)]
    }
    assert len(set(rendered.values())) == 1, rendered


def test_default_file_points_etcd_at_the_config_file():
    text = render("etcd/default-etcd.j2", etcd_config.defaults_file(None))
    assert 'DAEMON_ARGS="--config-file /etc/etcd/etcd.conf.yml"' in text.splitlines()
    value = [line for line in text.splitlines() if line.startswith("DAEMON_ARGS=")]
    assert len(value) == 1
    # systemd's EnvironmentFile drops the quotes; `ExecStart=/usr/bin/etcd $DAEMON_ARGS` then
    # splits the value into words
    (unquoted,) = shlex.split(value[0].partition("=")[2])
    assert unquoted.split() == ["--config-file", "/etc/etcd/etcd.conf.yml"]
    assert text.endswith("\n")


# --- extra_members, client_endpoints ------------------------------------------------------------


def recorded_members() -> list[dict]:
    first_block = recorded("etcd-3.4-outputs.txt").split("\n\n")[0]
    return EtcdMembers().process(first_block.splitlines())


def test_no_extra_member_when_the_cluster_matches_the_inventory(cluster):
    assert extra_members(cluster, recorded_members()) == []


def test_extra_member_is_one_whose_peer_url_is_not_in_the_inventory(cluster):
    stranger = {"ID": "abc123", "name": "etcd9", "peerURLs": ["https://10.0.3.99:2380"], "clientURLs": []}
    assert extra_members(cluster, recorded_members() + [stranger]) == [stranger]


def test_member_dropped_from_the_inventory_is_extra(groups, group_data):
    cluster = two_member_cluster(groups, group_data)
    extra = extra_members(cluster, recorded_members())
    assert [m["name"] for m in extra] == ["etcd3"]
    assert extra[0]["peerURLs"] == ["http://10.0.3.32:2380"]


def test_member_is_matched_by_peer_url_not_by_name(cluster):
    # same name as an inventory member but another address: it is not that member
    impostor = {"ID": "abc124", "name": "etcd1", "peerURLs": ["https://10.0.3.65:2380"], "clientURLs": []}
    assert extra_members(cluster, [impostor]) == [impostor]


def test_client_endpoints(cluster):
    assert client_endpoints(cluster) == "https://10.0.3.64:2379,https://10.0.3.78:2379,https://10.0.3.32:2379"
    subset = [cluster.node("etcd2"), cluster.node("etcd3")]
    assert client_endpoints(cluster, subset) == "https://10.0.3.78:2379,https://10.0.3.32:2379"


# --- the firewall of the etcd ports ---------------------------------------------------------


def test_firewall_lets_in_patroni_nodes_etcd_members_and_client_networks_only(cluster):
    sets = {s["name"]: s for s in etcd_config.firewall(cluster)["sets"]}
    assert sets["peers"]["elements"] == ["10.0.3.64", "10.0.3.78", "10.0.3.32"]
    assert sets["clients"]["elements"] == [
        "10.0.3.64", "10.0.3.78", "10.0.3.32", "10.0.3.141", "10.0.3.201", "10.0.3.68", "10.0.3.1/32",
    ]
    assert (sets["clients"]["ports"], sets["peers"]["ports"]) == ("2379", "2380")


def test_firewall_rules_render_and_replace_only_their_own_table(cluster):
    text = render("firewall/table.nft.j2", etcd_config.firewall(cluster))
    lines = [line.strip() for line in text.splitlines()]
    assert "flush ruleset" not in text  # other rules of the host stay
    assert lines.index("delete table inet pgha_etcd") < lines.index("table inet pgha_etcd {")
    assert "elements = { 10.0.3.64, 10.0.3.78, 10.0.3.32, 10.0.3.141, 10.0.3.201, 10.0.3.68, 10.0.3.1/32 }" in lines
    assert "elements = { 10.0.3.64, 10.0.3.78, 10.0.3.32 }" in lines
    assert "tcp dport 2379 ip saddr @clients accept" in lines
    assert "tcp dport 2380 ip saddr @peers accept" in lines
    assert "tcp dport { 2379, 2381 } ip saddr @monitoring accept" in lines  # the TLS probe, the metrics
    assert "tcp dport { 2379, 2380, 2381 } reject with tcp reset" in lines
    assert lines.index('iif "lo" accept') < lines.index("tcp dport { 2379, 2380, 2381 } reject with tcp reset")
