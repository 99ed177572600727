"""pgha.etcd.facts: parsing the recorded etcdctl 3.4 output (member list, endpoint health) and
the member state. No etcd runs here."""

from __future__ import annotations

import json
import subprocess

import pytest

from pgha.etcd import values as etcd_config
from pgha.etcd.facts import EtcdHealth, EtcdMembers, EtcdNodeState

from .conftest import recorded

TWO = "etcd1=http://10.0.3.64:2380,etcd2=http://10.0.3.78:2380"


def etcd_outputs() -> tuple[list[str], list[str]]:
    """`member list -w json`, then `endpoint health --cluster -w json`, as recorded."""
    members, health = recorded("etcd-3.4-outputs.txt").strip().split("\n\n")
    return members.splitlines(), health.splitlines()


RECORDED_MEMBERS = [
    {"ID": "17b68cd79c2ca063", "name": "etcd1", "peerURLs": ["http://10.0.3.64:2380"],
     "clientURLs": ["http://10.0.3.64:2379"]},
    {"ID": "2439c6893870111d", "name": "etcd2", "peerURLs": ["http://10.0.3.78:2380"],
     "clientURLs": ["http://10.0.3.78:2379"]},
    {"ID": "e6a88cb0033c18d2", "name": "etcd3", "peerURLs": ["http://10.0.3.32:2380"],
     "clientURLs": ["http://10.0.3.32:2379"]},
]


# --- EtcdMembers ---------------------------------------------------------------------------------


def test_recorded_member_list():
    members, _ = etcd_outputs()
    assert EtcdMembers().process(members) == RECORDED_MEMBERS


def test_member_ids_are_hex_as_etcdctl_member_remove_wants_them():
    members, _ = etcd_outputs()
    ids = [m["ID"] for m in EtcdMembers().process(members)]
    assert ids[0] == "17b68cd79c2ca063"
    assert int(ids[0], 16) == 1708707966299709539
    assert int(ids[2], 16) == 16620689112407218386  # above 2**63: no precision lost


def test_members_are_sorted_by_name():
    members, _ = etcd_outputs()
    data = json.loads("\n".join(members))
    data["members"].reverse()
    assert [m["name"] for m in EtcdMembers().process([json.dumps(data)])] == ["etcd1", "etcd2", "etcd3"]


def test_member_added_but_not_started_yet():
    # after `etcdctl member add`, before the new member starts: no name, no client URLs
    data = {
        "header": {"cluster_id": 1, "member_id": 2, "raft_term": 4},
        "members": [
            {"ID": 1708707966299709539, "name": "etcd1", "peerURLs": ["http://10.0.3.64:2380"],
             "clientURLs": ["http://10.0.3.64:2379"]},
            {"ID": 255, "peerURLs": ["http://10.0.3.32:2380"]},
        ],
    }
    members = EtcdMembers().process(json.dumps(data, indent=2).splitlines())
    assert members[0] == {"ID": "ff", "name": "", "peerURLs": ["http://10.0.3.32:2380"], "clientURLs": []}
    assert members[1]["name"] == "etcd1"


@pytest.mark.parametrize("output", [[], [""], ["Error: context deadline exceeded"]])
def test_member_list_without_an_answer(output):
    assert EtcdMembers().process(output) is None


def test_member_list_command():
    command = EtcdMembers().command(endpoints="http://10.0.3.64:2379,http://10.0.3.78:2379")
    assert "ETCDCTL_API=3 etcdctl" in command
    assert "--endpoints=http://10.0.3.64:2379,http://10.0.3.78:2379" in command
    assert "member list -w json" in command
    assert command.endswith("|| true")


# --- EtcdHealth ------------------------------------------------------------------------------


def test_recorded_health():
    _, health = etcd_outputs()
    assert EtcdHealth().process(health) == {
        "http://10.0.3.32:2379": True,
        "http://10.0.3.64:2379": True,
        "http://10.0.3.78:2379": True,
    }


def test_health_with_one_unhealthy_member():
    _, health = etcd_outputs()
    entries = json.loads("\n".join(health))
    entries[0] = {
        "endpoint": "http://10.0.3.32:2379",
        "health": False,
        "took": "5.000931842s",
        "error": "context deadline exceeded",
    }
    assert EtcdHealth().process([json.dumps(entries)]) == {
        "http://10.0.3.32:2379": False,
        "http://10.0.3.64:2379": True,
        "http://10.0.3.78:2379": True,
    }


def test_health_entry_without_health_key_is_unhealthy():
    assert EtcdHealth().process(['[{"endpoint": "http://10.0.3.32:2379", "error": "x"}]']) == {
        "http://10.0.3.32:2379": False
    }


@pytest.mark.parametrize("output", [[], ["{\"endpoint\""]])
def test_health_without_an_answer(output):
    assert EtcdHealth().process(output) == {}


# --- EtcdNodeState ---------------------------------------------------------------------------


def test_node_state_with_data_and_config():
    lines = [
        "has_data: yes",
        "initial-cluster: etcd1=http://10.0.3.64:2380,etcd2=http://10.0.3.78:2380",
        "initial-cluster-state: 'new'",
    ]
    assert EtcdNodeState().process(lines) == {
        "has_data": True,
        "initial_cluster": TWO,
        "initial_cluster_state": "new",
        "tls": False,
    }


def test_node_state_with_double_quotes():
    assert EtcdNodeState().process(['initial-cluster-state: "existing"'])["initial_cluster_state"] == "existing"


def test_node_state_of_empty_output():
    empty = {"has_data": False, "initial_cluster": None, "initial_cluster_state": None, "tls": False}
    assert EtcdNodeState().process([]) == empty
    assert EtcdNodeState.default() == empty


def test_node_state_config_without_data():
    lines = ["initial-cluster: " + TWO, "initial-cluster-state: 'new'", "client-transport-security:"]
    assert EtcdNodeState().process(lines) == {
        "has_data": False,
        "initial_cluster": TWO,
        "initial_cluster_state": "new",
        "tls": True,
    }


def run_node_state_command(data_dir, config_file) -> list[str]:
    command = EtcdNodeState().command(data_dir=str(data_dir), config_file=str(config_file))
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_node_state_command_on_a_rendered_config(cluster, tmp_path):
    # the real command (sh, test, grep) on a member's rendered file and data directory
    plan = etcd_config.plan(cluster, {})
    config_file = tmp_path / "etcd.conf.yml"
    config_file.write_text(etcd_config.config_text(cluster, cluster.node("etcd1"), plan["etcd1"]), encoding="utf-8")
    data_dir = tmp_path / "pgha"
    assert EtcdNodeState().process(run_node_state_command(data_dir, config_file)) == {
        "has_data": False,
        "initial_cluster": plan["etcd1"]["initial_cluster"],
        "initial_cluster_state": "new",
        "tls": True,
    }
    (data_dir / "member").mkdir(parents=True)
    lines = run_node_state_command(data_dir, config_file)
    assert lines[0] == "has_data: yes"
    assert len(lines) == 4  # initial-cluster-token is not picked up
    assert EtcdNodeState().process(lines)["has_data"] is True


def test_node_state_command_before_any_install(tmp_path):
    assert run_node_state_command(tmp_path / "none", tmp_path / "none.yml") == []


# --- EtcdAuth and the etcdctl command line ------------------------------------------------------

from pgha.etcd.facts import EtcdAuth, make_etcdctl_command, prefix_end  # noqa: E402

LOGIN = {"user": "root", "password_file": "/etc/etcd/.root-password"}


def test_recorded_auth_state():
    # etcd 3.5 (trixie), auth on: root and patroni exist, "nobody" does not
    lines = recorded("etcd-3.5-auth-outputs.txt").splitlines()
    assert EtcdAuth().process(lines) == {
        "enabled": True,
        "users": {"root": ["root"], "patroni": ["patroni"], "nobody": None},
        "roles": {"patroni": [["readwrite", "/service/my-ha-cluster/", "/service/my-ha-cluster0"]], "nobody": None},
    }


def test_auth_state_of_a_cluster_deployed_before_authentication():
    lines = ["== auth off", "== user root", "== role patroni"]
    assert EtcdAuth().process(lines) == {"enabled": False, "users": {"root": None}, "roles": {"patroni": None}}


def test_auth_state_when_etcd_does_not_answer():
    # neither "off" nor "user name is empty": unknown, so auth_enabled tries (and fails loudly)
    assert EtcdAuth().process(["== user root"]) == {"enabled": None, "users": {"root": None}, "roles": {}}


def test_auth_command_asks_anonymously_only_whether_auth_is_on():
    command = EtcdAuth().command(endpoints="https://127.0.0.1:2379", users=["root"], roles=["patroni"], **LOGIN)
    first, *rest = command.split("; echo ")
    assert "ETCDCTL_USER" not in first and "user list" in first
    assert all('ETCDCTL_USER=root:"$(cat /etc/etcd/.root-password 2>/dev/null)" ' in part for part in rest[:2])


def test_etcdctl_logs_in_from_a_file_and_checks_the_ca():
    command = make_etcdctl_command("https://127.0.0.1:2379", "get", "/k", **LOGIN)
    assert command == (
        'ETCDCTL_USER=root:"$(cat /etc/etcd/.root-password 2>/dev/null)" ETCDCTL_API=3 etcdctl '
        "--dial-timeout=3s --command-timeout=5s --cacert=/etc/pgha/tls/ca.crt "
        "--endpoints=https://127.0.0.1:2379 get /k"
    )
    assert "--user" not in command and "--password" not in command and "env " not in command


def test_etcdctl_of_a_plaintext_member_needs_no_ca():
    # a member still running the configuration of a version before TLS
    assert make_etcdctl_command("http://127.0.0.1:2379", "member", "list") == (
        "ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=5s --endpoints=http://127.0.0.1:2379 member list"
    )


def test_etcdctl_login_reads_the_password_in_the_shell(tmp_path):
    # the shell expands the file into etcdctl's environment: the password is in no argv
    password = tmp_path / "pw"
    password.write_text("s3cret-Value\n")
    command = make_etcdctl_command("https://127.0.0.1:2379", "x", user="root", password_file=str(password))
    probe = command.split(" ETCDCTL_API=3 ")[0] + ' sh -c \'printf %s "$ETCDCTL_USER"\''
    assert subprocess.run(["sh", "-c", probe], capture_output=True, text=True).stdout == "root:s3cret-Value"
    assert "s3cret" not in command


def test_prefix_end_is_what_etcd_stores_for_a_prefix_grant():
    assert prefix_end("/service/my-ha-cluster/") == "/service/my-ha-cluster0"
