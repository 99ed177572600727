"""The values of a role's firewall table: for each group of ports, the addresses allowed;
every other source is refused with a TCP reset. Free of pyinfra; templates/ only print."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def rules_file(role: str) -> str:
    return f"/etc/pgha/{role}-firewall.nft"


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
