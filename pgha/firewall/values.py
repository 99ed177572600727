"""The values of a role's firewall table: for each group of ports, the addresses allowed;
every other source is refused with a TCP reset. Free of pyinfra; templates/ only print."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
DIRECTORY = "/etc/pgha"  # the rules of every role's table


def rules_file(role: str) -> str:
    return f"{DIRECTORY}/{role}-firewall.nft"


def unit_name(role: str) -> str:
    return f"pgha-{role}-firewall"


def unit_file(role: str) -> str:
    return f"/etc/systemd/system/{unit_name(role)}.service"


def _ports(ports: list[int]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"


def table(role: str, why: str, allowed: dict[str, tuple[list[int], list[str]]]) -> dict:
    """``allowed``: set name -> (ports, addresses or networks allowed to reach them)."""
    closed = list(dict.fromkeys(port for ports, _ in allowed.values() for port in ports))
    return {
        "role": role,
        "why": why,
        "table": f"pgha_{role}",
        "sets": [
            {"name": name, "ports": _ports(ports), "elements": list(dict.fromkeys(sources))}
            for name, (ports, sources) in allowed.items()
        ],
        "closed": "{ " + ", ".join(map(str, closed)) + " }",
    }


def unit(role: str, before: str) -> dict:
    return {"role": role, "before": before, "rules": rules_file(role), "table": f"pgha_{role}"}


def paths(roles: list[str]) -> tuple[str, ...]:
    """What the snapshot reads of the firewall of these roles on a host."""
    return (DIRECTORY, *(unit_file(role) for role in roles))


def units(roles: list[str]) -> tuple[str, ...]:
    return tuple(f"{unit_name(role)}.service" for role in roles)
