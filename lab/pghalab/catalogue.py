"""Regenerate a PostgreSQL parameter catalogue, pgha/postgres/catalogue/<major>.json, from the
real server of that major version.

How to run it: on a machine or container that has Debian's ``postgresql-<major>`` package
installed (Debian 12 "bookworm" ships postgresql-15, Debian 13 "trixie" ships postgresql-17),
with python3 and a copy of this repository's ``pgha`` directory, from the directory holding
``pgha``, as root (the PostgreSQL commands then run as the ``postgres`` user) or as ``postgres``:

    python3 -m pghalab.catalogue 15 > pgha/postgres/catalogue/15.json
    python3 -m pghalab.catalogue 17 > pgha/postgres/catalogue/17.json

(``python3 lab/pghalab/catalogue.py 15`` works too; ``--record DIR`` after the
version also saves PostgreSQL's raw answers in DIR, from which tests/unit/recorded/ takes
its samples.) Only the standard library is used. The packaged cluster is not needed
(``create_main_cluster = false`` in /etc/postgresql-common/createcluster.d/ keeps the
package from making one) and no network is touched: everything runs on a temporary data
directory that is removed afterwards.

The committed files were made in throw-away LXC containers, on a Debian host, like this
(trixie mounts a tmpfs on /tmp, so the copy goes under /var/tmp)::

    lxc-create -n pgha-catalogue-trixie -t debian -- -r trixie
    lxc-start -n pgha-catalogue-trixie          # then wait for its address on lxcbr0
    R=/var/lib/lxc/pgha-catalogue-trixie/rootfs
    mkdir -p $R/etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' > $R/etc/postgresql-common/createcluster.d/pgha.conf
    lxc-attach -n pgha-catalogue-trixie -- sh -c 'apt-get update &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-17 python3'
    mkdir -p $R/var/tmp/gen/pgha/postgres/catalogue
    cp pgha/__init__.py $R/var/tmp/gen/pgha/
    cp pgha/postgres/__init__.py $R/var/tmp/gen/pgha/postgres/
    cp lab/pghalab/catalogue.py \
        $R/var/tmp/gen/pgha/postgres/catalogue/
    lxc-attach -n pgha-catalogue-trixie -- sh -c \
        'cd /var/tmp/gen && python3 -m pghalab.catalogue 17' \
        > pgha/postgres/catalogue/17.json
    lxc-stop -k -n pgha-catalogue-trixie; lxc-destroy -n pgha-catalogue-trixie

and the same with bookworm, postgresql-15 and 15.

What it asks PostgreSQL (``/usr/lib/postgresql/<major>/bin``):

1. ``postgres --describe-config``: one tab-separated line per parameter meant for
   postgresql.conf (help_config.c leaves out those flagged GUC_NO_SHOW_ALL,
   GUC_NOT_IN_SAMPLE or GUC_DISALLOW_IN_FILE): name, context, group, vartype
   (BOOLEAN/INTEGER/REAL/STRING/ENUM), reset or boot value, min, max, short and long
   description. It has no units and no enum values.
2. ``pg_settings`` of a throw-away server (``initdb`` in a temporary directory, started with
   ``listen_addresses=''`` so it listens on a Unix socket in that directory only), as JSON
   from ``psql``: name, context, vartype, unit, min_val, max_val, enumvals. This adds the
   units, the enum values and the parameters describe-config leaves out (the ``internal``
   ones, developer options). Where both name a parameter they must agree, or nothing is
   written.
3. For each enum parameter, which of PostgreSQL's hidden spellings (enum entries marked
   hidden in guc_tables.c: the boolean words, wal_level's archive/hot_standby, the message
   levels' debug) it accepts, and what each means: ``postgres -D <tmp> -C NAME -c
   NAME=SPELLING`` on the stopped data directory prints the value it resolves to, or fails.

Output: JSON, keys sorted, one stable text for one server version: ``{"postgresql": <the
server's version string>, "parameters": {name: {"context", "vartype", "unit", "min", "max",
"enumvals", "aliases", "describe_config"}}}``, where ``aliases`` maps a hidden spelling to
the enum value it stands for and ``describe_config`` says whether describe-config lists the
parameter. Custom parameters (a '.' in the name) are left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Spellings PostgreSQL accepts for some enum parameters without listing them in enumvals.
HIDDEN_SPELLINGS = ("on", "off", "true", "false", "yes", "no", "1", "0",
                    "archive", "hot_standby", "debug")

_VARTYPES = {"BOOLEAN": "bool", "INTEGER": "integer", "REAL": "real", "STRING": "string", "ENUM": "enum"}

PG_SETTINGS_QUERY = (
    "SELECT json_agg(json_build_object('name', name, 'context', context, 'vartype', vartype, "
    "'unit', unit, 'min_val', min_val, 'max_val', max_val, 'enumvals', enumvals) ORDER BY name) "
    "FROM pg_catalog.pg_settings"
)


def _number(text: str | None, vartype: str):
    if text is None or text == "" or vartype not in ("integer", "real"):
        return None
    return int(text) if vartype == "integer" else float(text)


def parse_describe_config(text: str) -> dict[str, dict]:
    """``postgres --describe-config`` output -> {name: {context, vartype, min, max}}."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 7 or fields[3] not in _VARTYPES:
            raise ValueError(f"describe-config: unexpected line {line!r}")
        name, context, _group, vartype, _reset, low, high = fields[:7]
        vartype = _VARTYPES[vartype]
        out[name] = {
            "context": context,
            "vartype": vartype,
            "min": _number(low, vartype),
            "max": _number(high, vartype),
        }
    return out


def parse_pg_settings(text: str) -> dict[str, dict]:
    """The JSON array of pg_settings rows (PG_SETTINGS_QUERY) -> {name: entry}."""
    out: dict[str, dict] = {}
    for row in json.loads(text):
        if "." in row["name"]:
            continue  # a custom (extension's) parameter, not PostgreSQL's own
        vartype = row["vartype"]
        out[row["name"]] = {
            "context": row["context"],
            "vartype": vartype,
            "unit": row["unit"],
            "min": _number(row["min_val"], vartype),
            "max": _number(row["max_val"], vartype),
            "enumvals": list(row["enumvals"]) if row["enumvals"] is not None else None,
        }
    return out


def parse_aliases(text: str) -> dict[str, dict[str, str]]:
    """Lines ``name<TAB>spelling<TAB>value`` (accepted hidden spellings) -> {name: {spelling: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.strip():
            name, spelling, value = line.split("\t")
            out.setdefault(name, {})[spelling] = value
    return out


def build_catalogue(server_version: str, described: dict, settings: dict, aliases: dict) -> dict:
    """Merge the three sources; refuse (ValueError) where describe-config and pg_settings differ."""
    unknown = sorted(set(described) - set(settings))
    if unknown:
        raise ValueError(f"describe-config lists parameters pg_settings lacks: {unknown}")
    parameters = {}
    for name, entry in sorted(settings.items()):
        if name in described:
            for key in ("context", "vartype", "min", "max"):
                if described[name][key] != entry[key]:
                    raise ValueError(
                        f"{name}: describe-config says {key} = {described[name][key]!r}, "
                        f"pg_settings says {entry[key]!r}"
                    )
        parameters[name] = {
            **entry,
            "aliases": dict(sorted(aliases.get(name, {}).items())),
            "describe_config": name in described,
        }
    return {"postgresql": server_version, "parameters": parameters}


def render(catalogue: dict) -> str:
    return json.dumps(catalogue, indent=1, sort_keys=True) + "\n"


# --- talking to the real server ------------------------------------------------------------


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        argv = ["runuser", "-u", "postgres", "--", *argv]
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, **kwargs)


def _checked(argv: list[str]) -> str:
    result = _run(argv)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def probe_aliases(postgres: str, data: str, settings: dict) -> str:
    """Which hidden spellings each settable enum parameter accepts, as parse_aliases' lines."""
    lines = []
    for name, entry in sorted(settings.items()):
        if entry["vartype"] != "enum" or entry["context"] == "internal":
            continue
        listed = {v.lower() for v in entry["enumvals"]}
        for spelling in HIDDEN_SPELLINGS:
            if spelling in listed:
                continue
            result = _run([postgres, "-D", data, "-C", name, "-c", f"{name}={spelling}"])
            if result.returncode == 0:
                lines.append(f"{name}\t{spelling}\t{result.stdout.strip()}")
    return "".join(line + "\n" for line in lines)


def generate(major: int, record: Path | None = None) -> dict:
    bindir = Path(f"/usr/lib/postgresql/{major}/bin")
    if not (bindir / "postgres").exists():
        raise SystemExit(f"{bindir}/postgres not found: install postgresql-{major} first")
    postgres, psql = str(bindir / "postgres"), str(bindir / "psql")
    if not Path(psql).exists():
        psql = "psql"
    server_version = _checked([postgres, "--version"]).strip().removeprefix("postgres (PostgreSQL) ")
    describe = _checked([postgres, "--describe-config"])
    described = parse_describe_config(describe)
    with tempfile.TemporaryDirectory(prefix="pgha-catalogue-") as tmp:
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres:", tmp], check=True)
        data = f"{tmp}/data"
        _checked([str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-N",
                  "-E", "UTF8", "--locale=C"])
        options = f"-c listen_addresses='' -k {tmp} -p 54329"
        _checked([str(bindir / "pg_ctl"), "-D", data, "-w", "-s", "-l", f"{tmp}/log",
                  "-o", options, "start"])
        try:
            rows = _checked([psql, "-h", tmp, "-p", "54329", "-U", "postgres", "-d", "postgres",
                             "-AtX", "-c", PG_SETTINGS_QUERY])
        finally:
            _checked([str(bindir / "pg_ctl"), "-D", data, "-w", "-s", "-m", "fast", "stop"])
        settings = parse_pg_settings(rows)
        probed = probe_aliases(postgres, data, settings)
    if record is not None:  # the raw answers, for tests/unit/recorded/
        record.mkdir(parents=True, exist_ok=True)
        (record / "describe-config.txt").write_text(describe, encoding="utf-8")
        (record / "pg_settings.json").write_text(rows, encoding="utf-8")
        (record / "enum-aliases.txt").write_text(probed, encoding="utf-8")
    return build_catalogue(server_version, described, settings, parse_aliases(probed))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    record = None
    if len(args) == 3 and args[1] == "--record":
        record = Path(args.pop())
        args.pop()
    if len(args) != 1 or not args[0].isdigit():
        print(__doc__, file=sys.stderr)
        print("usage: python3 -m pghalab.catalogue MAJOR [--record DIR] "
              "> pgha/postgres/catalogue/MAJOR.json", file=sys.stderr)
        return 2
    sys.stdout.write(render(generate(int(args[0]), record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
