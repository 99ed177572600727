"""Removing the Patroni members the inventory no longer lists (patroni_allow_member_removal).

Decided as the deploy plans, from the first member's snapshot (its ``/cluster`` and
``/config``), so that a refusal comes before any operation runs: without the setting the
unlisted members are named and the deploy stops; with it, never the leader (switch over
first), never in maintenance mode (a paused Patroni stops without stopping PostgreSQL), never
down to fewer than two members, and never while a listed member is missing from the cluster
(dropping a removed member's slot also drops an absent member's: Patroni 4 keeps them alike).

Carried out by the leader, from the control machine: the member's services stopped and
disabled over SSH (its data is kept), then its member key left to expire (Patroni does not
delete it on a stop), then its replication slot dropped. Patroni 3.0.2 drops it with the key;
Patroni 4 keeps an absent member's slot for ``member_slots_ttl`` (30 minutes by default):
that is 0 from before the stop until the slot is gone (on the leader, then one more loop
for the replicas' copies), then put back. Everything else that named the
member (HAProxy's backends, pg_hba, the firewall tables, the certificates' names, the backup
host, Prometheus' targets) is rendered from the inventory and follows with the deploy.
"""

from __future__ import annotations

import re
import shlex
import time

from pyinfra import host, logger
from pyinfra.api.exceptions import DeployError, OperationError

from pgha import remote
from pgha.cluster import Cluster, Node
from pgha.common.checks import check_until
from pgha.errors import RemoteError
from pgha.patroni.facts import PatroniCluster, PatroniDynamicConfig, PatroniStatus, patronictl
from pgha.postgres.facts import make_psql_command

SETTING = "patroni_allow_member_removal"
SLOTS_TTL = "member_slots_ttl"


def slot_name(member: str) -> str:
    """The replication slot Patroni keeps for ``member`` (its slot_name_from_member_name)."""
    def replace(match: re.Match) -> str:
        char = match.group(0)
        return "_" if char in "-." else f"u{ord(char):04d}"

    return re.sub(r"[^a-z0-9_]", replace, member.lower())[:63]


def unlisted_members(cluster: Cluster, members: list[dict] | None) -> list[dict]:
    """The members of ``/cluster`` whose name is no Patroni node's of the inventory."""
    listed = {n.patroni_name for n in cluster.patroni}
    return [m for m in members or [] if m["name"] not in listed]


def _named(members: list[dict]) -> str:
    return ", ".join(f"{m['name']} ({m['host']})" for m in members)


def refusal(cluster: Cluster, members: list[dict] | None, paused: bool) -> str | None:
    """Why this run may not remove the unlisted members of ``members`` (``/cluster``), or None."""
    extra = unlisted_members(cluster, members)
    if not extra:
        return None
    named = _named(extra)
    if not cluster.settings[SETTING]:
        return (f"patroni: the running cluster has members that the inventory does not list: {named}. "
                f"Add them back to the inventory, or set {SETTING} = True to stop them and remove them "
                "from the cluster (their data is kept)")
    leader = next((m for m in extra if m["role"] == "leader"), None)
    if leader:
        staying = next((m["name"] for m in members or [] if m not in extra and m["role"] == "replica"),
                       cluster.patroni[0].patroni_name)
        return (f"patroni: {leader['name']} ({leader['host']}) leads the cluster and the inventory no longer "
                f"lists it: switch over first (pgha switchover --to {staying}), then run the deploy again")
    if paused:
        return (f"patroni: the cluster is in maintenance mode: a paused Patroni stops without stopping "
                f"PostgreSQL, so {named} cannot be removed now; `pgha resume` first")
    running = {m["name"] for m in members or []}
    absent = [n.patroni_name for n in cluster.patroni if n.patroni_name not in running]
    staying = [n.patroni_name for n in cluster.patroni if n.patroni_name in running]
    if len(staying) < 2:
        return (f"patroni: removing {named} would leave {len(staying)} member(s) ({', '.join(staying) or 'none'}): "
                "a cluster keeps at least two (a leader and a replica)")
    if absent:
        return (f"patroni: {', '.join(absent)} is in the inventory but not in the running cluster: removing "
                f"{named} drops the replication slots of absent members too. Start it (or add it) first, "
                "then remove in a run of its own")
    return None


def removals(cluster: Cluster, members: list[dict] | None, config: dict | None) -> list[dict]:
    """The members this run removes; a DeployError (before any operation runs) when it may not."""
    problem = refusal(cluster, members, bool((config or {}).get("pause")))
    if problem:
        raise DeployError(problem)
    return unlisted_members(cluster, members)


def ssh_of(cluster: Cluster) -> dict:
    """How to reach a member the inventory no longer lists: as its first Patroni node, at the
    address Patroni gives."""
    return {k: v for k, v in cluster.patroni[0].ssh.items() if k != "ssh_hostname"}


def stop_command(units: list[str]) -> str:
    """Each of ``units`` that the host has, stopped and disabled."""
    quoted = " ".join(shlex.quote(u) for u in units)
    return (f"for unit in {quoted}; do if systemctl cat \"$unit\" >/dev/null 2>&1; then "
            "systemctl disable --now \"$unit\" || exit 1; fi; done")


def _slots_left(slots: list[str], pg_port: int) -> list[str]:
    quoted = ",".join(f"'{s}'" for s in slots)
    status, output = host.run_shell_command(
        make_psql_command(f"select slot_name from pg_replication_slots where slot_name in ({quoted})", pg_port))
    if not status:
        raise OperationError(f"could not list the replication slots: {' '.join(output.stderr_lines)[-300:]}")
    return [line.strip() for line in output.stdout_lines if line.strip()]


def _set_slots_ttl(config_file: str, value) -> None:
    text = "null" if value is None else str(int(value))
    status, output = host.run_shell_command(
        f"{patronictl(config_file)} edit-config --force --quiet -s {SLOTS_TTL}={text}")
    if not status:
        raise OperationError(f"patronictl edit-config -s {SLOTS_TTL}={text} failed: {' '.join(output.stderr_lines)[-300:]}")


def _keeps_absent_slots(port: int) -> bool:
    """Whether this leader's Patroni keeps an absent member's slot (member_slots_ttl: 4.0 on)."""
    status = host.get_fact(PatroniStatus, port=port, address="127.0.0.1") or {}
    major = str((status.get("patroni") or {}).get("version", "")).split(".")[0]
    return major.isdigit() and int(major) >= 4


def remove(members: list[dict], units: list[str], ssh: dict, port: int, pg_port: int, config_file: str,
           timeout: float, loop_wait: float) -> None:
    """Run on the leader (pgha.patroni.operations.members_removed). On Patroni 4
    member_slots_ttl is 0 meanwhile: only the removed members are absent (refusal), so only
    their slots go."""
    keeps = _keeps_absent_slots(port)
    before = (host.get_fact(PatroniDynamicConfig, port=port) or {}).get(SLOTS_TTL) if keeps else None
    if keeps:
        _set_slots_ttl(config_file, 0)
    try:
        _stop_and_wait(members, units, ssh, port, pg_port, timeout, loop_wait)
        if keeps:  # Patroni 4 keeps the members' slots on the replicas too: one loop of theirs
            time.sleep(loop_wait + 2)
    finally:
        if keeps:
            _set_slots_ttl(config_file, before)
    logger.info(f"    [{host.name}] removed from the cluster: {_named(members)} (member key and replication slot)")


def _stop_and_wait(members: list[dict], units: list[str], ssh: dict, port: int, pg_port: int, timeout: float,
                   loop_wait: float) -> None:
    for member in members:
        node = Node(name=member["name"], address=member["host"], ssh=ssh)
        try:
            remote.run(node, stop_command(units), timeout=120)
            logger.info(f"    [{host.name}] {member['name']} ({member['host']}): {', '.join(units)} stopped and "
                        "disabled (its data is kept)")
        except RemoteError as error:
            logger.warning(f"    {member['name']} ({member['host']}) not reached: {error}")
    names = {m["name"] for m in members}

    def gone():
        left = sorted(names & {m["name"] for m in host.get_fact(PatroniCluster, port=port) or []})
        return not left, f"still in the cluster: {', '.join(left)}: stop Patroni on it (systemctl disable --now " \
                         "patroni) and run the deploy again"

    check_until(gone, timeout, interval=2)
    slots = [slot_name(m["name"]) for m in members]
    check_until(lambda: (not (left := _slots_left(slots, pg_port)), f"replication slots still there: {left}"),
                2 * loop_wait + 30, interval=1)
