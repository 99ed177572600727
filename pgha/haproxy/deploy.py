"""The HAProxy role's deploy steps on every Patroni node: install, validated configuration,
reload on change."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from pgha.common.deploy import install_packages_without_starting, running_and_refreshed, validated_template
from pgha.firewall.deploy import firewall as firewall_table
from pgha.haproxy import values


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
def start(config):
    running_and_refreshed("haproxy", "haproxy", config.did_change)


@deploy("haproxy: firewall")
def firewall(cluster):
    firewall_table("haproxy", values.firewall(cluster), before="haproxy.service")


def deploy_haproxy(cluster):
    """The whole role on the current host, if it is a Patroni member."""
    if "patroni" not in host.groups:
        return
    install(cluster)
    firewall(cluster)
    start(configure(cluster))
