"""Operations on the LXC host: each checks a fact and yields commands only when needed."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from pghalab.facts import LxcBaseRecipe, LxcContainers, LxcNetwork

RUN_LXC_NET = (
    "if [ -d /run/systemd/system ]; then systemctl {action} lxc-net; "
    "else /usr/libexec/lxc/lxc-net {action}; fi"
)


@operation()
def network(bridge: str, gateway: str, dhcp_range: list[str]):
    """lxc-net up with the bridge on ``gateway`` and dnsmasq serving ``dhcp_range``."""
    current = host.get_fact(LxcNetwork, bridge=bridge)
    prefixless = [a.split("/")[0] for a in current.get("addresses", [])]
    up = gateway in prefixless and current.get("dnsmasq_running")
    if up and current.get("dhcp_range") == list(dhcp_range):
        host.noop(f"lxc-net serves {bridge} on {gateway}, DHCP {'-'.join(dhcp_range)}")
        return
    # restart, never start: a stale /run/lxc/network_up (dnsmasq killed) makes start refuse
    yield RUN_LXC_NET.format(action="restart")


@operation()
def base_container(container: str, release: str, packages: list[str], recipe: str):
    """The cached base container, (re)built when its recipe digest differs."""
    exists = container in host.get_fact(LxcContainers)
    if exists and host.get_fact(LxcBaseRecipe, container=container) == recipe:
        host.noop(f"base container {container} is built from recipe {recipe}")
        return
    quoted = shlex.quote(container)
    rootfs = f"/var/lib/lxc/{container}/rootfs"
    if exists:
        yield f"lxc-stop -k -n {quoted} >/dev/null 2>&1 || true"
        yield f"lxc-destroy -n {quoted}"
    yield (
        f"lxc-create -n {quoted} -t debian -- -r {shlex.quote(release)} "
        f"--packages={shlex.quote(','.join(packages))}"
    )
    # Each clone gets its own host key (from .lab/) and its own machine id at first boot.
    yield f"rm -f {rootfs}/etc/ssh/ssh_host_* {rootfs}/var/lib/dbus/machine-id"
    yield f": > {rootfs}/etc/machine-id"
    yield f"echo {shlex.quote(recipe)} > /var/lib/lxc/{quoted}/pgha-recipe"


@operation()
def clone(container: str, base: str):
    """A container copied from the base container (a full copy: its rootfs is a plain directory)."""
    if container in host.get_fact(LxcContainers):
        host.noop(f"container {container} exists")
        return
    yield f"lxc-copy -n {shlex.quote(base)} -N {shlex.quote(container)}"


@operation()
def running(container: str):
    """The container is running."""
    if host.get_fact(LxcContainers).get(container, {}).get("state") == "RUNNING":
        host.noop(f"container {container} is running")
        return
    yield f"lxc-start -n {shlex.quote(container)}"
