"""Patroni's REST API: its answers parsed, and "what is wrong with this cluster" decided, in
one place for the deploy's check (through curl on a member), the CLI, the drills and the
tests (through requests from the control machine).

Patroni 3.0.2 names the leader's role ``master``, 4.x ``primary`` or ``leader``; both are
``leader`` here, and ``sync_standby`` a ``replica``.
"""

from __future__ import annotations

import requests

from pgha.pki.authority import client_ca

# Patroni's REST API speaks HTTPS only, with the node's certificate (pgha.pki)
RESTAPI_SCHEME = "https"
# Health-check endpoints: 200 only on the leader (master: 3.0.2; primary: both), only on a
# running replica, on any running member.
ROLE_ENDPOINTS = ("master", "primary", "replica", "health")
# What HAProxy and the stop-time handover ask (OPTIONS): /primary answers 200 on the leader
# with Patroni 3.0.2 and 4.0.7 alike. /master is 3.0.2's name; 4.x documents only /primary
# and answers /master merely because any path containing "master" matches its leader test.
LEADER_CHECK = "/primary"
REPLICA_CHECK = "/replica"


def normalize_role(role: str | None) -> str | None:
    if role in {"master", "primary", "leader"}:
        return "leader"
    if role in {"replica", "sync_standby"}:
        return "replica"
    return role


def parse_cluster(data: dict) -> list[dict]:
    """Members of a ``/cluster`` answer, roles normalised (``raw_role`` kept), sorted by name."""
    members = []
    for member in data.get("members", []):
        lag = member.get("lag")
        members.append(
            {
                "name": member.get("name"),
                "host": member.get("host"),
                "role": normalize_role(member.get("role")),
                "raw_role": member.get("role"),
                "state": member.get("state"),
                "timeline": member.get("timeline"),
                "lag": lag if isinstance(lag, int) else (0 if lag is None else lag),
                "pending_restart": bool(member.get("pending_restart")),
            }
        )
    return sorted(members, key=lambda m: m["name"] or "")


def replication_states(leader_status: dict) -> dict[str, str]:
    """{application_name: state} from the leader's ``/patroni`` answer (pg_stat_replication)."""
    return {r.get("application_name"): r.get("state") for r in leader_status.get("replication", [])}


def cluster_problems(expected: list[str], members: list[dict] | None, replication: dict) -> list[str]:
    """Why the cluster is not one leader with every other expected member streaming."""
    if members is None:
        return ["the Patroni REST API does not answer GET /cluster"]
    problems = []
    leaders = [m["name"] for m in members if m["role"] == "leader"]
    if len(leaders) != 1:
        problems.append(f"expected exactly one leader, found {len(leaders)}: {leaders}")
    names = {m["name"] for m in members}
    missing = sorted(set(expected) - names)
    if missing:
        problems.append(f"members missing from the cluster: {', '.join(missing)}")
    for m in members:
        if m["role"] != "leader" and replication.get(m["name"]) != "streaming":
            problems.append(
                f"replica {m['name']} is not streaming from the leader "
                f"(state {m['state']}, replication {replication.get(m['name'], 'not connected')})"
            )
    return problems


def summary(members: list[dict], replication: dict) -> str:
    """The table the deploy prints: member, host, role, state, timeline, lag, replication."""
    header = f"{'member':<8} {'host':<15} {'role':<8} {'state':<10} {'TL':>3} {'lag (bytes)':>12} replication"
    rows = [header, "-" * len(header)]
    for m in members:
        rep = "-" if m["role"] == "leader" else replication.get(m["name"], "not connected")
        rows.append(
            f"{m['name']:<8} {m['host'] or '-':<15} {m['role'] or '-':<8} {m['state'] or '-':<10} "
            f"{m['timeline'] if m['timeline'] is not None else '-':>3} {m['lag']:>12} {rep}"
        )
    return "\n".join(rows)


# --- from the control machine -----------------------------------------------------------------


def url(cluster, address: str, path: str) -> str:
    return f"{RESTAPI_SCHEME}://{address}:{cluster.settings['patroni_restapi_port']}/{path.lstrip('/')}"


def request(cluster, method: str, address: str, path: str, **arguments) -> requests.Response:
    """One call to a member's REST API from the control machine, its certificate checked
    against the cluster CA (pgha.pki)."""
    return requests.request(method, url(cluster, address, path), verify=str(client_ca(cluster)), **arguments)


def get_json(cluster, path: str, timeout: float = 2, address: str | None = None):
    """``GET path`` as JSON from ``address``, or from the first member that answers; None."""
    addresses = [address] if address else [n.address for n in cluster.patroni]
    for each in addresses:
        try:
            return request(cluster, "GET", each, path, timeout=timeout).json()
        except (requests.RequestException, ValueError):
            continue
    return None


def members(cluster, timeout: float = 2, address: str | None = None) -> list[dict]:
    """``/cluster`` from ``address`` or the first member that answers; [] if none does."""
    data = get_json(cluster, "cluster", timeout, address)
    return parse_cluster(data) if isinstance(data, dict) else []


def leader(cluster) -> dict | None:
    return next((m for m in members(cluster) if m["role"] == "leader"), None)


def health(cluster, timeout: float = 2) -> dict:
    """{"members", "leader", "replication", "problems"}: the deploy check's verdict, asked
    from the control machine."""
    found = get_json(cluster, "cluster", timeout)
    current = parse_cluster(found) if isinstance(found, dict) else None
    lead = next((m for m in current or [] if m["role"] == "leader"), None)
    replication = {}
    if lead:
        status = get_json(cluster, "patroni", timeout, address=lead["host"]) or {}
        replication = replication_states(status)
    expected = [n.patroni_name for n in cluster.patroni]
    return {
        "members": current or [],
        "leader": lead,
        "replication": replication,
        "problems": cluster_problems(expected, current, replication),
    }
