"""Fixtures for the unit tests: the real settings, the lab topology, an isolated secrets file.

No host, network or LXC is touched: everything here is plain data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pgha import lab, settings

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP_DATA_DIR = REPO_ROOT / "group_data"

# The seed's topology (as in inventory.py): name -> address, and Patroni name and aliases.
ETCD_NODES = {
    "etcd1": "10.0.3.64",
    "etcd2": "10.0.3.78",
    "etcd3": "10.0.3.32",
}
PATRONI_NODES = {
    "pg_patroni1": ("10.0.3.141", "pg-1", ["p1"]),
    "pg_patroni2": ("10.0.3.201", "pg-2", ["p2"]),
    "pg_patroni3": ("10.0.3.68", "pg-3", ["p3"]),
}


def etcd_host(name: str, address: str) -> tuple[str, dict]:
    return (name, lab.container_host_data(name, address))


def patroni_host(name: str, address: str, patroni_name: str, aliases: list[str]) -> tuple[str, dict]:
    return (
        name,
        lab.container_host_data(name, address, patroni_name=patroni_name, aliases=list(aliases)),
    )


@pytest.fixture
def group_data() -> dict:
    """A fresh copy of group_data/all.py's settings (tests may change it freely)."""
    return settings.load_group_data(GROUP_DATA_DIR)


@pytest.fixture
def groups() -> dict[str, list[tuple[str, dict]]]:
    """The inventory groups, built the way inventory.py builds them."""
    return {
        "etcd": [etcd_host(name, address) for name, address in ETCD_NODES.items()],
        "patroni": [
            patroni_host(name, address, pg_name, aliases)
            for name, (address, pg_name, aliases) in PATRONI_NODES.items()
        ],
    }


@pytest.fixture(autouse=True)
def secrets_path(tmp_path, monkeypatch) -> Path:
    """Every test gets its own (not yet existing) secrets file; the real one is never read."""
    path = tmp_path / "secrets.json"
    monkeypatch.setenv("PGHA_SECRETS", str(path))
    return path
