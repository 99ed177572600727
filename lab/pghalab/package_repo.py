"""A package repository on the lab host offering newer builds of packages the nodes run, so
that `pgha upgrade` has a real update to roll out: each package is the release's own .deb
(downloaded in a lab container, through the lab's package cache) rebuilt with its version
suffixed, indexed, served over HTTP on the lab's bridge address and named in every node's apt
sources (straight, not through the cache). Used by tests/integration/test_upgrade.py.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

SUFFIX = "+pgha1"
PORT = 8470
SOURCE_FILE = "/etc/apt/sources.list.d/pgha-lab-updates.list"
PROXY_FILE = "/etc/apt/apt.conf.d/99pgha-lab-updates"
BUILD_DIR = "/var/tmp/pgha-rebuild"  # not /tmp: a tmpfs on trixie, out of the host's sight


def build(container: str, packages: list[str], directory: Path) -> list[Path]:
    """``packages`` as ``container``'s release has them, rebuilt with the version
    ``<version>+pgha1``, into ``directory``."""
    script = (
        f"set -e; rm -rf {BUILD_DIR}; mkdir {BUILD_DIR}; cd {BUILD_DIR}; "
        f"apt-get download -q {' '.join(shlex.quote(p) for p in packages)} >/dev/null 2>&1; "
        "for deb in *.deb; do dir=${deb%.deb}; dpkg-deb -R \"$deb\" \"$dir\"; "
        f"sed -i 's/^Version: .*/&{SUFFIX}/' \"$dir/DEBIAN/control\"; "
        "dpkg-deb -b \"$dir\" \"new-$deb\" >/dev/null; done"
    )
    subprocess.run(["lxc-attach", "-n", container, "--", "sh", "-c", script], check=True, capture_output=True,
                   timeout=600)
    directory.mkdir(parents=True, exist_ok=True)
    built = []
    for deb in sorted(Path(f"/var/lib/lxc/{container}/rootfs{BUILD_DIR}").glob("new-*.deb")):
        target = directory / deb.name.removeprefix("new-")
        shutil.copy(deb, target)
        built.append(target)
    if len(built) != len(packages):
        raise RuntimeError(f"rebuilt {len(built)} of {len(packages)} packages in {container}")
    return built


def index(directory: Path) -> None:
    """The flat repository's Packages file (what dpkg-scanpackages would write)."""
    stanzas = []
    for deb in sorted(directory.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        data = deb.read_bytes()
        stanzas.append(control.rstrip("\n") + f"\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    (directory / "Packages").write_text("\n".join(stanzas), encoding="utf-8")


@contextmanager
def served(directory: Path, address: str):
    """``directory`` over HTTP at ``address``:PORT while the block runs."""
    server = subprocess.Popen(["python3", "-m", "http.server", str(PORT), "--bind", address, "--directory",
                               str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        if server.poll() is not None:
            raise RuntimeError(f"the package repository could not listen on {address}:{PORT}")
        yield f"http://{address}:{PORT}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def sources_command(url: str, address: str) -> str:
    """A node's apt sources with the repository (trusted: it is the lab's own), reached
    straight rather than through the package cache."""
    source = f"deb [trusted=yes] {url} ./"
    direct = f'Acquire::http::Proxy::{address} "DIRECT";'
    return f"echo {shlex.quote(source)} > {SOURCE_FILE} && echo {shlex.quote(direct)} > {PROXY_FILE}"


def removal_command() -> str:
    return f"rm -f {SOURCE_FILE} {PROXY_FILE} && apt-get update -q >/dev/null"
