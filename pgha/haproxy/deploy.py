"""The HAProxy role's deploy steps on every Patroni node: install, validated configuration,
reload on change."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from pgha.common.deploy import (
    install_packages_without_starting,
    running_and_refreshed,
    scripts_directory,
    validated_template,
)
from pgha.firewall.deploy import firewall as firewall_table
from pgha.haproxy import values
from pgha.patroni.deploy import restapi_scheme_changes
from pgha.pki import deploy as pki


@deploy("haproxy: install")
def install(cluster):
    install_packages_without_starting("haproxy", ["haproxy", "nftables"], cluster.settings["debian_release"])


@deploy("haproxy: configure")
def configure(cluster):
    return validated_template(
        "haproxy",
        values.TEMPLATES / "haproxy.cfg.j2",
        live=values.CONFIG_FILE,
        validate=lambda candidate: f"haproxy -c -q -f {candidate}",
        user="root",
        group="haproxy",
        mode="640",
        config=values.config(cluster),
    )


@deploy("haproxy: start")
def start(cluster, changes):
    # A Patroni still answering plain HTTP (a cluster deployed before TLS) would fail the
    # new HTTPS health checks: the reload waits for the Patroni role's, which comes right
    # after Patroni's own (pgha.patroni.deploy.start)
    deferred = restapi_scheme_changes(cluster)
    running_and_refreshed("haproxy", "haproxy", lambda: not deferred and pki.changed(changes)())


@deploy("haproxy: hold script")
def hold_script(cluster):
    scripts_directory("haproxy")
    files.template(
        name="haproxy: the script that keeps the members up while Patroni restarts paused",
        src=str(values.TEMPLATES / "hold.py.j2"),
        dest=values.HOLD_SCRIPT,
        mode="755",
        config=values.hold_script(cluster),
    )


@deploy("haproxy: firewall")
def firewall(cluster):
    firewall_table("haproxy", values.firewall(cluster), before="haproxy.service")


def deploy_haproxy(cluster):
    """The whole role on the current host, if it is a Patroni member."""
    if "patroni" not in host.groups:
        return
    install(cluster)
    firewall(cluster)
    certificate = pki.certificate(cluster, cluster.node(host.name), values.TLS_SERVICE, "root", "root", combined=True)
    start(cluster, certificate + [configure(cluster)])
    hold_script(cluster)
