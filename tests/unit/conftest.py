"""Fixtures for the unit tests: the real settings, the lab topology, an isolated secrets file.

No host, network or LXC is touched: everything here is plain data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pgha import rendering
from pgha.backup import values as backup_values
from pgha.patroni import values as patroni
from pgha.settings.loader import load_group_data
from pghalab import topology
from pghalab import values as lab
from pghalab.topology import CLIENTS, ETCD_NODES, LAB_SETTINGS, PATRONI_NODES  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP_DATA_DIR = REPO_ROOT / "group_data"


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
    return {**LAB_SETTINGS, **CLIENTS, **load_group_data(GROUP_DATA_DIR)["all"]}


@pytest.fixture
def groups() -> dict[str, list[tuple[str, dict]]]:
    """The inventory groups of inventory.py (lab/pghalab/topology.py)."""
    return topology.groups()


@pytest.fixture(autouse=True)
def secrets_path(tmp_path, monkeypatch) -> Path:
    """Every test gets its own (not yet existing) secrets file; the real one is never read."""
    path = tmp_path / "secrets.json"
    monkeypatch.setenv("PGHA_SECRETS", str(path))
    return path


@pytest.fixture(autouse=True)
def pki_path(tmp_path, monkeypatch) -> Path:
    """Every test gets its own (not yet existing) CA directory; the real pki/ is never used."""
    path = tmp_path / "pki"
    monkeypatch.setenv("PGHA_PKI", str(path))
    return path


# --- shared by the template and fact tests (added for test_*_config.py, test_facts_*.py) ---



from pgha import PROJECT_ROOT, secrets  # noqa: E402

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"

# Fake secrets: distinct, URL-safe like the generated ones, easy to search for in output.
FAKE_SECRETS = {key: f"fake-{key.replace('_', '-')}-Aa1Bb2" for key in secrets.KEYS}


def template_path(template: str) -> Path:
    """"etcd/etcd.conf.yml.j2" -> pgha/etcd/templates/etcd.conf.yml.j2"""
    component, name = template.split("/", 1)
    return PROJECT_ROOT / "pgha" / component / "templates" / name


def render(template: str, config: dict) -> str:
    """templates/<template> rendered by the deploy's own renderer (pgha.rendering);
    test_templates_render.py checks that it gives pyinfra's files.template's text."""
    return rendering.render(template_path(template), config)


def recorded(name: str) -> str:
    """A file of tests/unit/recorded/ (real answers from the lab)."""
    return (RECORDED_DIR / name).read_text(encoding="utf-8")


def render_member(cluster, name: str = "pg-1", secrets: dict | None = None) -> str:
    """A member's rendered Patroni configuration (pgha.patroni.values), with ``secrets``
    (the fake ones by default)."""
    return patroni.config_text(dataclasses.replace(cluster, secrets=FAKE_SECRETS if secrets is None else secrets),
                               cluster.node(name), backup_values.patroni_config(cluster))


def load_member(cluster, name: str = "pg-1") -> dict:
    return yaml.safe_load(render_member(cluster, name))


def cluster_with(groups: dict, data: dict, **changes):
    """The checked topology (settings.checks.check) with ``changes`` applied to the group
    data, carrying the fake secrets."""
    from pgha.settings.checks import check

    cluster = check(groups, {**data, **changes})
    cluster.secrets = dict(FAKE_SECRETS)
    return cluster


@pytest.fixture
def fake_secrets() -> dict:
    return dict(FAKE_SECRETS)


@pytest.fixture
def cluster(groups, group_data):
    """The seed's topology and settings, checked."""
    return cluster_with(groups, group_data)
