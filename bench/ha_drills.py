"""RTO/RPO benchmark of the HA drills (pgha/drills/) for timing profiles and replication modes.

Usage:
  .venv/bin/python bench/ha_drills.py [--inventory inventory.py] [--profiles seed,fast]
      [--modes async,sync] [--drills leader-killed,switchover,...]
      [--output bench/results/ha_drills.md]

For each profile and mode the Patroni timings and synchronous_mode are applied with
`pyinfra -y <inventory> deploys/patroni.py --data ...` (the DCS configuration), every drill
runs with the writer and the split-brain watcher, and a table per drill is printed and
written to the output file (markdown). group_data's settings are restored at the end (a
plain deploys/patroni.py run), also after an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from choices import comma_list  # noqa: E402

from pgha.releases import RELEASES, Release  # noqa: E402
from pgha.settings.loader import load_cluster  # noqa: E402
from pgha.waiting import wait_for  # noqa: E402
from pghalab import drills, pyinfra_run  # noqa: E402

# Timing profiles (seconds). Patroni requires loop_wait + 2 * retry_timeout <= ttl (a leader
# must not lose its lock while it is still retrying a DCS or PostgreSQL call), and so does
# pgha/settings/checks.py.
# - seed: the seed's (and group_data's) values.
# - fast: the fastest the nodes' Patroni allows. Patroni 3.0.2 (bookworm): ttl 7 /
#   loop_wait 1 / retry_timeout 3: 1 + 2 * 3 = 7 <= 7, the bound met exactly.
#   retry_timeout stays at 3 s: it must outlast an etcd leader election (1 s election
#   timeout by default) and a slow fsync, or the leader demotes on a DCS hiccup; 2 s is too
#   close to the etcd client's own timeouts. loop_wait 1 instead of 2 buys the second of
#   ttl (one lock renewal per member per second: three small etcd writes a second, nothing
#   for etcd). With ttl 8 / loop_wait 2 a killed leader took 10.8-10.9 s (the lock expires
#   6-8 s after the kill, then the successor's status request to the dead member hangs
#   ~2 s before it promotes). The local etcd proxy marks a dead etcd member down after
#   2 x 2 s, within one retry_timeout.
#   Since 3.2 Patroni raises ttl, loop_wait and retry_timeout below its floors to them
#   (pgha/releases.py: Release.patroni_minimums; Patroni 4.0.7 on trixie: ttl 20), so there
#   fast is ttl 20 / loop_wait 1 / retry_timeout 3.
SEED = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
FAST = {"ttl": 7, "loop_wait": 1, "retry_timeout": 3}
PROFILE_NAMES = ("seed", "fast")


def profiles(release: Release) -> dict[str, dict]:
    """The timing profiles for the nodes' release: fast raised to its Patroni's floors."""
    floors = release.patroni_minimums
    fast = {key: max(value, floors.get(f"patroni_{key}", value)) for key, value in FAST.items()}
    return {"seed": dict(SEED), "fast": fast}
MODES = {"async": False, "sync": True}
ORDER = ["switchover", "leader-patroni-stopped", "leader-killed", "leader-network-cut",
         "leader-haproxy-stopped", "replica-killed", "etcd-one-down", "etcd-quorum-lost",
         "etcd-quorum-lost-leader-cut"]


def targets(drill: str, profile: dict, sync: bool) -> dict:
    """The figures each drill should meet ('rto', 'lost'), as text for the table. A killed
    leader: ttl + 2 s (the lock expires, then the successor's status request to the dead
    member times out after 2 s)."""
    out = {"rto": "-", "lost": "0" if sync else "-"}
    if drill == "switchover" or drill == "leader-patroni-stopped":
        out["rto"] = "<= 2"
    elif drill == "leader-killed":
        out["rto"] = f"<= {profile['ttl'] + 2}"
    return out


def met(value, target: str) -> str:
    if target == "-" or value is None:
        return ""
    number = float(target.split()[-1])
    return " ok" if value <= number else " MISSED"


def apply(inventory: Path, profile: dict | None, sync: bool | None) -> None:
    args = []
    if profile is not None:
        args += ["--data", f"patroni_ttl={profile['ttl']}", "--data", f"patroni_loop_wait={profile['loop_wait']}",
                 "--data", f"patroni_retry_timeout={profile['retry_timeout']}"]
    if sync is not None:
        args += ["--data", f"patroni_synchronous_mode={sync}"]
    drills.log(f"apply: {inventory} deploys/patroni.py {' '.join(args)}")
    code, output = pyinfra_run.deploy(inventory, "deploys/patroni.py", *args, timeout=900)
    if code != 0:
        raise SystemExit(f"deploys/patroni.py failed:\n{output[-6000:]}")


def wait_applied(cluster, profile: dict, sync: bool, old_loop_wait: int) -> None:
    config = drills.dynamic_config(cluster) or {}
    wanted = {"ttl": profile["ttl"], "loop_wait": profile["loop_wait"],
              "retry_timeout": profile["retry_timeout"], "synchronous_mode": sync}
    wrong = {k: config.get(k) for k, v in wanted.items() if config.get(k) != v}
    if wrong:
        raise SystemExit(f"GET /config does not match the profile: {wrong}")
    # members read the DCS configuration at their next HA loop (old loop_wait)
    time.sleep(old_loop_wait + 2)
    if sync and not wait_for(lambda: drills.sync_standbys(cluster), 30, 0.5):
        raise SystemExit("no synchronous standby after enabling synchronous_mode")


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[dict]) -> list[str]:
    header = ("| profile | mode | RTO (s) | target RTO | rows lost | target lost | old/affected node "
              "streams again (s) | two writable primaries | leader | TL | end state |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        t = r["targets"]
        lines.append(
            f"| {r['profile']} | {r['mode']} | {fmt(r.get('rto_s'))}{met(r.get('rto_s'), t['rto'])} | {t['rto']} | "
            f"{fmt(r.get('lost'))}{met(r.get('lost'), t['lost'])} | {t['lost']} | {fmt(r.get('rejoin_s'))} | "
            f"{fmt(r.get('two_primaries'))} | {r.get('old_leader', '-')} -> {r.get('new_leader', '-')} | "
            f"{fmt(r.get('timeline'))} | "
            f"{'ok' if r.get('end_state_ok') else r.get('error') or r.get('end_state_problem') or 'FAILED'} |"
        )
    return lines


def write_report(path: Path, results: dict[str, list[dict]], meta: dict, timings: dict[str, dict]) -> None:
    order = {(p, m): i for i, (p, m) in enumerate((p, m) for p in PROFILE_NAMES for m in MODES)}
    results = {d: sorted(rows, key=lambda r: order.get((r["profile"], r["mode"]), 99)) for d, rows in results.items()}
    all_rows = [r for rows in results.values() for r in rows]
    meta = {**meta, "profiles": [p for p in PROFILE_NAMES if any(r["profile"] == p for r in all_rows)],
            "modes": [m for m in MODES if any(r["mode"] == m for r in all_rows)]}
    out = [
        "# HA drills: RTO / RPO",
        "",
        f"Measured by `bench/ha_drills.py` on {meta['date']} ({meta['host']}), inventory "
        f"`{meta['inventory']}`, {meta['elapsed']:.0f} s. Profiles: "
        + ", ".join(f"{n} (ttl {p['ttl']}, loop_wait {p['loop_wait']}, retry_timeout {p['retry_timeout']})"
                    for n, p in timings.items() if n in meta["profiles"])
        + ". Modes: " + ", ".join(meta["modes"]) + ".",
        "",
        "RTO = the longest gap between two writes acknowledged to a client writing every 50 ms "
        "through HAProxy's 5432 (multi-host DSN, reconnecting every 0.1 s on error). Rows lost = "
        "acknowledged ids missing from the final leader. 'Streams again' = seconds from the fault "
        "until the old leader (the killed replica for replica-killed) shows up as streaming in the "
        "leader's pg_stat_replication ('-': not applicable, or it leads again). Two writable primaries "
        "= two reachable members answering pg_is_in_recovery() = false at overlapping times (polled "
        "every 200 ms on 5434).",
        "",
    ]
    for drill_name, rows in results.items():
        out += [f"## {drill_name}", "", rows[0].get("description", ""), ""] + table(rows) + [""]
        notes = [f"- {r['profile']}/{r['mode']}: {json.dumps(r.get('notes', {}), default=str)}" for r in rows if r.get("notes")]
        if notes:
            out += ["<details><summary>notes</summary>", ""] + notes + ["", "</details>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    rows = [r for rs in results.values() for r in rs]
    path.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=os.environ.get("PGHA_INVENTORY", str(ROOT / "inventory.py")))
    parser.add_argument("--profiles", default="seed,fast")
    parser.add_argument("--modes", default="async,sync")
    parser.add_argument("--drills", default=",".join(ORDER))
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "ha_drills.md"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of the previous run (OUTPUT with .json) that this run does not redo")
    args = parser.parse_args(argv)
    inventory = Path(args.inventory).resolve()
    chosen = comma_list(parser, args.profiles, PROFILE_NAMES, "profile")
    modes = comma_list(parser, args.modes, MODES, "mode")
    names = comma_list(parser, args.drills, drills.DRILLS, "drill")

    cluster = load_cluster(inventory)
    timings = profiles(RELEASES[cluster.settings["debian_release"]])
    output = Path(args.output)
    results: dict[str, list[dict]] = {d: [] for d in ORDER if d in names}
    results.update({d: [] for d in names if d not in results})
    previous: list[dict] = []
    if args.merge and output.with_suffix(".json").exists():
        previous = [r for r in json.loads(output.with_suffix(".json").read_text())["rows"]
                    if not (r["profile"] in chosen and r["mode"] in modes and r["drill"] in names)]
    for row in previous:
        results.setdefault(row["drill"], []).append(row)
    started = time.monotonic()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
            "inventory": str(inventory), "profiles": chosen, "modes": modes}
    loop_wait = (drills.dynamic_config(cluster) or {}).get("loop_wait", cluster.settings["patroni_loop_wait"])
    try:
        for pname in chosen:
            profile = timings[pname]
            for mode in modes:
                sync = MODES[mode]
                apply(inventory, profile, sync)
                wait_applied(cluster, profile, sync, loop_wait)
                loop_wait = profile["loop_wait"]
                for name in names:
                    row = {"profile": pname, "mode": mode, "drill": name,
                           "targets": targets(name, profile, sync)}
                    try:
                        row.update(drills.run_drill(cluster, name))
                    except Exception as error:  # noqa: BLE001 - reported in the table, next drill
                        row["error"] = f"{type(error).__name__}: {error}"
                        drills.log(f"{name}: {row['error']}")
                    results[name].append(row)
                    meta["elapsed"] = time.monotonic() - started
                    write_report(output, {k: v for k, v in results.items() if v}, meta, timings)
    finally:
        apply(inventory, None, None)  # group_data's settings
        meta["elapsed"] = time.monotonic() - started
        if any(results.values()):
            write_report(output, {k: v for k, v in results.items() if v}, meta, timings)
    for name, rows in results.items():
        print(f"\n{name}")
        print("\n".join(table(rows)))
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
