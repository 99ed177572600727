"""pgha: commands for a deployed cluster.

Usage:
  pgha status [--inventory inventory.py]
  pgha switchover [--to pg-2] [--inventory inventory.py]
  pgha rotate KEY [KEY ...]     new values for secrets keys (then run the deploy)
"""

from __future__ import annotations

import argparse
import sys

from pgha import client, secrets
from pgha.errors import ConfigError, SwitchoverError
from pgha.patroni import rest
from pgha.settings.loader import DEFAULT_INVENTORY, load_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgha", description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=str(DEFAULT_INVENTORY))
    # --inventory is accepted after the command too (`pgha switchover --to pg-2 --inventory X`);
    # SUPPRESS keeps the subcommand from resetting a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--inventory", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", parents=[common], help="members, roles, timelines and lag")
    switch = commands.add_parser("switchover", parents=[common], help="planned change of leader, through Patroni")
    switch.add_argument("--to", dest="candidate", help="Patroni name of the new leader (default: any healthy replica)")
    switch.add_argument("--timeout", type=float, default=60)
    rotate = commands.add_parser(
        "rotate", help="new values for secrets keys in the secrets file; the next deploy rolls them out"
    )
    rotate.add_argument("keys", nargs="+", metavar="KEY", help=f"one of: {', '.join(secrets.KEYS)}")
    args = parser.parse_args(argv)

    if args.command == "rotate":
        return _rotate(args.keys)
    try:
        cluster = load_cluster(args.inventory)
    except ConfigError as error:
        print(f"pgha: {error}", file=sys.stderr)
        return 2
    if args.command == "status":
        for m in rest.members(cluster):
            print(f"{m['name']:<8} {m['host']:<15} {m['role']:<8} {m['state']:<10} TL {m['timeline']} lag {m['lag']}")
        return 0
    try:
        result = client.switchover(cluster, args.candidate, args.timeout)
    except SwitchoverError as error:
        print(f"pgha switchover: {error}", file=sys.stderr)
        return 1
    print(f"switchover {result['from']} -> {result['to']}: writes accepted through HAProxy after {result['seconds']:.2f}s")
    return 0


def _rotate(keys: list[str]) -> int:
    try:
        changed = secrets.rotate(keys)
    except ValueError as error:
        print(f"pgha rotate: {error}", file=sys.stderr)
        return 2
    print(
        f"new values for {', '.join(changed)} in {secrets.path()}: roll them out with "
        "`pyinfra -y <inventory> deploys/all.py` (the old values keep working until it runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
