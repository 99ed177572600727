"""The etcd role's deploy steps: install, firewall, certificates, configure, bootstrap or
join, users and authentication, check."""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api.exceptions import DeployError

from pgha.cluster import Cluster, Node
from pgha.common import snapshot
from pgha.common.deploy import checked_file, install_packages_without_starting
from pgha.common.operations import absent, file_in_place, unit_running, unit_state
from pgha.common.step import step
from pgha.errors import EtcdPlanError
from pgha.etcd import operations as etcd_ops
from pgha.etcd import values
from pgha.etcd.facts import EtcdMembers, EtcdNodeState
from pgha.firewall.deploy import firewall as firewall_table
from pgha.pki.deploy import certificate
from pgha.rendering import render


def _states(cluster: Cluster) -> dict[str, dict]:
    """EtcdNodeState of every inventory member (data present, initial-* in its config)."""
    return {
        node.name: snapshot.get(EtcdNodeState, host=inventory.get_host(node.name), data_dir=values.DATA_DIR,
                                config_file=values.CONFIG_FILE)
        for node in cluster.etcd
    }


@step("etcd: install")
def install(cluster: Cluster):
    install_packages_without_starting("etcd", values.PACKAGES, cluster.settings["debian_release"])
    absent(name="etcd: no data of the package's default instance", path=values.PACKAGE_DEFAULT_DATA)


@step("etcd: firewall")
def firewall(cluster: Cluster):
    firewall_table("etcd", values.firewall(cluster), before=values.UNIT)


def password_files(cluster: Cluster, what: str, path) -> None:
    """A 0600 file of root's per etcd user, with its password from the secrets file."""
    for user in values.users(cluster):
        file_in_place(
            name=f"etcd: the password etcd user {user['name']} {what} (0600)",
            path=path(user["name"]),
            content=render(values.TEMPLATES / "password.j2", values.password(user)),
            mode="600",
        )


@step("etcd: configure")
def configure(cluster: Cluster, node: Node, plan):
    tls = certificate(cluster, node, values.SERVICE, user=values.SERVICE, group=values.SERVICE)
    defaults = file_in_place(
        name="etcd: /etc/default/etcd points the service at the config file",
        path=values.DEFAULTS_FILE,
        content=render(values.TEMPLATES / "default-etcd.j2", values.defaults_file(cluster)),
    )
    config = checked_file("etcd", values.CONFIG_FILE, values.config_text(cluster, node, plan[node.name]),
                          validate=None, user="root", group="root", mode="644")
    password_files(cluster, "must have", values.wanted_password_file)
    return [defaults, config, *tls]


@step("etcd: start")
def start(cluster: Cluster, node: Node, plan, changes, was_tls: bool):
    # Steps are registered on every member and skipped where they do not apply: pyinfra
    # orders operations host by host, so this keeps "member add" before any start and
    # every start before the check.
    joins = plan[node.name]["joins"]
    running_members = [n for n in cluster.etcd if not plan[n.name]["joins"] and n is not node]
    etcd_ops.member_added(
        name="etcd: add the new member to the running cluster",
        member=node.name,
        peer_url=values.peer_url(cluster, node),
        endpoints=values.client_endpoints(cluster, running_members),
        # a newcomer has no current password file yet: the secrets file's is etcd's
        user=values.ROOT_USER,
        password_file=values.wanted_password_file(values.ROOT_USER),
        _if=lambda: joins,
    )
    was_running, _ = unit_state(values.UNIT)
    unit_running(name="etcd: enabled and running", unit=values.UNIT)
    # one member at a time, so that the cluster keeps its quorum; reached as it runs now
    # (plaintext when this deploy moves it to TLS)
    etcd_ops.restarted(
        name="etcd: restart (configuration or certificate changed)",
        member=node.name,
        peer_url=values.peer_url(cluster, node),
        endpoints=values.local_endpoint(cluster, tls=was_tls),
        user=values.ROOT_USER, password_file=values.ROOT_PASSWORD_FILE,
        _if=lambda: was_running and any(c.did_change() for c in changes),
        _serial=True,
    )


@step("etcd: users and authentication")
def authentication(cluster: Cluster, node: Node):
    first = lambda: node is cluster.etcd[0]  # noqa: E731
    endpoint = values.local_endpoint(cluster)
    asked = values.auth_asked(cluster)
    for role, grants in values.roles(cluster).items():
        etcd_ops.role_present(
            name=f"etcd: role {role} reads and writes {', '.join(p for _, p in grants)} only",
            role=role, grants=grants, endpoints=endpoint, user=values.ROOT_USER,
            password_file=values.ROOT_PASSWORD_FILE, asked=asked, _if=first,
        )
    for user in values.users(cluster):
        name = user["name"]
        etcd_ops.user_present(
            name=f"etcd: user {name} (roles {', '.join(user['roles'])}) with its password from the secrets file",
            username=name, roles=user["roles"], wanted_file=values.wanted_password_file(name),
            current_file=values.password_file(name), endpoints=endpoint, user=values.ROOT_USER,
            password_file=values.ROOT_PASSWORD_FILE, asked=asked, _if=first,
        )
    # etcd has them now (on the first member, user_present has copied them already)
    password_files(cluster, "has (etcdctl logs in with it)", values.password_file)
    etcd_ops.auth_enabled(name="etcd: authentication on", endpoints=endpoint, user=values.ROOT_USER,
                          password_file=values.ROOT_PASSWORD_FILE, asked=asked, _if=first)


@step("etcd: remove members missing from the inventory")
def remove_extra_members(cluster: Cluster, node: Node):
    members = snapshot.get(EtcdMembers, endpoints=values.local_endpoint(cluster), user=values.ROOT_USER,
                           password_file=values.ROOT_PASSWORD_FILE) or []
    extra = values.extra_members(cluster, members)
    names = ", ".join(m["name"] or m["ID"] for m in extra)
    if extra and not cluster.settings["etcd_allow_member_removal"]:
        raise DeployError(
            f"etcd: the running cluster has members that the inventory does not list: {names}. "
            "Add them back to the inventory, or set etcd_allow_member_removal = True to remove "
            "them from the cluster"
        )
    etcd_ops.members_removed(
        name="etcd: remove the members the inventory no longer lists (etcd_allow_member_removal)",
        peer_urls=[url for m in extra for url in m["peerURLs"]],
        endpoints=values.local_endpoint(cluster),
        user=values.ROOT_USER, password_file=values.ROOT_PASSWORD_FILE,
        _if=lambda: bool(extra) and node is cluster.etcd[0],
    )


@step("etcd: check")
def check(cluster: Cluster, node: Node):
    etcd_ops.cluster_healthy(
        name="etcd: every member healthy, all agree on the member list",
        expected={n.name: values.client_url(cluster, n) for n in cluster.etcd},
        endpoints=values.local_endpoint(cluster),
        user=values.ROOT_USER, password_file=values.ROOT_PASSWORD_FILE,
        timeout=cluster.settings["etcd_check_timeout"],
        health=node is cluster.etcd[0],
    )


def deploy_etcd(cluster: Cluster):
    """The whole role on the current host, if it is an etcd member."""
    if "etcd" not in host.groups:
        return
    node = cluster.node(host.name)
    states = _states(cluster)
    try:
        plan = values.plan(cluster, states)
    except EtcdPlanError as error:
        raise DeployError(str(error)) from error
    install(cluster)
    firewall(cluster)
    remove_extra_members(cluster, node)
    changes = configure(cluster, node, plan)
    start(cluster, node, plan, changes, was_tls=states[node.name]["tls"])
    authentication(cluster, node)
    check(cluster, node)
