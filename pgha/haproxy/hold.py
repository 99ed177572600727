#!/usr/bin/python3
"""HAProxy's hold, on a Patroni node (shipped as is by deploys/haproxy.py; the standard
library only, so it runs with the node's python3, which Patroni brings).

`hold`: while Patroni daemons restart in maintenance mode (PostgreSQL keeps running, no
leader can change), their REST API is silent for a few seconds and HAProxy's checks would
mark the leader down: HAProxy stops checking the members that pass their check now (the
leader in the primary backend, the replicas in the replicas backend) and keeps them up.
`release`: checks resume. A hold ends by itself after `release_after` seconds (a systemd
timer) if the deploy never releases it. `out MEMBER` / `in MEMBER`: a replica out of the
read-only port's rotation and back (pgha upgrade). `save-state`: the servers' states into the file the
next HAProxy process reads (haproxy.service's reload runs it before its signal).

Its settings (the admin socket, the backends, the timeouts) are in a JSON file beside the
other pgha files (CONFIG, written by the deploy).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time

CONFIG = "/etc/pgha/haproxy-hold.json"
TIMER = "pgha-haproxy-release"


def ask(socket_path: str, command: str) -> str:
    """One command on HAProxy's admin socket; its whole answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.decode()


def servers(stat_csv: str, backends: list[str]) -> list[dict]:
    """The servers of ``backends`` in `show stat`'s CSV ("* L7OK": a check under way)."""
    rows = csv.DictReader(io.StringIO(stat_csv.lstrip("# ")))
    found = [r for r in rows if r["pxname"] in backends and r["svname"] not in ("FRONTEND", "BACKEND")]
    for r in found:
        r["check_status"] = r["check_status"].lstrip("* ")
    return found


def settled(rows: list[dict], primary: str) -> bool:
    """The primary backend knows its leader: exactly one member up with a passed check,
    every other down."""
    in_primary = [r for r in rows if r["pxname"] == primary]
    up = [r for r in in_primary if r["status"] == "UP" and r["check_status"] == "L7OK"]
    return len(up) == 1 and all(r["status"] == "DOWN" for r in in_primary if r not in up)


def passing(rows: list[dict]) -> list[str]:
    """backend/server of every server up with a passed check: what a hold keeps up."""
    return [f"{r['pxname']}/{r['svname']}" for r in rows if r["status"] == "UP" and r["check_status"] == "L7OK"]


def hold(config: dict, program: str) -> str:
    backends = [config["primary"], config["replicas"]]
    deadline = time.monotonic() + config["settle_timeout"]
    rows = servers(ask(config["socket"], "show stat"), backends)
    while not settled(rows, config["primary"]):
        if time.monotonic() > deadline:
            return "not held: HAProxy does not see exactly one leader"
        time.sleep(0.2)
        rows = servers(ask(config["socket"], "show stat"), backends)
    subprocess.run(["systemctl", "stop", f"{TIMER}.timer"], stderr=subprocess.DEVNULL, check=False)
    subprocess.run(
        ["systemd-run", f"--unit={TIMER}", f"--on-active={config['release_after']}", program, "release"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    held = passing(rows)
    for name in held:
        ask(config["socket"], f"disable health {name}")
    return "held: " + " ".join(held)


def release(config: dict) -> str:
    for r in servers(ask(config["socket"], "show stat"), [config["primary"], config["replicas"]]):
        ask(config["socket"], f"enable health {r['pxname']}/{r['svname']}")
    subprocess.run(["systemctl", "stop", f"{TIMER}.timer"], stderr=subprocess.DEVNULL, check=False)
    return "released"


def without_agent_port(state: str) -> str:
    """`show servers state` with no agent port: HAProxy 2.6 reports the check port there and
    then warns, reading it back, that the server has no agent check (pgha uses none)."""
    lines = state.splitlines()
    header = next((line[2:].split() for line in lines if line.startswith("# ")), [])
    if "srv_agent_port" not in header:
        return state
    column = header.index("srv_agent_port")
    kept = []
    for line in lines:
        fields = line.split(" ")
        if not line.startswith("#") and len(fields) == len(header):
            fields[column] = "0"
        kept.append(" ".join(fields))
    return "\n".join(kept) + "\n"


def save_state(config: dict) -> str:
    """`show servers state` into the state file HAProxy's next process reads (the reload's
    step before its signal); written whole or not at all."""
    try:
        state = without_agent_port(ask(config["socket"], "show servers state"))
    except OSError as error:  # HAProxy not running: nothing to keep
        return f"no state saved: {error}"
    temporary = config["state_file"] + ".new"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(state)
    os.replace(temporary, config["state_file"])
    return "saved"


def rotation(config: dict, server: str, state: str) -> str:
    """A replica out of the read-only port's rotation (``maint``: no new session goes to it,
    pgha upgrade takes it out while it restarts) or back in (``ready``: its check decides)."""
    answer = ask(config["socket"], f"set server {config['replicas']}/{server} state {state}").strip()
    if answer:
        raise SystemExit(f"HAProxy refused {state} for {config['replicas']}/{server}: {answer}")
    return f"{config['replicas']}/{server} {state}"


COMMANDS = {"hold": lambda config, program: hold(config, program), "release": lambda config, _: release(config),
            "save-state": lambda config, _: save_state(config)}
SERVER_COMMANDS = {"out": "maint", "in": "ready"}  # followed by a member's name


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] in SERVER_COMMANDS:
        with open(CONFIG, encoding="utf-8") as file:
            print(rotation(json.load(file), argv[2], SERVER_COMMANDS[argv[1]]))
        return 0
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {'|'.join(COMMANDS)} | {'|'.join(SERVER_COMMANDS)} MEMBER", file=sys.stderr)
        return 2
    with open(CONFIG, encoding="utf-8") as file:
        config = json.load(file)
    print(COMMANDS[argv[1]](config, argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
