"""The lab on the LXC host: packages, the bridge, the base container and one clone per node."""

from __future__ import annotations

import socket
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, python, server

from pgha.errors import WaitTimeout
from pgha.waiting import wait_for
from pghalab import operations as lxc
from pghalab import values as lab
from pghalab.facts import LxcContainers

HOST_PACKAGES = [
    "lxc",
    "lxc-templates",
    "debootstrap",
    "distro-info",  # lxc-debian needs it to name the security suite right
    "dnsmasq-base",
    "rsync",
    "iptables",
    "openssh-client",
    "apt-cacher-ng",  # the containers' package cache (pghalab.values.package_cache)
]
SSH_WAIT_SECONDS = 120


@deploy("Install LXC")
def install():
    installed = host.get_fact(DebPackages)
    missing = [p for p in HOST_PACKAGES if p not in installed]
    apt.packages(
        name="Install LXC and its tools",
        packages=HOST_PACKAGES,
        no_recommends=True,
        update=bool(missing),  # refresh the lists only when something must be installed
    )


@deploy("Configure the lab network")
def network(cluster):
    s = cluster.settings
    defaults = files.put(
        name="Write /etc/default/lxc-net (bridge address and DHCP range)",
        src=StringIO(lab.lxc_net_defaults(s)),
        dest=str(lab.LXC_NET_DEFAULTS),
    )
    lxc.network(
        name=f"lxc-net serves {s['lab_bridge']} with DHCP {'-'.join(s['lab_dhcp_range'])}",
        bridge=s["lab_bridge"],
        gateway=s["lab_gateway"],
        dhcp_range=s["lab_dhcp_range"],
    )
    lxc.package_cache(name=f"the containers' package cache answers on {s['lab_package_cache_port']}",
                      port=s["lab_package_cache_port"])
    return defaults


@deploy("Build the base container")
def base_container(cluster):
    s = cluster.settings
    lxc.base_container(
        name=f"Base container {lab.base_container(s)} (Debian {s['debian_release']})",
        container=lab.base_container(s),
        release=s["debian_release"],
        packages=s["lab_base_packages"],
        recipe=lab.base_recipe(s["debian_release"], s["lab_base_packages"]),
        package_cache=lab.package_cache(s),
    )


def answers_ssh(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as conn:
            return conn.recv(4).startswith(b"SSH")
    except OSError:
        return False


def _wait_for_ssh(addresses: list[str], timeout: float = SSH_WAIT_SECONDS) -> None:
    pending = list(addresses)

    def all_answer() -> bool:
        pending[:] = [a for a in pending if not answers_ssh(a)]
        return not pending

    if not wait_for(all_answer, timeout, interval=0.5):
        raise WaitTimeout(f"no SSH answer after {timeout:.0f}s from {', '.join(pending)}")


@deploy("Build the lab containers")
def containers(cluster):
    s = cluster.settings
    existing = host.get_fact(LxcContainers)
    public_key = lab.SSH_KEY.with_suffix(".pub")
    started = []
    names = [lab.container(node) for node in cluster.nodes if lab.container(node)]
    lxc.clones(
        name=f"Clone {', '.join(names)} from {lab.base_container(s)}",
        containers=names,
        base=lab.base_container(s),
    )
    for node in cluster.nodes:
        name = lab.container(node)
        if not name:
            continue
        root = lab.rootfs(name)
        # what the container reads only at boot: a change restarts it
        boot_changes = [
            files.line(
                name=f"{name}: {key} = {value}",
                path=f"/var/lib/lxc/{name}/config",
                line=rf"^{key.replace('.', '[.]')}\s*=.*$",
                replace=f"{key} = {value}",
            )
            for key, value in lab.lxc_config_lines(s, node).items()
        ]
        for path, content, needs_restart in (
            ("etc/network/interfaces", lab.interfaces(), True),
            ("etc/hostname", f"{lab.hostname(name)}\n", True),
            ("etc/hosts", lab.etc_hosts(cluster, node), False),
            ("etc/resolv.conf", f"nameserver {s['lab_gateway']}\n", False),
            ("etc/ssh/sshd_config.d/pgha.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n", True),
        ):
            put = files.put(name=f"{name}: /{path}", src=StringIO(content), dest=f"{root}/{path}")
            if needs_restart:
                boot_changes.append(put)
        host_key = lab.HOST_KEYS / name / "ssh_host_ed25519_key"
        boot_changes.append(
            files.put(
                name=f"{name}: SSH host key",
                src=str(host_key),
                dest=f"{root}/etc/ssh/ssh_host_ed25519_key",
                mode="600",
            )
        )
        files.put(
            name=f"{name}: SSH host public key",
            src=str(host_key) + ".pub",
            dest=f"{root}/etc/ssh/ssh_host_ed25519_key.pub",
            mode="644",
        )
        files.directory(name=f"{name}: /root/.ssh", path=f"{root}/root/.ssh", mode="700")
        files.put(
            name=f"{name}: root's authorized key",
            src=str(public_key),
            dest=f"{root}/root/.ssh/authorized_keys",
            mode="600",
        )
        was_running = existing.get(name, {}).get("state") == "RUNNING"
        if was_running:
            started.append(
                server.shell(
                    name=f"Restart {name} (its configuration changed)",
                    commands=[f"lxc-stop -n {name} -t 30", f"lxc-start -n {name}"],
                    _if=lambda changes=boot_changes: any(c.did_change() for c in changes),
                )
            )
        else:
            started.append(lxc.running(name=f"Start {name}", container=name))
    python.call(
        name="Wait until every container answers on SSH",
        function=_wait_for_ssh,
        addresses=[n.address for n in cluster.nodes if lab.container(n)],
        _if=lambda: any(op.did_change() for op in started),
    )


@deploy("The lab's alert receiver")
def alert_receiver(cluster):
    """On the monitoring container's loopback: what Alertmanager delivers, for the tests."""
    for node in cluster.groups.get("monitor", []):
        name = lab.container(node)
        if not name:
            continue
        root = lab.rootfs(name)
        unit = "pgha-lab-webhook.service"
        changes = [
            files.put(name=f"{name}: the lab's alert receiver", src=str(lab.WEBHOOK_PROGRAM),
                      dest=f"{root}{lab.WEBHOOK_PATH}", mode="755"),
            files.put(name=f"{name}: {unit}", src=StringIO(lab.webhook_unit(cluster.settings)),
                      dest=f"{root}/etc/systemd/system/{unit}", mode="644"),
        ]
        server.shell(
            name=f"{name}: {unit} enabled and running",
            commands=[f"lxc-attach -n {name} -- sh -c 'systemctl daemon-reload && systemctl enable {unit} "
                      f"&& systemctl restart {unit}'"],
            _if=lambda changes=changes, name=name, unit=unit: any(c.did_change() for c in changes)
            or not lab.unit_active(name, unit),
        )


def build_base(cluster) -> bool:
    """LXC, the lab network and the base container, on the LXC host only: False elsewhere."""
    if lab.LAB_GROUP not in host.groups:
        return False
    install()
    network(cluster)
    base_container(cluster)
    return True


def build(cluster):
    """The whole lab, on the LXC host only (every other host skips it)."""
    if build_base(cluster):
        containers(cluster)
        alert_receiver(cluster)
