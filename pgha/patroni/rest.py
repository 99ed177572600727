"""Patroni's REST API: its answers parsed, and "what is wrong with this cluster" decided, in
one place for the deploy's check (through curl on a member), the CLI, the drills and the
tests (through requests from the control machine).

Patroni 3.0.2 names the leader's role ``master``, 4.x ``primary`` or ``leader``; both are
``leader`` here, and ``sync_standby`` a ``replica``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from pgha.cluster import Cluster, Node
from pgha.pki.authority import client_ca
from pgha.table import format_table

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


def format_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def lag_text(lag, maximum: int | None) -> str:
    """A replica's lag with its unit, and against maximum_lag_on_failover: beyond it Patroni
    would not promote that replica."""
    if not isinstance(lag, int):
        return str(lag) if lag not in (None, "") else "-"
    text = format_bytes(lag)
    if maximum is not None and lag > maximum:
        text += f" (> maximum_lag_on_failover {format_bytes(maximum)}: no failover to it)"
    return text


def live_lag(leader_status: dict | None, replica_status: dict | None) -> int | None:
    """Bytes a replica is behind, from the two members' own GET /patroni asked at the same
    moment (the DCS's figure is as old as each member's last loop: right after a WAL switch it
    shows the whole segment); None when either does not say."""
    location = ((leader_status or {}).get("xlog") or {}).get("location")
    xlog = (replica_status or {}).get("xlog") or {}
    positions = [p for p in (xlog.get("received_location"), xlog.get("replayed_location")) if isinstance(p, int)]
    if not isinstance(location, int) or not positions:
        return None
    return max(0, location - max(positions))


SUMMARY_HEADERS = ("member", "host", "role", "state", "TL", "lag", "replication", "note")


def member_rows(expected: list[dict], members: list[dict] | None, replication: dict,
                own: dict[str, dict | None], maximum_lag: int | None = None) -> list[dict]:
    """Every member of the inventory (``expected``: {"name", "host"}), then any member the
    DCS lists that the inventory does not, reconciled from two views: the DCS's (``members``,
    GET /cluster) and each member's own REST API (``own``: name -> its GET /patroni, None when
    it does not answer). A member whose REST API is silent is "unreachable", whatever the
    DCS still says (its leader key lives until the ttl runs out)."""
    by_name = {m["name"]: m for m in members or []}
    leader_status = next((own.get(m["name"]) for m in members or [] if m["role"] == "leader"), None)
    rows = []
    for node in expected:
        dcs, status = by_name.get(node["name"]), own.get(node["name"])
        row = {"name": node["name"], "host": node["host"], "role": None, "state": None,
               "timeline": None, "lag": None, "replication": None, "note": ""}
        if status is None:
            row["state"] = "unreachable"
            said = f"{dcs['role']}, {dcs['state']}" if dcs else "nothing"
            row["note"] = f"its REST API does not answer (the DCS says: {said})"
            if dcs and dcs["role"] == "leader":
                row["note"] += "; its leader key lives until the ttl runs out"
        else:
            row.update(role=normalize_role(status.get("role")), state=status.get("state"),
                       timeline=status.get("timeline"))
            if dcs is None:
                row["note"] = "absent from Patroni's member list (not in the DCS)"
        if dcs is not None and dcs["role"] != "leader":
            lag = live_lag(leader_status, status)
            row["lag"] = lag_text(dcs.get("lag") if lag is None else lag, maximum_lag)
        if row["role"] == "replica":
            row["replication"] = replication.get(node["name"], "not connected")
        rows.append(row)
    known = {n["name"] for n in expected}
    for name, dcs in sorted(by_name.items()):
        if name not in known:
            rows.append({"name": name, "host": dcs["host"], "role": dcs["role"], "state": dcs["state"],
                         "timeline": dcs["timeline"], "lag": None, "replication": replication.get(name),
                         "note": "in the DCS but not in the inventory"})
    return rows


def row_problems(rows: list[dict]) -> list[str]:
    """What member_rows saw wrong besides cluster_problems: silent members, strangers."""
    return [f"{r['name']}: {r['note']}" for r in rows
            if r["state"] == "unreachable" or "inventory" in r["note"] or "absent" in r["note"]]


def summary(rows: list[dict]) -> str:
    """The member table the deploy and `pgha status` print (pgha.table)."""
    return format_table(SUMMARY_HEADERS, [
        (r["name"], r["host"], r["role"], r["state"], r["timeline"], r["lag"], r["replication"], r["note"])
        for r in rows
    ], right=("TL",))


def parse_summary(text: str) -> list[dict[str, str]]:
    """summary()'s table read back from printed output (the first table whose header is
    SUMMARY_HEADERS): one {header: cell} per member, cells cut at the header's columns."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split() == list(SUMMARY_HEADERS)]
    if not starts:
        return []
    header = lines[starts[0]]
    columns = [header.index(h) for h in SUMMARY_HEADERS]
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.strip() or line.startswith(("-->", "archiving:", "problems:")):
            break
        cells = [line[a:b].strip() for a, b in zip(columns, columns[1:] + [None])]
        rows.append(dict(zip(SUMMARY_HEADERS, cells)))
    return rows


# --- from the control machine -----------------------------------------------------------------


def url(cluster: Cluster, address: str, path: str) -> str:
    return f"{RESTAPI_SCHEME}://{address}:{cluster.settings['patroni_restapi_port']}/{path.lstrip('/')}"


def request(cluster: Cluster, method: str, address: str, path: str, **arguments) -> requests.Response:
    """One call to a member's REST API from the control machine, its certificate checked
    against the cluster CA (pgha.pki)."""
    return requests.request(method, url(cluster, address, path), verify=str(client_ca(cluster)), **arguments)


def get_json(cluster: Cluster, path: str, timeout: float = 2, address: str | None = None):
    """``GET path`` as JSON from ``address``, or from the first member that answers; None."""
    addresses = [address] if address else [n.address for n in cluster.patroni]
    for each in addresses:
        try:
            return request(cluster, "GET", each, path, timeout=timeout).json()
        except (requests.RequestException, ValueError):
            continue
    return None


def members(cluster: Cluster, timeout: float = 2, address: str | None = None) -> list[dict]:
    """``/cluster`` from ``address`` or the first member that answers; [] if none does."""
    data = get_json(cluster, "cluster", timeout, address)
    return parse_cluster(data) if isinstance(data, dict) else []


def leader(cluster: Cluster) -> dict | None:
    return next((m for m in members(cluster) if m["role"] == "leader"), None)


def health(cluster: Cluster, timeout: float = 2) -> dict:
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


def own_statuses(cluster: Cluster, timeout: float = 2) -> dict[str, dict | None]:
    """Each inventory member's own GET /patroni, asked of it directly and all at once; None
    for a member whose REST API does not answer."""
    def ask(node: Node):
        answer = get_json(cluster, "patroni", timeout, address=node.address)
        return node.patroni_name, answer if isinstance(answer, dict) else None

    with ThreadPoolExecutor(max_workers=max(1, len(cluster.patroni))) as pool:
        return dict(pool.map(ask, cluster.patroni))


def failsafe_active(cluster: Cluster, timeout: float = 2) -> list[str]:
    """The members whose own GET /patroni says failsafe mode is active. On a replica it
    stays so for ttl after the leader's last POST /failsafe (sent while the leader could not
    reach the DCS, reset only by a promotion): meanwhile, with no leader key, the replica
    follows that leader as if it still held the lock (Patroni's ``Failsafe.update_cluster``)."""
    return sorted(name for name, own in own_statuses(cluster, timeout).items()
                  if own and own.get("failsafe_mode_is_active"))


def status(cluster: Cluster, timeout: float = 2) -> dict:
    """`pgha status`'s view: every inventory member as its own REST API and the DCS see it
    (member_rows), asked of all members at once, and what is wrong. A leader that does not
    answer leaves the replicas' streaming unknown (it is the one that knows)."""
    own = own_statuses(cluster, timeout)
    answering = [n for n in cluster.patroni if own.get(n.patroni_name)]
    found = get_json(cluster, "cluster", timeout, address=answering[0].address) if answering else None
    current = parse_cluster(found) if isinstance(found, dict) else None
    dcs_leader = next((m for m in current or [] if m["role"] == "leader"), None)
    leader_status = own.get(dcs_leader["name"]) if dcs_leader else None
    replication = replication_states(leader_status) if leader_status else {}
    expected = [{"name": n.patroni_name, "host": n.address} for n in cluster.patroni]
    rows = member_rows(expected, current, replication, own, cluster.settings["patroni_maximum_lag_on_failover"])
    if dcs_leader and leader_status is None:
        for row in rows:
            if row["role"] == "replica":
                row["replication"] = "unknown"
        problems = [f"the leader {dcs_leader['name']} does not answer: the replicas' streaming is unknown"]
    else:
        problems = cluster_problems([m["name"] for m in expected], current, replication)
    problems += [p for p in row_problems(rows) if p not in problems]
    return {"rows": rows, "problems": problems, "answered": bool(answering), "members": current or [],
            "replication": replication}
