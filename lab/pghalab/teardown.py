"""Destroy an inventory's lab containers (the cached base container is kept).

Usage: python -m pghalab.teardown [INVENTORY] [EXTRA_CONTAINER ...]
"""

from __future__ import annotations

import subprocess
import sys

from pgha.settings.loader import load_cluster
from pghalab.values import LAB_INVENTORY, LXC_PATH, lab_containers


def teardown(containers: list[str]) -> None:
    for name in containers:
        if not (LXC_PATH / name / "config").exists():
            continue
        subprocess.run(["lxc-stop", "-k", "-n", name], check=False, capture_output=True)
        subprocess.run(["lxc-destroy", "-n", name], check=True)
        print(f"destroyed {name}")


def main(argv: list[str]) -> int:
    inventory = argv[0] if argv else LAB_INVENTORY
    cluster = load_cluster(inventory)
    teardown(lab_containers(cluster) + argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
