"""Facts about the LXC host: its containers and the lxc-net bridge."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class LxcContainers(FactBase):
    """Containers on this host: ``{name: {"state": "RUNNING", "autostart": True, "ipv4": [...]}}``."""

    default = dict

    def command(self) -> str:
        return (
            "command -v lxc-ls >/dev/null 2>&1 && "
            "lxc-ls --fancy --fancy-format name,state,autostart,ipv4 || true"
        )

    def process(self, output):
        containers = {}
        for line in output[1:]:  # the first line is the header
            fields = line.split(None, 3)
            if len(fields) < 3:
                continue
            name, state, autostart = fields[:3]
            ipv4 = fields[3].strip() if len(fields) > 3 else "-"
            containers[name] = {
                "state": state,
                "autostart": autostart == "1",
                "ipv4": [] if ipv4 == "-" else [a.strip() for a in ipv4.split(",")],
            }
        return containers


class LxcBaseRecipe(FactBase):
    """The recipe digest the base container was built from, or None."""

    def command(self, container: str) -> str:
        return f"cat /var/lib/lxc/{shlex.quote(container)}/pgha-recipe 2>/dev/null || true"

    def process(self, output):
        text = "\n".join(output).strip()
        return text or None


# the mirror LXC's Debian template builds containers from (read on the host, never written here)
TEMPLATE_MIRROR = "sed -n 's/^DEBIAN_MIRROR=//p' /usr/share/lxc/templates/lxc-debian"
CACHE_BACKEND = "/etc/apt-cacher-ng/backends_debian"
CACHE_CONFIG = "/etc/apt-cacher-ng/zzz_pgha.conf"


class PackageCache(FactBase):
    """apt-cacher-ng on the LXC host: ``{"answers": listening on ``port``, "backend": it
    fetches Debian from the template's mirror, "port": its configured port is ``port``}``."""

    def command(self, port: int) -> str:
        return (
            f"echo answers: $(ss -Hltn 'sport = :{int(port)}' | grep -c . ); "
            f'echo backend: $([ "$(cat {CACHE_BACKEND} 2>/dev/null)" = "$({TEMPLATE_MIRROR})/" ] && echo yes); '
            f"echo port: $(grep -c '^Port: {int(port)}$' {CACHE_CONFIG} 2>/dev/null)"
        )

    def process(self, output):
        found = dict(line.partition(": ")[::2] for line in output)
        return {"answers": found.get("answers", "0").strip() not in ("", "0"),
                "backend": found.get("backend", "").strip() == "yes",
                "port": found.get("port", "0").strip() not in ("", "0")}


class LxcNetwork(FactBase):
    """The bridge's IPv4 addresses and the DHCP range dnsmasq serves on it."""

    default = dict

    def command(self, bridge: str) -> str:
        quoted = shlex.quote(bridge)
        return (
            f"echo addresses: $(ip -4 -o addr show dev {quoted} 2>/dev/null | awk '{{print $4}}'); "
            f"echo dnsmasq_args: $(ps -o args= -C dnsmasq 2>/dev/null | grep -- '--interface={quoted}')"
        )

    def process(self, output):
        values = {"addresses": [], "dhcp_range": None, "dnsmasq_running": False}
        for line in output:
            key, _, rest = line.partition(":")
            rest = rest.strip()
            if key == "addresses":
                values["addresses"] = rest.split()
            elif key == "dnsmasq_args" and rest:
                values["dnsmasq_running"] = True
                words = rest.split()
                for i, word in enumerate(words):
                    if word.startswith("--dhcp-range"):
                        value = word.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
                        if "." in value.split(",")[0] and values["dhcp_range"] is None:
                            values["dhcp_range"] = value.split(",")[:2]  # the IPv4 range
        return values
