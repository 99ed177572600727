"""The text of every file pgha puts on a node, made on the control machine: a component's
template given its values (``config``), or a YAML document written from Python values by
PyYAML after a comment header. Free of pyinfra: the deploy, `pgha diff`-like checks and the
unit tests render through here."""

from __future__ import annotations

from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

_ENVIRONMENTS: dict[Path, Environment] = {}


def render(template: Path, config: dict) -> str:
    """``template`` given ``config``, as pyinfra's files.template renders (undefined names are
    errors, the trailing newline is kept)."""
    folder = template.parent
    if folder not in _ENVIRONMENTS:
        _ENVIRONMENTS[folder] = Environment(loader=FileSystemLoader(str(folder)), undefined=StrictUndefined,
                                            keep_trailing_newline=True)
    return _ENVIRONMENTS[folder].get_template(template.name).render(config=config)


def yaml_file(header: list[str], document: dict) -> str:
    """``document`` as YAML (the library quotes what needs quoting), after ``header``'s
    lines as comments."""
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)
