"""bench/throughput.py's pure parts: pgbench's output, the password kept off the command
line, the interleaved plan and the ratios; pgha.client.options behind client.dsn."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from pgha import client

from .conftest import PATRONI_NODES, REPO_ROOT

_spec = importlib.util.spec_from_file_location("throughput", REPO_ROOT / "bench" / "throughput.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclasses look their module up
_spec.loader.exec_module(bench)

PGBENCH_15 = """\
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 228140
number of failed transactions: 0 (0.000%)
latency average = 0.700 ms
initial connection time = 12.345 ms
tps = 11407.123456 (without initial connection time)
"""


def test_parse_pgbench_summary():
    assert bench.parse_pgbench(PGBENCH_15) == {"tps": 11407.123456, "latency_ms": 0.7, "failed": 0}
    assert bench.parse_pgbench("pgbench: error: connection to server failed")["tps"] is None


def test_dsn_is_options_formatted(cluster):
    opts = client.options(cluster, "haproxy_rw_port")
    assert client.dsn(cluster) == client.format_dsn(opts)
    assert opts["host"] == ",".join(address for address, _pg, _al in PATRONI_NODES.values())
    assert opts["target_session_attrs"] == "read-write"
    assert "target_session_attrs" not in client.options(cluster, "postgresql_port")
    one = client.options(cluster, "postgresql_port", host="10.0.3.9", port=5434, sslmode="verify-full")
    assert (one["host"], one["port"], one["sslmode"]) == ("10.0.3.9", 5434, "verify-full")


def test_password_stays_off_pgbench_command_line(cluster, tmp_path):
    endpoint = bench.endpoints(cluster, {"name": "pg-1", "host": "10.0.3.141"},
                               {"name": "pg-2", "host": "10.0.3.201"})["other-5432"]
    opts = bench.options_for(cluster, endpoint)
    line = bench.conninfo(opts)
    assert cluster.secrets["admin_password"] not in line and "password=" not in line
    assert "host=10.0.3.201 port=5432 " in line and "dbname=pgbench" in line
    # everything else client.options says (TLS options to come) reaches pgbench
    assert set(opts) - {"password"} == {k.split("=")[0] for k in line.split()}
    assert bench.pgpass_line({"user": "dba", "password": "a:b\\c"}) == "*:*:*:dba:a\\:b\\\\c\n"


def test_plan_interleaves_and_rotates():
    plan = bench.plan_of(["select", "tpcb"], ["leader-5434", "replica-5434", "other-5432"])
    assert plan == [("select", "leader-5434"), ("select", "replica-5434"), ("select", "other-5432"),
                    ("tpcb", "leader-5434"), ("tpcb", "other-5432")]  # no writes on a replica
    # mode by mode; within a mode, the first target changes every round
    assert bench.rotated(plan, 1) == [plan[1], plan[2], plan[0], plan[4], plan[3]]
    assert [bench.rotated(plan, r)[0] for r in range(3)] == plan[:3]
    assert bench.rotated(plan, 6) == plan  # 6: a whole turn of both blocks (3 and 2 targets)


def test_summary_ratios_against_the_direct_port():
    runs = [{"mode": "select", "target": "leader-5434", "tps": tps, "latency_ms": 1.0} for tps in (100, 120, 110)]
    runs += [{"mode": "select", "target": "leader-5432", "tps": tps, "latency_ms": 1.5} for tps in (80, 60, None)]
    runs[-1]["error"] = "pgbench on leader-5432 exited 1"
    rows = bench.summarize(runs, [("select", "leader-5434"), ("select", "leader-5432")])
    direct, proxied = rows
    assert direct["median_tps"] == 110 and "ratio" not in direct
    assert proxied["median_tps"] == 70 and proxied["failed_runs"] == 1
    assert proxied["ratio"] == pytest.approx(0.65)  # median of the rounds' 0.8 and 0.5
    assert proxied["ratio_of_medians"] == pytest.approx(70 / 110)
    assert proxied["round_ratios"] == [pytest.approx(0.8), pytest.approx(0.5)]
    assert bench.ratio_lines(rows) == ["select-only via leader-5432 / leader-5434 = 0.65x"]


def test_missing_pgbench_is_a_message_not_a_traceback(monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    monkeypatch.setattr(bench.os, "geteuid", lambda: 1000)
    with pytest.raises(bench.BenchError, match="apt-get install postgresql-client"):
        bench.ensure_pgbench()


def test_unreachable_target_is_named(cluster, monkeypatch, capsys):
    def refuse(dsn):
        raise bench.psycopg2.OperationalError("connection refused")
    monkeypatch.setattr(bench.psycopg2, "connect", refuse)
    endpoint = bench.endpoints(cluster, {"name": "pg-1", "host": "10.0.3.141"},
                               {"name": "pg-2", "host": "10.0.3.201"})["leader-5432"]
    with pytest.raises(bench.BenchError, match=r"leader-5432 \(pg-1 10.0.3.141:5432\).*connection refused"):
        bench.connect(cluster, endpoint)
