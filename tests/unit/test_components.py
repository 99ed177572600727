"""The component registry (pgha/components.py) is complete: every registered component has
its deploy file (with a Usage line), its line in deploys/all.py, a default in
group_data/all.py for each of its settings (but those every inventory must set), its rows in
docs/settings.md (which is the generated reference, as committed), its operations module, and
ports and secrets that are its own. A half-registered component fails here, and the last
tests show it does."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from pgha import components
from pgha.settings import reference
from pgha.settings.schema import CORE_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
# settings without a default: every inventory says them (the README's first steps)
NO_DEFAULT = {"client_networks", "etcd_client_networks"}


def registration_problems(component: components.Component, root: Path = ROOT) -> list[str]:
    """What the rest of the house lacks for ``component``."""
    found = []
    deploy = root / component.deploy if component.deploy else None
    if deploy is None or not deploy.is_file():
        found.append(f"{component.name}: no deploy file {component.deploy!r}")
    elif "Usage: pyinfra" not in deploy.read_text():
        found.append(f"{component.name}: {component.deploy} has no Usage line")
    if f"rollout.{component.name}(" not in (root / "deploys" / "all.py").read_text():
        found.append(f"{component.name}: deploys/all.py does not run rollout.{component.name}(cluster)")
    defaults = reference.defaults(root / "group_data" / "all.py")
    found += [f"{component.name}: setting {name} has no default in group_data/all.py"
              for name in component.settings if name not in defaults and name not in NO_DEFAULT]
    settings_doc = (root / "docs" / "settings.md").read_text()
    found += [f"{component.name}: setting {name} has no row in docs/settings.md"
              for name in component.settings if f"| `{name}` |" not in settings_doc]
    found += [f"{component.name}: port {port} is not one of its settings"
              for port in component.ports if port not in component.settings]
    if component.operations:
        try:
            importlib.import_module(component.operations)
        except ImportError:
            found.append(f"{component.name}: no operations module {component.operations}")
    if component.observe is None:
        found.append(f"{component.name}: nothing observed for its snapshot (observe)")
    return found


def test_every_registered_component_is_complete():
    problems = [p for c in components.COMPONENTS for p in registration_problems(c)]
    assert not problems, "\n".join(problems)


def test_the_settings_reference_is_the_generated_one():
    assert (ROOT / "docs" / "settings.md").read_text() == reference.markdown(), (
        "docs/settings.md is not what `python -m pgha.settings.reference` writes: run it again")


def test_settings_ports_and_secrets_belong_to_one_component():
    names = [key for c in components.COMPONENTS for key in c.settings] + list(CORE_SETTINGS)
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    keys = [s.key for s in components.secrets()]
    assert len(keys) == len(set(keys))
    assert all(components.audience_of(p) in components.AUDIENCES for c in components.COMPONENTS for p in c.ports.values())


def test_groups_come_from_the_registry():
    assert components.GROUPS == ("etcd", "patroni", "backup", "monitor")


# --- a half-registered component is found ------------------------------------------------------

NEXT = components.Component(
    name="logs", summary="a log shipper on every node", groups=(),
    runs_on=lambda cluster, node: True,
    settings={"log_shipper_port": components.component("etcd").settings["etcd_client_port"]},
    ports={"log_shipper_port": components.CLIENTS}, deploy="deploys/logs.py",
    observe=lambda cluster, node: None,
)


def test_a_component_without_its_deploy_file_line_defaults_or_doc_row_is_found():
    problems = registration_problems(NEXT)
    assert problems == [
        "logs: no deploy file 'deploys/logs.py'",
        "logs: deploys/all.py does not run rollout.logs(cluster)",
        "logs: setting log_shipper_port has no default in group_data/all.py",
        "logs: setting log_shipper_port has no row in docs/settings.md",
    ]


@pytest.mark.parametrize("change, problem", [
    ({"ports": {"log_admin_port": components.CLIENTS}}, "logs: port log_admin_port is not one of its settings"),
    ({"operations": "pgha.logs.operations"}, "logs: no operations module pgha.logs.operations"),
    ({"observe": None}, "logs: nothing observed for its snapshot (observe)"),
])
def test_each_missing_part_is_named(change, problem):
    assert problem in registration_problems(dataclasses.replace(NEXT, **change))


def test_a_complete_component_passes(tmp_path):
    """The same component with its files in a copy of the house: nothing is missing."""
    for name in ("deploys", "group_data", "docs"):
        (tmp_path / name).mkdir()
    (tmp_path / "deploys" / "logs.py").write_text('"""Usage: pyinfra -y inventory.py deploys/logs.py"""\n')
    (tmp_path / "deploys" / "all.py").write_text((ROOT / "deploys" / "all.py").read_text() + "rollout.logs(cluster)\n")
    (tmp_path / "group_data" / "all.py").write_text("log_shipper_port = 6514  # the log shipper\n")
    (tmp_path / "docs" / "settings.md").write_text("| `log_shipper_port` | `6514` | a port | the log shipper |\n")
    assert registration_problems(NEXT, tmp_path) == []
