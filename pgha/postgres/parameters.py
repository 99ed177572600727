"""postgresql_parameters checked against PostgreSQL's own parameter catalogue of the target
major version (catalogue/<major>.json, made by pghalab.catalogue, lab/pghalab/catalogue.py, from the packaged
server), before any host is touched.

Values are read the way PostgreSQL reads them (guc.c: parse_bool, parse_int, parse_real,
convert_to_base_unit, enum lookup), as the text Patroni writes to postgresql.conf
(``str(value)``), then range-checked in the parameter's base unit. Plain Python, no pyinfra.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from pathlib import Path

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"

# Parameters Patroni (or pgha's patroni.yml) sets itself: refused in postgresql_parameters.
# Patroni's docs, "Patroni configuration / PostgreSQL parameters controlled by Patroni"
# (patroni.readthedocs.io/en/latest/patroni_configuration.html), and its
# patroni.postgresql.config.ConfigHandler (module reference for rel_4_0; same in 3.0.2):
# CMDLINE_OPTIONS passes listen_addresses, port and cluster_name on the command line and
# accepts no other value; get_server_parameters() sets them from postgresql.listen and the
# scope, and sets synchronous_standby_names itself in synchronous mode; primary_conninfo and
# primary_slot_name are recovery parameters it writes for each replica.
PATRONI_MANAGED = {
    "port": "Patroni sets it from postgresql.listen: use the postgresql_port setting",
    "listen_addresses": "Patroni sets it from postgresql.listen, the member's own address",
    "cluster_name": "Patroni sets it to the scope: use the patroni_scope setting",
    "hba_file": "Patroni writes pg_hba.conf itself (postgresql.pg_hba)",
    "ident_file": "Patroni writes pg_ident.conf itself",
    "config_file": "Patroni writes postgresql.conf itself",
    "data_directory": "Patroni's postgresql.data_dir (/var/lib/postgresql/<version>/<scope>) sets it",
    "unix_socket_directories": "pgha sets it in each member's patroni.yml (/var/run/postgresql)",
    "primary_conninfo": "Patroni points each replica at the leader itself",
    "primary_slot_name": "Patroni names each replica's replication slot itself (use_slots)",
    "synchronous_standby_names": "Patroni manages it in synchronous mode: use "
    "patroni_synchronous_mode and patroni_synchronous_node_count",
    **{
        name: "pgha turns TLS on with the cluster's certificates (pgha/pki; tls_ca_file for your own CA)"
        for name in ("ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_min_protocol_version")
    },
}

# Patroni's floors (CMDLINE_OPTIONS validators, Patroni 3.x/4.x): a lower value is silently
# replaced by Patroni's default. max_wal_senders (3) and max_replication_slots (4) are
# checked with the topology below.
PATRONI_MINIMUMS = {
    "max_connections": (25, 100),
    "max_locks_per_transaction": (32, 64),
    "max_worker_processes": (2, 8),
    "wal_keep_size": (16, "128MB"),  # in MB, the parameter's unit; PostgreSQL 13 and later
}
# What Patroni starts PostgreSQL with when postgresql_parameters leaves these out.
PATRONI_DEFAULTS = {"max_wal_senders": 10, "max_replication_slots": 10}

# Set in postgresql.conf they are silently ignored (GUC_DISALLOW_IN_FILE): the file's word.
FILE_IGNORED = {
    "transaction_isolation": "default_transaction_isolation",
    "transaction_read_only": "default_transaction_read_only",
    "transaction_deferrable": "default_transaction_deferrable",
}

RENAMED = {
    "wal_keep_segments": "wal_keep_size (wal_keep_segments was replaced in PostgreSQL 13: "
    "segments x 16MB)",
    "checkpoint_segments": "max_wal_size (checkpoint_segments was replaced in PostgreSQL 9.5)",
    "force_parallel_mode": "debug_parallel_query (renamed in PostgreSQL 16)",
}

# guc.c's unit tables: the size of each unit in bytes or microseconds, largest first.
MEMORY_UNITS = {"TB": 1024**4, "GB": 1024**3, "MB": 1024**2, "kB": 1024, "B": 1}
TIME_UNITS = {"d": 86_400_000_000, "h": 3_600_000_000, "min": 60_000_000, "s": 1_000_000,
              "ms": 1_000, "us": 1}
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


# --- the catalogue ---------------------------------------------------------------------------


def versions() -> list[int]:
    """The PostgreSQL major versions that have a catalogue file."""
    return sorted(int(p.stem) for p in CATALOGUE_DIR.glob("*.json") if p.stem.isdigit())


@functools.cache
def _load(version: int) -> dict:
    path = CATALOGUE_DIR / f"{int(version)}.json"
    if not path.is_file():
        raise LookupError(f"no PostgreSQL parameter catalogue for version {version}: "
                          f"expected one of {', '.join(map(str, versions()))}")
    return json.loads(path.read_text(encoding="utf-8"))


def catalogue(version: int) -> dict[str, dict]:
    """name -> {context, vartype, unit, min, max, enumvals, aliases, describe_config} for that
    major version (cached: do not change it). LookupError for a version without a file."""
    return _load(version)["parameters"]


@functools.cache
def _by_lower(version: int) -> dict[str, str]:
    return {name.lower(): name for name in catalogue(version)}


def _lookup(name: str, version: int) -> tuple[str, dict] | None:
    """PostgreSQL parameter names ignore case."""
    real = _by_lower(version).get(name.lower())
    return (real, catalogue(version)[real]) if real else None


def restart_required(names, version: int) -> list[str]:
    """Those of ``names`` (in their order) whose change needs a PostgreSQL restart (context
    postmaster)."""
    out = []
    for name in names:
        found = _lookup(name, version) if isinstance(name, str) else None
        if found and found[1]["context"] == "postmaster":
            out.append(name)
    return out


# --- reading a value as PostgreSQL does --------------------------------------------------------

_STRTOL = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_STRTOD = re.compile(
    r"\s*[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def _strtod(text: str) -> tuple[float, int] | None:
    m = _STRTOD.match(text)
    if not m:
        return None
    literal = m.group(0).strip()
    body = literal.lstrip("+-")
    value = float.fromhex(literal) if body[:2].lower() == "0x" else float(literal)
    if math.isinf(value) and body[:1].lower() != "i":
        return None  # overflow: ERANGE
    return value, m.end()


def _number(text: str, integer: bool) -> tuple[float, str] | None:
    """The number at the start of ``text`` and what follows it (parse_int / parse_real)."""
    if not integer:
        parsed = _strtod(text)
    else:  # strtol(value, &end, 0); strtod instead where it stops at '.', 'e' or overflows
        m = _STRTOL.match(text)
        end, value = 0, 0
        if m:
            digits = m.group(2)
            base = 16 if digits[:2].lower() == "0x" else 8 if digits[:1] == "0" else 10
            end, value = m.end(), int(digits, base) * (-1 if m.group(1) == "-" else 1)
        if text[end:end + 1] in (".", "e", "E") or abs(value) > 2**63 - 1:
            parsed = _strtod(text)
        else:
            parsed = (float(value), end) if m else None
    if parsed is None or math.isnan(parsed[0]):
        return None
    return parsed[0], text[parsed[1]:].strip()


def _unit_table(unit: str) -> tuple[dict[str, int], int] | None:
    """The unit table for a parameter whose pg_settings unit is ``unit`` ('8kB', 'MB', 's'),
    and the size of that unit in the table's terms."""
    if unit in TIME_UNITS:
        return TIME_UNITS, TIME_UNITS[unit]
    m = re.fullmatch(r"(\d*)(kB|MB|B)", unit)
    if m:
        return MEMORY_UNITS, int(m.group(1) or 1) * MEMORY_UNITS[m.group(2)]
    return None


def _to_base_unit(value: float, unit_text: str, unit: str) -> float | None:
    """convert_to_base_unit: a fractional value is rounded to the next smaller unit."""
    table = _unit_table(unit)
    if table is None or unit_text not in table[0]:
        return None
    units, size = table
    names = list(units)
    converted = value * units[unit_text] / size
    following = names.index(unit_text) + 1
    if following < len(names):
        step = units[names[following]] / size
        converted = round(converted / step) * step
    return converted


def parse_bool(text: str) -> bool | None:
    """PostgreSQL's parse_bool: on/off, true/false, yes/no, 1/0, any case, unique prefixes."""
    t = text.lower()
    if not t:
        return None
    if "true".startswith(t) or "yes".startswith(t) or t in ("on", "1"):
        return True
    if "false".startswith(t) or "no".startswith(t) or t in ("of", "off", "0"):
        return False
    return None


def _fmt(x) -> str:
    return format(x, "g") if isinstance(x, float) else str(x)


def _with_unit(amount, unit: str | None) -> str:
    if not unit:
        return _fmt(amount)
    return f"{_fmt(amount)} x {unit}" if unit[0].isdigit() else f"{_fmt(amount)} {unit}"


def _units_phrase(entry: dict) -> str:
    unit = entry["unit"]
    if not unit:
        return ""
    amount = _with_unit("", unit)
    units, _ = _unit_table(unit) or ({}, 0)
    kind = "time" if units is TIME_UNITS else "size"
    listed = ", ".join(reversed(list(units)))
    return f"{amount}, or a {kind} with a unit ({listed})"


def expected(entry: dict) -> str:
    """What a value of this parameter must look like, without the version."""
    vartype = entry["vartype"]
    if vartype == "bool":
        return "expected a boolean: on, off, true, false, yes, no, 1 or 0"
    if vartype == "enum":
        return f"expected one of {', '.join(entry['enumvals'])} (any case)"
    if vartype == "string":
        return "expected a string"
    noun = "an integer" if vartype == "integer" else "a number"
    return f"expected {noun} from {_fmt(entry['min'])} to {_fmt(entry['max'])}{_units_phrase(entry)}"


def read_value(value, entry: dict):
    """(setting, None) where PostgreSQL accepts the value: bool, int/float in the base unit,
    canonical enum value or str; (None, problem without the version) otherwise."""
    text = str(value)
    vartype = entry["vartype"]
    if vartype == "string":
        return text, None
    if vartype == "bool":
        parsed = parse_bool(text)
        return (parsed, None) if parsed is not None else (None, expected(entry))
    if vartype == "enum":
        choices = {v.lower(): v for v in entry["enumvals"]}
        choices.update({k.lower(): v for k, v in (entry.get("aliases") or {}).items()})
        found = choices.get(text.lower())
        return (found, None) if found is not None else (None, expected(entry))
    integer = vartype == "integer"
    number = _number(text, integer)
    if number is None:
        return None, expected(entry)
    amount, rest = number
    if rest:
        converted = _to_base_unit(amount, rest, entry["unit"]) if entry["unit"] else None
        if converted is None:
            what = "a unit" if not entry["unit"] else f"unit {rest!r}"
            return None, f"{what} is not accepted here: {expected(entry)}"
        amount = converted
    if integer:
        amount = round(amount)
        if not INT_MIN <= amount <= INT_MAX:
            return None, f"it exceeds the integer range: {expected(entry)}"
    if not entry["min"] <= amount <= entry["max"]:
        return None, f"that is {_with_unit(amount, entry['unit'])}, out of range: {expected(entry)}"
    return amount, None


# --- the checks -----------------------------------------------------------------------------


def _unknown_hint(name: str, version: int) -> str:
    if name.lower() in RENAMED:
        return f": did you mean {RENAMED[name.lower()]}?"
    close = difflib.get_close_matches(name.lower(), list(_by_lower(version)), n=1, cutoff=0.8)
    if close:
        return f": did you mean {_by_lower(version)[close[0]]!r}?"
    elsewhere = [str(v) for v in versions() if v != version and _lookup(name, v)]
    if elsewhere:
        return f" (it is a PostgreSQL {' and '.join(elsewhere)} parameter)"
    return " or a custom name with a '.' such as 'pg_stat_statements.max'"


def _topology(found: dict, members: int, synchronous_mode: bool, sync_count) -> list[tuple[str, str]]:
    """(parameter, expectation) for the combinations the cluster needs."""
    out = []
    wal_level = found.get("wal_level")
    if wal_level is not None and wal_level[1] not in ("replica", "logical"):
        out.append(("wal_level", "expected replica or logical: minimal WAL cannot feed "
                    "streaming replicas (Patroni would start PostgreSQL with replica instead)"))
    hot_standby = found.get("hot_standby")
    if hot_standby is not None and hot_standby[1] is not True:
        out.append(("hot_standby", "expected on: replicas serve read-only queries "
                    "(haproxy_ro_port), and Patroni starts PostgreSQL with hot_standby=on anyway"))
    senders = max(3, members + 1)
    current = {name: found[name][1] if name in found else default
               for name, default in PATRONI_DEFAULTS.items()}
    if current["max_wal_senders"] < senders:
        out.append(("max_wal_senders", f"expected at least {senders} with {members} Patroni "
                    f"members: one WAL sender per replica ({members - 1}) plus 2 for "
                    "pg_basebackup --wal-method=stream while a replica is (re)built "
                    "(Patroni ignores values below 3)"))
    slots = max(4, members)
    if current["max_replication_slots"] < slots:
        out.append(("max_replication_slots", f"expected at least {slots} with {members} "
                    f"Patroni members: use_slots keeps a slot for every other member "
                    f"({members - 1}) plus one for a member being added "
                    "(Patroni ignores values below 4)"))
    commit = found.get("synchronous_commit")
    if synchronous_mode and commit is not None and commit[1] in ("off", "local"):
        out.append(("synchronous_commit", "expected on, remote_write or remote_apply with "
                    f"patroni_synchronous_mode = True (synchronous_node_count {sync_count}): "
                    "with off or local a commit returns before the synchronous standby has "
                    "its WAL, so a failover can lose it"))
    return out


def parameter_problems(parameters, version, patroni_members: int, synchronous_mode: bool,
                       synchronous_node_count: int) -> list[str]:
    """One line per problem with postgresql_parameters for this PostgreSQL major version and
    Patroni topology; [] when PostgreSQL and Patroni accept every value as written."""
    if isinstance(version, bool) or version not in versions():
        return [f"group_data: postgresql_version = {version!r}: no PostgreSQL parameter "
                f"catalogue for this version: expected one of {', '.join(map(str, versions()))}"]
    if not isinstance(parameters, dict):
        return [f"group_data: postgresql_parameters = {parameters!r}: expected a mapping of "
                "PostgreSQL parameter names to strings, numbers or booleans"]
    pg = f"(PostgreSQL {version})"
    problems: list[str] = []
    found: dict[str, tuple] = {}  # lower-case catalogue name -> (key, setting)
    seen: dict[str, object] = {}

    def problem(key, value, text: str, unset: bool = False) -> None:
        shown = "is not set" if unset else f"= {value!r}"
        problems.append(f"group_data: postgresql_parameters[{key!r}] {shown}: {text}")

    for key, value in parameters.items():
        if not isinstance(key, str) or not key:
            problem(key, value, "expected a parameter name (a non-empty string)")
            continue
        if "." in key:
            continue  # a custom parameter (an extension's): PostgreSQL's catalogue has none
        if key.lower() in seen:
            problem(key, value, f"{seen[key.lower()]!r} is set too: expected each parameter "
                    "once (PostgreSQL parameter names ignore case)")
            continue
        seen[key.lower()] = key
        if key.lower() in PATRONI_MANAGED:
            problem(key, value, f"expected no value here: {PATRONI_MANAGED[key.lower()]}")
            continue
        found_entry = _lookup(key, version)
        if found_entry is None:
            problem(key, value, f"unknown parameter: expected a PostgreSQL {version} "
                    f"parameter{_unknown_hint(key, version)}")
            continue
        name, entry = found_entry
        if entry["context"] == "internal":
            problem(key, value, f"expected no value here: {name} is fixed when PostgreSQL is "
                    "built or initdb runs (context internal), and a server whose "
                    "configuration sets it does not start")
            continue
        if name in FILE_IGNORED:
            problem(key, value, f"expected no value here: PostgreSQL ignores {name} in its "
                    f"configuration file; set {FILE_IGNORED[name]} instead")
            continue
        if not isinstance(value, (str, int, float)):
            problem(key, value, f"expected a string, number or boolean {pg}")
            continue
        setting, trouble = read_value(value, entry)
        if trouble:
            problem(key, value, f"{trouble} {pg}")
            continue
        found[name.lower()] = (key, setting)
        floor = PATRONI_MINIMUMS.get(name.lower())
        if floor and setting < floor[0]:
            least = _with_unit(floor[0], entry["unit"])
            problem(key, value, f"expected at least {least}: Patroni ignores lower values and "
                    f"starts PostgreSQL with its default {floor[1]}")

    if isinstance(patroni_members, bool) or not isinstance(patroni_members, int):
        return problems  # the topology is checked (and reported) by pgha.settings
    for name, text in _topology(found, patroni_members, synchronous_mode, synchronous_node_count):
        if name in found:
            problem(found[name][0], parameters[found[name][0]], text)
        else:
            problem(name, None, f"Patroni's default is {PATRONI_DEFAULTS[name]}: {text}", unset=True)
    return problems
