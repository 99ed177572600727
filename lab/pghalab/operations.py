"""Operations on the LXC host: each checks a fact and yields commands only when needed."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from pghalab.facts import (
    CACHE_BACKEND,
    CACHE_CONFIG,
    TEMPLATE_MIRROR,
    LxcBaseRecipe,
    LxcContainers,
    LxcNetwork,
    PackageCache,
)

RUN_LXC_NET = (
    "if [ -d /run/systemd/system ]; then systemctl {action} lxc-net; "
    "else /usr/libexec/lxc/lxc-net {action}; fi"
)


RUN_CACHE = (
    "if [ -d /run/systemd/system ]; then systemctl {action} apt-cacher-ng; "
    "else /etc/init.d/apt-cacher-ng {action}; fi"
)


@operation()
def package_cache(port: int):
    """apt-cacher-ng answers on ``port`` and fetches Debian's packages from the mirror the LXC
    template uses (its default backends are other mirrors, which this host may not reach)."""
    state = host.get_fact(PackageCache, port=port)
    if state["answers"] and state["backend"] and state["port"]:
        host.noop(f"the package cache answers on {port}")
        return
    yield f"echo \"$({TEMPLATE_MIRROR})/\" > {CACHE_BACKEND}"
    yield f"printf '# Managed by pgha (the lab)\\nPort: {int(port)}\\n' > {CACHE_CONFIG}"
    yield RUN_CACHE.format(action="restart")


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
def base_container(container: str, release: str, packages: list[str], recipe: str, package_cache: str):
    """The cached base container, (re)built when its recipe digest differs. ``package_cache``:
    the lab host's apt cache (http://address:port), which the build and every container's apt
    go through, so that seven containers download each package once."""
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
        f"http_proxy={shlex.quote(package_cache)} lxc-create -n {quoted} -t debian -- -r {shlex.quote(release)} "
        f"--packages={shlex.quote(','.join(packages))}"
    )
    yield (f"echo {shlex.quote(f'Acquire::http::Proxy {chr(34)}{package_cache}{chr(34)};')} "
           f"> {rootfs}/etc/apt/apt.conf.d/00pgha-lab-package-cache")
    # Each clone gets its own host key (from .lab/) and its own machine id at first boot.
    yield f"rm -f {rootfs}/etc/ssh/ssh_host_* {rootfs}/var/lib/dbus/machine-id"
    # the packages the build downloaded are installed: every clone would copy them again
    yield f"chroot {rootfs} apt-get clean"
    yield f": > {rootfs}/etc/machine-id"
    yield f"echo {shlex.quote(recipe)} > /var/lib/lxc/{quoted}/pgha-recipe"


@operation()
def clones(containers: list[str], base: str):
    """Containers copied from the base container (full copies: each rootfs is a plain
    directory), side by side: a copy waits on the disk more than on the CPU."""
    existing = host.get_fact(LxcContainers)
    missing = [c for c in containers if c not in existing]
    if not missing:
        host.noop(f"containers {', '.join(containers)} exist")
        return
    copies = "".join(f"lxc-copy -n {shlex.quote(base)} -N {shlex.quote(c)} & pid{i}=$!; "
                     for i, c in enumerate(missing))
    waits = "".join(f"wait $pid{i} || status=1; " for i in range(len(missing)))
    yield f"{copies}status=0; {waits}exit $status"


@operation()
def running(container: str):
    """The container is running."""
    if host.get_fact(LxcContainers).get(container, {}).get("state") == "RUNNING":
        host.noop(f"container {container} is running")
        return
    yield f"lxc-start -n {shlex.quote(container)}"
