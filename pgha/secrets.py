"""Cluster secrets: generated on first use, kept outside git in a 0600 JSON file.

The file is `secrets.json` at the repository root, or the path in $PGHA_SECRETS. Values
are only ever written into files on the hosts (templates), never into a command line, so
pyinfra's output and logs do not show them.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets as _random
import stat
from pathlib import Path

from pgha import PROJECT_ROOT, components
from pgha.private_file import write_private

# Every component's secrets (pgha.components): the keys of the file, in the registry's order.
KEYS = tuple(secret.key for secret in components.secrets())
# Keys added after the first version: generated into an existing file at the next deploy.
# Any other missing key is an error: generating it would silently change a live password.
ADDED_KEYS = tuple(secret.key for secret in components.secrets() if secret.added_later)
# Keys that cannot change once in use (the repository stays encrypted with its passphrase).
FIXED_KEYS = {secret.key: secret.fixed for secret in components.secrets() if secret.fixed}
MIN_LENGTH = 16
ENV_VAR = "PGHA_SECRETS"


def path() -> Path:
    return Path(os.environ.get(ENV_VAR) or PROJECT_ROOT / "secrets.json")


def _generate() -> str:
    # URL-safe: no quoting trouble in YAML, HAProxy or a libpq connection string
    return _random.token_urlsafe(24)


def _save(file: Path, values: dict[str, str]) -> None:
    """Write the whole file anew (0600 from its creation, then renamed over the old one)."""
    write_private(file, json.dumps(values, indent=2, sort_keys=True) + "\n")


def ensure() -> Path:
    """Create the secrets file if it does not exist, and generate the ADDED_KEYS it lacks
    (a cluster deployed before them gets them at its next deploy). A value already in
    the file is never changed here: problems() reports what is wrong with it, rotate()
    changes it on purpose."""
    file = path()
    if not file.exists():
        _save(file, {key: _generate() for key in KEYS})
        return file
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return file  # problems() says what is wrong
    # only to a file otherwise complete: an unknown (misspelt?) or missing key is for
    # problems() to name
    if (isinstance(values, dict) and set(values) <= set(KEYS)
            and set(KEYS) - set(values) <= set(ADDED_KEYS) and set(KEYS) - set(values)):
        _save(file, {**{key: _generate() for key in ADDED_KEYS if key not in values}, **values})
    return file


def rotate(keys: list[str]) -> list[str]:
    """New values for ``keys`` in the secrets file; the next deploy rolls them out. Returns
    the keys changed (never their values)."""
    unknown = [key for key in keys if key not in KEYS]
    if unknown:
        raise ValueError(
            f"unknown secrets key(s) {', '.join(unknown)}: expected some of {', '.join(KEYS)}"
        )
    fixed = [f"{key}: {FIXED_KEYS[key]}" for key in keys if key in FIXED_KEYS]
    if fixed:
        raise ValueError(f"cannot rotate {'; '.join(fixed)}")
    file = ensure()
    values = json.loads(file.read_text(encoding="utf-8"))
    _save(file, {**values, **{key: _generate() for key in keys}})
    return list(keys)


def problems() -> list[str]:
    """What is wrong with the secrets file, as messages naming the key and what is expected."""
    file = path()
    if not file.exists():
        return [f"secrets: {file} does not exist: expected the generated secrets file"]
    mode = stat.S_IMODE(file.stat().st_mode)
    found: list[str] = []
    if mode & 0o077:
        found.append(
            f"secrets: {file} has mode {mode:04o}: expected 0600 (readable by its owner only)"
        )
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return found + [f"secrets: {file} is not valid JSON ({error}): expected a JSON object"]
    if not isinstance(values, dict):
        return found + [f"secrets: {file} holds a {type(values).__name__}: expected a JSON object"]
    unknown = [key for key in values if key not in KEYS]
    for key in unknown:
        close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.75)
        hint = f": did you mean {close[0]!r}?" if close else f" (expected only {', '.join(KEYS)})"
        found.append(f"secrets: unknown key {key!r} in {file}{hint}")
    for key in KEYS:
        value = values.get(key)
        if value is None:
            found.append(f"secrets: key {key!r} is missing from {file}: expected a generated password")
        elif not isinstance(value, str) or len(value) < MIN_LENGTH:
            shown = "a non-string value" if not isinstance(value, str) else f"{len(value)} characters"
            found.append(
                f"secrets: {key} in {file} has {shown}: expected a string of at least "
                f"{MIN_LENGTH} characters"
            )
        elif not all(c.isalnum() or c in "-_" for c in value):
            found.append(
                f"secrets: {key} in {file} has characters other than letters, digits, '-' "
                "and '_': expected a URL-safe string"
            )
    return found


def read() -> dict[str, str]:
    """The values of the secrets file; call problems() first (pgha.settings.loader does)."""
    return json.loads(path().read_text(encoding="utf-8"))
