"""pgha.secrets: generated once with mode 0600, never rewritten, never shown in errors."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pgha import secrets
from pgha.errors import ConfigError


def load() -> dict[str, str]:
    """What pgha.settings.loader does with the secrets file: create, check, read."""
    secrets.ensure()
    problems = secrets.problems()
    if problems:
        raise ConfigError(problems)
    return secrets.read()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path, text: str, mode: int = 0o600) -> None:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)


def test_path_comes_from_the_environment(secrets_path):
    assert secrets.path() == secrets_path


def test_ensure_creates_the_file_with_every_key(secrets_path):
    assert not secrets_path.exists()
    assert secrets.ensure() == secrets_path
    assert _mode(secrets_path) == 0o600
    values = json.loads(secrets_path.read_text(encoding="utf-8"))
    assert sorted(values) == sorted(secrets.KEYS)
    assert len(secrets.KEYS) == 10
    for key, value in values.items():
        assert isinstance(value, str), key
        assert len(value) >= secrets.MIN_LENGTH >= 16, (key, len(value))
        assert all(c.isalnum() or c in "-_" for c in value), key
    assert len(set(values.values())) == len(values)  # all distinct
    assert secrets.problems() == []


def test_ensure_ignores_the_umask(secrets_path):
    old = os.umask(0o000)
    try:
        secrets.ensure()
    finally:
        os.umask(old)
    assert _mode(secrets_path) == 0o600


def test_ensure_creates_missing_directories(tmp_path, monkeypatch):
    nested = tmp_path / "a" / "b" / "secrets.json"
    monkeypatch.setenv(secrets.ENV_VAR, str(nested))
    assert secrets.ensure() == nested
    assert sorted(json.loads(nested.read_text())) == sorted(secrets.KEYS)


def test_two_files_get_different_values(tmp_path, monkeypatch):
    first = json.loads(secrets.ensure().read_text())
    monkeypatch.setenv(secrets.ENV_VAR, str(tmp_path / "other.json"))
    second = json.loads(secrets.ensure().read_text())
    assert set(first.values()).isdisjoint(second.values())


def test_second_ensure_changes_nothing(secrets_path):
    secrets.ensure()
    before = secrets_path.read_bytes()
    mtime = secrets_path.stat().st_mtime_ns
    secrets.ensure()
    assert secrets_path.read_bytes() == before
    assert secrets_path.stat().st_mtime_ns == mtime
    assert load() == json.loads(before)


@pytest.mark.parametrize(
    ("content", "mode"),
    [
        ("not json at all", 0o600),
        ('{"superuser_password": "short"}', 0o600),
        (json.dumps({k: "x" * 30 for k in secrets.KEYS}), 0o644),
        ("", 0o600),
    ],
)
def test_an_existing_file_is_never_rewritten(secrets_path, content, mode):
    _write(secrets_path, content, mode)
    mtime = secrets_path.stat().st_mtime_ns
    assert secrets.ensure() == secrets_path
    assert secrets_path.read_text(encoding="utf-8") == content
    assert _mode(secrets_path) == mode
    assert secrets_path.stat().st_mtime_ns == mtime


def test_load_creates_and_returns_the_secrets(secrets_path):
    values = load()
    assert sorted(values) == sorted(secrets.KEYS)
    assert values == json.loads(secrets_path.read_text())
    assert load() == values


def _good_values() -> dict[str, str]:
    return {key: f"{key.replace('_', '-')}-Value0123456789" for key in secrets.KEYS}


# (file content, mode, parts of the expected message) -- the values are distinctive so a
# leak into the message would be caught
BAD_FILES = {
    "mode 0644": (json.dumps(_good_values()), 0o644, ["mode 0644", "expected 0600"]),
    "mode 0640": (json.dumps(_good_values()), 0o640, ["mode 0640", "expected 0600"]),
    "invalid JSON": (
        '{"superuser_password": "Leaky-Superuser-Secret-42" "admin_password": 1}',
        0o600,
        ["is not valid JSON", "expected a JSON object"],
    ),
    "not an object": (
        json.dumps(["Leaky-Listed-Secret-Value-77"]),
        0o600,
        ["holds a list", "expected a JSON object"],
    ),
    "missing key": (
        json.dumps({k: v for k, v in _good_values().items() if k != "replication_password"}),
        0o600,
        ["key 'replication_password' is missing", "expected a generated password"],
    ),
    "too short": (
        json.dumps({**_good_values(), "admin_password": "Sh0rtLeak"}),
        0o600,
        ["admin_password", "has 9 characters", "expected a string of at least 16 characters"],
    ),
    "not a string": (
        json.dumps({**_good_values(), "admin_password": 12345678901234567890}),
        0o600,
        ["admin_password", "non-string value", "expected a string of at least 16"],
    ),
    "not URL-safe": (
        json.dumps({**_good_values(), "haproxy_stats_password": "Quote'And Space#Leak-0123456"}),
        0o600,
        ["haproxy_stats_password", "expected a URL-safe string"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_raises_config_error_on_a_bad_file(secrets_path, case):
    content, mode, parts = BAD_FILES[case]
    _write(secrets_path, content, mode)
    with pytest.raises(ConfigError) as info:
        load()
    found = [p for p in info.value.problems if all(part in p for part in parts)]
    assert found, info.value.problems
    assert all(str(secrets_path) in p for p in info.value.problems), info.value.problems
    # the bad file was reported, not replaced
    assert secrets_path.read_text(encoding="utf-8") == content


def _secret_strings(content: str) -> set[str]:
    """Every string of 8+ characters in the file other than a key name."""
    try:
        parsed = json.loads(content)
    except ValueError:
        import re

        return {s for s in re.findall(r'"([^"]{8,})"', content) if s not in secrets.KEYS}
    values = parsed.values() if isinstance(parsed, dict) else parsed
    return {str(v) for v in values if len(str(v)) >= 8}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_no_secret_value_appears_in_the_error(secrets_path, case):
    content, mode, _ = BAD_FILES[case]
    _write(secrets_path, content, mode)
    values = _secret_strings(content)
    assert values  # the case does hold secret-looking values
    with pytest.raises(ConfigError) as info:
        load()
    text = str(info.value) + "\n" + "\n".join(info.value.problems)
    for value in values:
        assert value not in text, f"{value!r} leaked into: {text}"


def test_generated_values_do_not_appear_in_the_error(secrets_path):
    values = json.loads(secrets.ensure().read_text())
    os.chmod(secrets_path, 0o644)
    with pytest.raises(ConfigError) as info:
        load()
    assert info.value.problems == [
        f"secrets: {secrets_path} has mode 0644: expected 0600 (readable by its owner only)"
    ]
    for value in values.values():
        assert value not in str(info.value)


def test_ensure_adds_keys_a_newer_version_needs_and_keeps_the_others(secrets_path):
    old = {key: f"{key}-kept-0123456789" for key in secrets.KEYS if key not in secrets.ADDED_KEYS}
    secrets_path.write_text(json.dumps(old))
    secrets_path.chmod(0o600)
    secrets.ensure()
    values = json.loads(secrets_path.read_text())
    assert {k: values[k] for k in old} == old
    assert sorted(values) == sorted(secrets.KEYS)
    assert all(len(values[k]) >= secrets.MIN_LENGTH for k in secrets.ADDED_KEYS)
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    assert secrets.problems() == []


def test_rotate_changes_only_the_keys_asked_for(secrets_path):
    before = json.loads(secrets.ensure().read_text())
    assert secrets.rotate(["admin_password"]) == ["admin_password"]
    after = json.loads(secrets_path.read_text())
    assert after["admin_password"] != before["admin_password"]
    assert {k: v for k, v in after.items() if k != "admin_password"} == {
        k: v for k, v in before.items() if k != "admin_password"
    }
    with pytest.raises(ValueError, match="unknown secrets key"):
        secrets.rotate(["admin_pasword"])
