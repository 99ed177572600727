"""The one way from an inventory to a checked Cluster, used by inventory files (before
pyinfra connects to any host), the deploy files, the CLI, the drills and the tests.

The inventory is read the way pyinfra reads it, so every group_data file pyinfra will read
(`group_data/` in the current directory and beside the inventory, `--group-data`), the
inventory's own data and `--data` overrides are merged as the deploy will see them, by
pyinfra's own Inventory. Beneath them all lies the repository's group_data/ (DEFAULTS_DIR:
the defaults every inventory shares), wherever pyinfra or a tool runs from; tools (the CLI,
the drills, the tests) read the group_data beside the inventory, never the current
directory's.
The secrets file is created on first use, checked with the settings (one list of problems)
and carried by the Cluster, as are the hosts' TLS files (pgha.pki.authority).
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgha import PROJECT_ROOT, secrets
from pgha.cluster import Cluster
from pgha.components import GROUPS
from pgha.errors import ConfigError
from pgha.pki import authority
from pgha.settings import extensions
from pgha.settings.checks import check
from pgha.settings.hosts import cluster_data, duplicate_names

# The defaults every inventory shares (ports, timings, PostgreSQL parameters): the lowest layer
DEFAULTS_DIR = PROJECT_ROOT / "group_data"
# Where tools find the inventory when no --inventory is given
INVENTORY_VARIABLE = "PGHA_INVENTORY"


def inventory_path(given: str | Path | None = None) -> Path:
    """The inventory a tool works on: ``given`` (its --inventory), else $PGHA_INVENTORY;
    never a default that would send requests to a cluster nobody named (a ConfigError)."""
    chosen = given or os.environ.get(INVENTORY_VARIABLE)
    if not chosen:
        raise ConfigError([
            f"no inventory: give --inventory FILE (e.g. inventories/prod/inventory.py, or inventory.py "
            f"for the lab) or set {INVENTORY_VARIABLE}"
        ])
    path = Path(chosen).expanduser()
    if not path.is_file():
        where = "--inventory" if given else f"${INVENTORY_VARIABLE}"
        raise ConfigError([f"{where} {str(chosen)!r}: no such file (expected a pyinfra inventory file)"])
    return path.resolve()

_loading: list[str] = []  # inventory files pyinfra's loader is reading for us


@contextmanager
def _reading(inventory_file: str):
    _loading.append(inventory_file)
    try:
        yield
    finally:
        _loading.pop()


def _python_error(error: BaseException, inventory_file: str) -> ConfigError:
    """`file:line: error` for a Python mistake in an inventory or group_data file."""
    cause = error
    if isinstance(cause, SyntaxError) and cause.filename:
        where = f"{cause.filename}:{cause.lineno}"
    else:
        frames = [f for f in traceback.extract_tb(cause.__traceback__) if not f.filename.startswith(str(PROJECT_ROOT / "pgha"))]
        frame = frames[-1] if frames else None
        where = f"{frame.filename}:{frame.lineno}" if frame else inventory_file
    message = f"{type(cause).__name__}: {cause}".strip()
    return ConfigError([f"{where}: {message} (a Python mistake: the file cannot be read)"])


def _imported_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def read_python_file(path: str | Path) -> dict[str, Any]:
    """A group_data or inventory file's public names, as pyinfra reads them (``__all__`` if
    set, else every name not bound by an import); a Python mistake is a ConfigError."""
    path = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
        namespace: dict[str, Any] = {"__file__": path}
        exec(compile(source, path, "exec"), namespace)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - any mistake in the user's file
        raise _python_error(error, path) from None
    keys = namespace.get("__all__") or [k for k in namespace if k not in _imported_names(source)]
    return {k: namespace[k] for k in keys if not k.startswith("__")}


def load_group_data(directory: str | Path) -> dict[str, dict[str, Any]]:
    """{group: data} of one group_data directory (one file per group, as pyinfra reads it)."""
    folder = Path(directory)
    if not folder.is_dir():
        return {}
    return {f.stem: read_python_file(f) for f in sorted(folder.glob("*.py"))}


def _inventory_groups(path: str) -> dict[str, Any]:
    """The inventory file's groups: its public lists and (hosts, data) tuples."""
    return {
        k: v for k, v in read_python_file(path).items()
        if not k.startswith("_") and isinstance(v, (list, tuple))
    }


def group_data_folders(inventory_file: str | Path, extra: list[str] | None = None,
                       with_cwd: bool = True) -> list[Path]:
    """The group_data directories, lowest first: the shared defaults, the current directory's
    (as pyinfra reads it; not for tools), the inventory's own, then ``extra`` (--group-data)."""
    folders = [DEFAULTS_DIR]
    if with_cwd:
        folders.append(Path(os.getcwd()) / "group_data")
    folders.append(Path(inventory_file).resolve().parent / "group_data")
    folders += [Path(d) for d in extra or []]
    return list(dict.fromkeys(f.resolve() for f in folders))


def pyinfra_inventory(inventory_file: str | Path, overrides: dict[str, Any] | None = None,
                      group_data_dirs: list[str] | None = None, with_cwd: bool = True):
    """The pyinfra Inventory that `pyinfra INVENTORY ...` builds (pyinfra_cli's
    make_inventory_from_files, followed step by step: pyinfra_cli itself cannot be imported
    by tools, its import patches threads and sockets), on the shared defaults. ``with_cwd``
    False (tools): the current directory's group_data is not read."""
    from pyinfra.api import Inventory

    path = str(Path(inventory_file).resolve())
    with _reading(path):
        groups = _inventory_groups(path)
    duplicates = duplicate_names(groups)
    if duplicates:
        raise ConfigError(duplicates)
    all_hosts, all_data = groups.pop("all", (None, {}))
    if all_hosts is None:
        all_hosts = list(dict.fromkeys(
            h[0] if isinstance(h, tuple) else h
            for hosts in groups.values()
            for h in (hosts[0] if isinstance(hosts, tuple) else hosts)
        ))
    groups.setdefault(Path(path).stem, list(all_hosts))  # pyinfra's group named after the file
    group_data: dict[str, dict] = {}
    for folder in group_data_folders(path, group_data_dirs, with_cwd):
        for group, data in load_group_data(folder).items():
            group_data.setdefault(group, {}).update(data)
    all_data = {**all_data, **group_data.pop("all", {})}
    merged = {}
    for name, hosts in groups.items():
        hosts, data = hosts if isinstance(hosts, tuple) else (hosts, {})
        merged[name] = (hosts, {**data, **group_data.pop(name, {})})
    merged.update({name: ([], data) for name, data in group_data.items()})
    return Inventory((all_hosts, all_data), override_data=overrides or {}, **merged)


def _cli_arguments() -> tuple[dict[str, Any], list[str]]:
    """The `--data KEY=VALUE` overrides and `--group-data DIR` of the running pyinfra command
    (none when pyinfra is not the program running), parsed as pyinfra parses them."""
    if "pyinfra_cli" not in sys.modules or not Path(sys.argv[0]).name.startswith("pyinfra"):
        return {}, []
    from pyinfra_cli.util import parse_cli_arg

    overrides: dict[str, Any] = {}
    directories: list[str] = []
    args = sys.argv[1:]
    for index, arg in enumerate(args):
        for option, sink in (("--data", "data"), ("--group-data", "dirs")):
            value = None
            if arg == option and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith(option + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            if sink == "dirs":
                directories.append(value)
            elif "=" in value:
                key, raw = value.split("=", 1)
                overrides[key] = parse_cli_arg(raw)
    return overrides, directories


def _hosts(inventory, group: str) -> list:
    return list(inventory.get_group(group, []))


@functools.cache
def _defaults() -> dict[str, Any]:
    """The shared defaults (read once a process: they are not edited while a tool runs)."""
    return load_group_data(DEFAULTS_DIR).get("all", {})


def cluster_of(inventory, inventory_file: str | Path | None = None) -> Cluster:
    """The checked Cluster of a pyinfra Inventory: host data as written, settings as every
    cluster host sees them on the shared defaults (they must agree), an extension's
    settings (the lab's) as the host of its group sees them."""
    groups = {
        group: [(h.name, dict(inventory.get_host_data(h.name))) for h in _hosts(inventory, group)]
        for group in (*GROUPS, *extensions.groups())
    }
    defaults = _defaults()
    cluster_hosts = list({h.name: h for g in GROUPS for h in _hosts(inventory, g)}.values())
    data, problems = cluster_data({h.name: {**defaults, **h.data.dict()} for h in cluster_hosts})
    extension_data = {
        group: {**defaults, **hosts[0].data.dict()}
        for group in extensions.groups() if (hosts := _hosts(inventory, group))
    }
    group_names = []
    if inventory_file:  # pyinfra also makes a group named after the inventory file
        group_names = [g for g in inventory.group_data if g != Path(inventory_file).stem]
    return checked_cluster(groups, data, extension_data, group_names, problems)


def checked_cluster(groups: dict[str, Any], data: dict[str, Any], extension_data: dict | None = None,
                    group_names=(), problems: list[str] | None = None) -> Cluster:
    """Settings, topology and secrets checked together; every problem reported at once. A
    missing secrets file is reported, not created (check_inventory creates it)."""
    problems = list(problems or [])
    cluster = None
    try:
        cluster = check(groups, data, extension_data, group_names)
    except ConfigError as error:
        problems += error.problems
    problems += secrets.problems()
    if cluster is not None:
        problems += authority.problems(cluster)
    if problems or cluster is None:
        raise ConfigError(problems)
    cluster.secrets = secrets.read()
    cluster.tls = authority.host_files(cluster)
    return cluster


def check_inventory(inventory_file: str | Path, overrides: dict[str, Any] | None = None) -> Cluster | None:
    """Called at the end of an inventory file: everything pyinfra will use checked before
    it connects to any host. Returns None when pyinfra's loader reads the file for us."""
    path = str(Path(inventory_file).resolve())
    if path in _loading:
        return None
    cli_overrides, directories = _cli_arguments()
    inventory = pyinfra_inventory(path, {**cli_overrides, **(overrides or {})}, directories)
    secrets.ensure()
    return cluster_of(inventory, path)


def load_cluster(inventory: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> Cluster:
    """The checked Cluster of an inventory file (for tools: the CLI, the drills, the tests),
    with the group_data beside it on the shared defaults, wherever the tool runs from.
    ``inventory`` None: $PGHA_INVENTORY (pgha.settings.loader.inventory_path)."""
    path = inventory_path(inventory)
    inventory_object = pyinfra_inventory(path, overrides, with_cwd=False)
    secrets.ensure()
    return cluster_of(inventory_object, path)


_current: dict[int, Cluster] = {}


def current() -> Cluster:
    """The checked Cluster of the running pyinfra deploy (its --data overrides included):
    checked once per run (every host's deploy file asks it)."""
    from pyinfra import inventory

    key = id(inventory._get_module() if hasattr(inventory, "_get_module") else inventory)
    if key not in _current:
        _current[key] = cluster_of(inventory)
    return _current[key]
