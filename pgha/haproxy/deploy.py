"""The HAProxy role's deploy steps on every Patroni node: install, validated configuration,
reload on change, the hold program."""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.operations import systemd

from pgha.cluster import Cluster
from pgha.common.deploy import checked_file, install_packages_without_starting, running_and_refreshed, scripts_directory
from pgha.common.operations import file_in_place
from pgha.common.step import step
from pgha.firewall.deploy import firewall as firewall_table
from pgha.haproxy import values
from pgha.pki import deploy as pki
from pgha.rendering import render


@step("haproxy: install")
def install(cluster: Cluster):
    install_packages_without_starting("haproxy", values.PACKAGES, cluster.settings["debian_release"])


@step("haproxy: configure")
def configure(cluster: Cluster):
    return checked_file("haproxy", values.CONFIG_FILE, values.config_text(cluster),
                        validate=lambda candidate: f"haproxy -c -q -f {candidate}",
                        user="root", group="haproxy", mode="640")


@step("haproxy: start")
def start(cluster: Cluster, changes, defer_reload: bool):
    """``defer_reload``: Patroni's REST API still answers plain HTTP (a cluster deployed
    before TLS) and would fail the new HTTPS health checks: pgha.rollout reloads HAProxy
    right after Patroni switches."""
    running_and_refreshed("haproxy", "haproxy", lambda: not defer_reload and pki.changed(changes)())


@step("haproxy: hold program and reload")
def hold_program(cluster: Cluster):
    scripts_directory("haproxy")
    file_in_place(name="haproxy: the program that keeps the members up while Patroni restarts paused",
                  path=values.HOLD_SCRIPT, content=values.HOLD_PROGRAM.read_bytes(), mode="755")
    file_in_place(name=f"haproxy: {values.HOLD_CONFIG} (the hold program's settings)", path=values.HOLD_CONFIG,
                  content=json.dumps(values.hold_settings(cluster), indent=2, sort_keys=True) + "\n", mode="644")
    dropin = file_in_place(name="haproxy: a reload keeps the servers' states (drop-in)", path=values.RELOAD_DROPIN,
                           content=render(values.TEMPLATES / "reload.conf.j2", values.reload_dropin()))
    systemd.daemon_reload(name="haproxy: systemd reload (drop-in)", _if=dropin.did_change)


@step("haproxy: firewall")
def firewall(cluster: Cluster):
    firewall_table("haproxy", values.firewall(cluster), before=values.UNIT)


def deploy_haproxy(cluster: Cluster, defer_reload: bool = False):
    """The whole role on the current host, if it is a Patroni member."""
    if "patroni" not in host.groups:
        return
    install(cluster)
    firewall(cluster)
    hold_program(cluster)  # before the first reload: it saves the servers' states
    certificate = pki.certificate(cluster, cluster.node(host.name), values.TLS_SERVICE, "root", "root", combined=True)
    start(cluster, certificate + [configure(cluster)], defer_reload)
