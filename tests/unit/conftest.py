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


# --- shared by the template and fact tests (added for test_*_config.py, test_facts_*.py) ---

import os  # noqa: E402

import jinja2  # noqa: E402

from pgha import TEMPLATES  # noqa: E402

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"

# Fake secrets: distinct, URL-safe like the generated ones, easy to search for in output.
FAKE_SECRETS = {
    "superuser_password": "fakeSuperuser-Aa1Bb2Cc3Dd4Ee5",
    "replication_password": "fakeReplication-Ff6Gg7Hh8Ii9J",
    "admin_password": "fakeAdmin_Kk0Ll1Mm2Nn3Oo4Pp5Qq",
    "restapi_password": "fakeRestapi-Rr6Ss7Tt8Uu9Vv0Ww",
    "haproxy_stats_password": "fakeStats_Xx1Yy2Zz3aA4bB5cC6",
}


def render(template: str, **data) -> str:
    """templates/<template> rendered the way pyinfra's files.template renders it.

    Mirrors pyinfra.api.util.get_template (pyinfra 3.x): the file's text given to
    ``Environment(undefined=StrictUndefined, keep_trailing_newline=True,
    loader=FileSystemLoader(getcwd())).from_string(...)``. test_templates_render.py checks
    that this gives the same text as pyinfra's own function.
    """
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        loader=jinja2.FileSystemLoader(os.getcwd()),
    )
    return environment.from_string(source).render(data)


def recorded(name: str) -> str:
    """A file of tests/unit/recorded/ (real answers from the lab)."""
    return (RECORDED_DIR / name).read_text(encoding="utf-8")


def cluster_with(groups: dict, data: dict, **changes):
    """The checked topology (settings.check, secrets not looked at) with ``changes`` applied
    to the group data."""
    from pgha.settings import check

    return check(groups, {**data, **changes}, with_secrets=False)


@pytest.fixture
def fake_secrets() -> dict:
    return dict(FAKE_SECRETS)


@pytest.fixture
def cluster(groups, group_data):
    """The seed's topology and settings, checked."""
    return cluster_with(groups, group_data)
