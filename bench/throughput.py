"""Throughput benchmark (pgbench): PostgreSQL direct against the HAProxy hop.

Usage:
  .venv/bin/python bench/throughput.py [--inventory inventory.py] [--scale 10]
      [--rounds 3] [--seconds 20] [--clients 8] [--jobs 2] [--connect]
      [--modes select,tpcb] [--targets leader-5434,leader-5432,...] [--reinit]
      [--output bench/results/throughput.md]

pgbench runs on the control machine (it must be in client_networks). Missing pgbench: the
script installs Debian's postgresql-client when run as root (as the Makefile installs what
it needs), and otherwise says what to install. The admin user (patroni_admin_user) owns a
database `pgbench`, initialised once through the leader's PostgreSQL port (`pgbench -i -s
SCALE`; again only with --reinit or another scale).

Targets (the leader is asked of Patroni's REST API at the start):
  leader-5434   the leader's PostgreSQL itself                 (select, tpcb)
  leader-5432   the leader node's HAProxy read-write port      (select, tpcb)
  other-5432    a replica node's HAProxy read-write port, which forwards to the leader
                over the network (the hop a client of any node takes) (select, tpcb)
  replica-5434  one replica's PostgreSQL itself                (select)
  replicas-5433 that replica node's HAProxy read-only port: round-robin over the replicas
                (select)
  leader-6432   the leader node's PgBouncer (pool pgbench -> its HAProxy 5432) (select, tpcb)
  other-6432    a replica node's PgBouncer -> its HAProxy 5432 -> the leader (select, tpcb)
  replicas-6432 that replica node's PgBouncer, pool pgbench_ro -> its HAProxy 5433 (select)
The pooled targets need `pgbench` among pgbouncer_databases (the lab pools `postgres` only):
deploy the pooler with --data 'pgbouncer_databases=["postgres","pgbench"]' first.
Modes: select = `pgbench -S` (read-only, no vacuum), tpcb = pgbench's default TPC-B-like
script (writes: only on the read-write targets).

Every round runs every (mode, target) pair once: mode by mode, the mode's targets in an
order rotated by one each round, so the noise of a shared 2-core machine hits all targets
alike. A mode that follows TPC-B's writes starts after a settle step (VACUUM of the pgbench
tables on the leader, replicas caught up): otherwise the first target after the writes pays
for their clean-up (measured: select-only direct on the leader at 1,800 tps instead of
14,000 in the rounds where it came first). The report gives each target's median tps and
its ratio to the direct port of the same server (leader-5434 for the read-write targets,
replica-5434 for replicas-5433), the median of the ratios within each round. Connection strings come from
pgha.client.options (so TLS options added there apply here too); the password goes to
pgbench through a 0600 PGPASSFILE, never on a command line. A target that cannot be reached
stops the benchmark before any run with a message naming it; a run that fails later is
reported as failed in the table (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg2  # noqa: E402
import requests  # noqa: E402
from choices import comma_list  # noqa: E402
from throughput_report import (  # noqa: E402
    BY_NAME,
    DATABASE,
    POOLED,
    TARGETS,
    Target,
    last_lines,
    loadavg,
    parse_pgbench,
    plan_of,
    ratio_lines,
    rotated,
    summarize,
    table,
    write_report,
)

from pgha import client  # noqa: E402
from pgha.errors import ConfigError  # noqa: E402
from pgha.patroni import rest  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402

MODES = {"select": ["-S", "-n"], "tpcb": []}  # select-only: no vacuum (a replica refuses it)
CLIENT_PACKAGE = "postgresql-client"  # Debian's pgbench
# seconds: the libpq connect_timeout of the bench (client.options' 1 s is tight while 8
# pgbench clients connect at once on a loaded 2-core machine)
CONNECT_TIMEOUT = 5


class BenchError(Exception):
    """A problem the user must see as one clear message (no traceback)."""




def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- pgbench on the control machine ---------------------------------------------------------


def ensure_pgbench() -> str:
    """pgbench's path; installs postgresql-client when missing and running as root."""
    found = shutil.which("pgbench")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError(f"pgbench is not installed: run `apt-get install {CLIENT_PACKAGE}` as root "
                         "(or run this script as root, which installs it)")
    log(f"pgbench missing: apt-get install {CLIENT_PACKAGE}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", CLIENT_PACKAGE]):
        proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed:\n{proc.stderr.strip()[-2000:]}")
    found = shutil.which("pgbench")
    if not found:
        raise BenchError(f"{CLIENT_PACKAGE} installed but no pgbench on PATH")
    return found


def pgpass_line(opts: dict) -> str:
    """A .pgpass line for the password of ``opts`` (any host, port and database)."""
    def esc(value) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{esc(opts['user'])}:{esc(opts['password'])}\n"


def conninfo(opts: dict) -> str:
    """The connection string pgbench gets on its command line: everything but the password."""
    return client.format_dsn({k: v for k, v in opts.items() if k != "password"})


@dataclass(frozen=True)
class Endpoint:
    target: Target
    node: str  # Patroni name
    address: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.target.name} ({self.node} {self.address}:{self.port})"


def endpoints(cluster, leader: dict, replica: dict) -> dict[str, Endpoint]:
    s = cluster.settings
    out = {}
    for t in TARGETS:
        member = leader if t.role == "leader" else replica
        out[t.name] = Endpoint(t, member["name"], member["host"], int(s[t.port_setting]))
    return out


def options_for(cluster, endpoint: Endpoint, dbname: str = DATABASE) -> dict:
    """client.options for one node and port (not the multi-host default); through PgBouncer,
    the database's pool (``<db>`` or ``<db>_ro``)."""
    return client.options(cluster, endpoint.target.port_setting, host=endpoint.address,
                          port=endpoint.port, dbname=dbname + endpoint.target.pool_suffix,
                          connect_timeout=CONNECT_TIMEOUT,
                          application_name="pgha-bench")


def leader_and_replica(cluster) -> tuple[dict, dict]:
    try:
        members = rest.members(cluster)
    except requests.RequestException as error:
        raise BenchError(f"Patroni's REST API does not answer GET /cluster: {error}") from None
    leaders = [m for m in members if m["role"] == "leader"]
    replicas = [m for m in members if m["role"] == "replica" and m["state"] in ("running", "streaming")]
    if len(leaders) != 1:
        raise BenchError(f"expected one leader, Patroni reports {len(leaders)}: {members}")
    if not replicas:
        raise BenchError("no running replica: the replica targets need one")
    return leaders[0], replicas[0]


def connect(cluster, endpoint: Endpoint, dbname: str = DATABASE):
    try:
        return psycopg2.connect(client.format_dsn(options_for(cluster, endpoint, dbname)))
    except psycopg2.Error as error:
        raise BenchError(f"cannot connect to {endpoint.label} as "
                         f"{cluster.settings['patroni_admin_user']}: {str(error).strip()}") from None


def prepare_database(cluster, pgbench: str, env: dict, leader: Endpoint, scale: int, reinit: bool) -> str:
    """Create the database (admin user) and initialise it with pgbench -i once; returns what
    was done."""
    with closing(connect(cluster, leader, "postgres")) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f"create database {DATABASE}")
                log(f"created database {DATABASE} on {leader.label}")
    current = None
    with closing(connect(cluster, leader)) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('pgbench_branches') is not null")
        if cur.fetchone()[0]:
            cur.execute("select count(*) from pgbench_branches")
            current = cur.fetchone()[0]
    if current == scale and not reinit:
        return f"reused (scale {scale})"
    log(f"pgbench -i -s {scale} on {leader.label}")
    command = [pgbench, "-i", "-q", "-s", str(scale), conninfo(options_for(cluster, leader))]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BenchError(f"pgbench -i on {leader.label} failed: {last_lines(proc.stderr)}")
    return f"initialised (scale {scale})"


def wait_replicas_caught_up(cluster, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            members = rest.members(cluster)
        except requests.RequestException:
            members = []
        replicas = [m for m in members if m["role"] == "replica"]
        if replicas and all(m["state"] == "streaming" and m["lag"] == 0 for m in replicas):
            return
        time.sleep(1)
    raise BenchError(f"the replicas did not catch up with the leader within {timeout:.0f} s")


def preflight(cluster, chosen: dict[str, Endpoint]) -> None:
    """Every chosen target answers (and the read-write ones write); all problems at once."""
    problems = []
    for endpoint in chosen.values():
        try:
            with closing(connect(cluster, endpoint)) as conn, conn.cursor() as cur:
                cur.execute("select pg_is_in_recovery(), inet_server_addr()::text")
                recovery, server = cur.fetchone()
            if "tpcb" in endpoint.target.modes and recovery:
                problems.append(f"{endpoint.label} reaches a server in recovery ({server}): not writable")
        except BenchError as error:
            problems.append(str(error))
        except psycopg2.Error as error:
            hint = (f" (PgBouncer pools only pgbouncer_databases: deploy the pooler with {DATABASE!r} among them, "
                    f"e.g. --data 'pgbouncer_databases=[\"postgres\",\"{DATABASE}\"]', or leave this target out)"
                    if endpoint.target.name in POOLED else "")
            problems.append(f"{endpoint.label}: {str(error).strip()}{hint}")
    if problems:
        raise BenchError("target(s) not usable:\n  " + "\n  ".join(problems))


def run_pgbench(pgbench: str, env: dict, cluster, endpoint: Endpoint, mode: str, args) -> dict:
    command = [pgbench, *MODES[mode], "-T", str(args.seconds), "-c", str(args.clients), "-j", str(args.jobs),
               *(["-C"] if args.connect else []), *(["-M", args.protocol] if args.protocol else []),
               conninfo(options_for(cluster, endpoint))]
    started = time.time()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=args.seconds + 120)
    except subprocess.TimeoutExpired:
        return {"error": f"pgbench on {endpoint.label} did not finish within {args.seconds + 120} s"}
    result = {**parse_pgbench(proc.stdout), "started": started}
    if proc.returncode != 0 or result["tps"] is None:
        result["error"] = f"pgbench on {endpoint.label} exited {proc.returncode}: {last_lines(proc.stderr)}"
    return result


# --- main ---------------------------------------------------------------------------------


def settle(cluster, leader: Endpoint) -> None:
    """After TPC-B's writes: VACUUM the pgbench tables (dead rows, hint bits, visibility
    map) and wait for the replicas to replay it, so the next run does not pay for it."""
    with closing(connect(cluster, leader)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute("vacuum pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history")
            except psycopg2.Error as error:
                raise BenchError(f"VACUUM on {leader.label} failed: {str(error).strip()}") from None
    wait_replicas_caught_up(cluster)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=os.environ.get("PGHA_INVENTORY", str(ROOT / "inventory.py")))
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i scale (default 10: 1M accounts)")
    parser.add_argument("--reinit", action="store_true", help="initialise the database again")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="duration of each run (pgbench -T)")
    parser.add_argument("--clients", type=int, default=8, help="pgbench -c")
    parser.add_argument("--jobs", type=int, default=2, help="pgbench -j")
    parser.add_argument("--connect", action="store_true", help="pgbench -C: a new connection per transaction")
    parser.add_argument("--protocol", choices=["simple", "extended", "prepared"], help="pgbench -M")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--targets", default=",".join(t.name for t in TARGETS))
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "throughput.md"))
    args = parser.parse_args(argv)
    modes = comma_list(parser, args.modes, MODES, "mode")
    names = comma_list(parser, args.targets, BY_NAME, "target")
    for key in ("scale", "rounds", "seconds", "clients", "jobs"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be at least 1")
    plan = plan_of(modes, names)
    if not plan:
        parser.error("no (mode, target) pair to run: tpcb runs on the read-write targets only")
    try:
        return bench(args, plan, names)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"error: the inventory {args.inventory}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def bench(args, plan: list[tuple[str, str]], names: list[str]) -> int:
    inventory = Path(args.inventory).resolve()
    pgbench = ensure_pgbench()
    cluster = load_cluster(inventory)
    leader, replica = leader_and_replica(cluster)
    all_endpoints = endpoints(cluster, leader, replica)
    chosen = {n: all_endpoints[n] for n in names}
    output = Path(args.output)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pgha-bench-") as tmp:
        passfile = Path(tmp) / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pgpass_line(options_for(cluster, all_endpoints["leader-5434"])))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile)
        database = prepare_database(cluster, pgbench, env, all_endpoints["leader-5434"], args.scale, args.reinit)
        wait_replicas_caught_up(cluster)
        preflight(cluster, chosen)
        with closing(connect(cluster, all_endpoints["leader-5434"])) as conn, conn.cursor() as cur:
            cur.execute("show server_version")
            server_version = cur.fetchone()[0]
        # "pgbench (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        found = re.search(r"\) (\S+)", subprocess.run([pgbench, "--version"], capture_output=True, text=True).stdout)
        version = found.group(1) if found else "?"
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
                "cores": os.cpu_count(), "load_before": loadavg(), "inventory": str(inventory),
                "pgbench_version": version, "server_version": server_version, "scale": args.scale,
                "database": database, "rounds": args.rounds, "seconds": args.seconds, "clients": args.clients,
                "jobs": args.jobs, "connect": args.connect, "protocol": args.protocol,
                "leader": f"{leader['name']} {leader['host']}", "replica": f"{replica['name']} {replica['host']}"}
        runs: list[dict] = []
        total = args.rounds * len(plan)
        wrote = False
        for round_index in range(args.rounds):
            for mode, name in rotated(plan, round_index):
                if wrote and mode != "tpcb":
                    settle(cluster, all_endpoints["leader-5434"])
                    wrote = False
                wrote = wrote or mode == "tpcb"
                endpoint = chosen[name]
                result = run_pgbench(pgbench, env, cluster, endpoint, mode, args)
                runs.append({"round": round_index + 1, "mode": mode, "target": name, **result})
                shown = f"{result['tps']:.0f} tps" if result.get("tps") is not None else "-"
                log(f"[{len(runs)}/{total}] round {round_index + 1} {mode:6} {endpoint.label}: "
                    f"{result.get('error') or shown}")
    try:
        after, _ = leader_and_replica(cluster)
        meta["leader_after"] = f"{after['name']} {after['host']}"
    except BenchError as error:
        meta["leader_after"] = f"unknown ({error})"
    meta["load_after"] = loadavg()
    meta["elapsed"] = time.monotonic() - started
    rows = summarize(runs, plan)
    write_report(output, meta, rows, runs, chosen)
    print()
    print("\n".join(table(rows, chosen)))
    print()
    print("\n".join(ratio_lines(rows)))
    if meta["leader_after"] != meta["leader"]:
        print(f"warning: the leader changed during the benchmark ({meta['leader']} -> {meta['leader_after']})")
    print(f"\nwritten: {output} (+ .json)")
    return 1 if any(r.get("error") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
