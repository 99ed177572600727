"""HA drills against a deployed cluster: inject a fault, heal it, and measure what a client saw.

Used by tests/integration/test_ha_drills.py (behaviour) and bench/ha_drills.py (timings).
Everything takes the cluster (``pgha.settings.loader.load_cluster(inventory)``, its secrets
included) as a parameter. Faults are injected on this machine with LXC commands (the lab);
the only network traffic goes to the lab's container addresses.

Modules, in the order a drill uses them:

- ``libpq``: PostgreSQL as the superuser on one node, with a hard deadline (``try_query``).
- ``writer``: ``Writer``, a thread inserting one row every ~50 ms through HAProxy's
  read-write port (the multi-host DSN of ``client.dsn``), reconnecting on error; it records
  every acknowledged commit. RTO = the longest gap between two acknowledged writes in the
  drill window; RPO = acknowledged ids missing from the final leader's table (``missing_ids``).
- ``monitor``: ``Monitor``, one thread per Patroni node polling ``select pg_is_in_recovery()``
  (0.5 s deadline, every ~200 ms); every sample kept, and whether two reachable nodes were
  ever writable primaries at the same time.
- ``state``: ``cluster_state`` / ``wait_healthy``, ``pgha.patroni.rest.health``'s verdict
  plus the WAL timeline, the synchronous standby requirement and who streams.
- ``faults``: the LXC commands (``run``, ``attach``, ``cut_off``) and questions asked of faulty
  nodes (``local_is_primary``, ``etcd_leader_first``).
- ``scenarios``: ``DRILLS``: leader killed, leader's Patroni stopped, replica killed, one etcd
  member down, etcd quorum lost (both ``EtcdMembersDown``), leader cut off from the network,
  leader's HAProxy (its etcd proxy) stopped, planned switchover.
- ``runner``: ``run_drill(cluster, drill)`` runs one and returns its figures.

The fault soak (``pghalab.soak``) adds: ``bank`` (eight clients moving amounts between
accounts, and the bank's rules on a member's snapshot), ``soak_faults`` (``SOAK_FAULTS``: the
drills and the soak's own held faults) and ``lag`` (``LagWatch``: each replica's lag twice a
second, what an asynchronous failover can lose).
"""

from pgha.errors import DrillError
from pghalab.drills.monitor import Monitor
from pghalab.drills.runner import log, run_drill
from pghalab.drills.scenarios import (
    DRILLS,
    Context,
    Drill,
    EtcdMembersDown,
    LeaderHaproxyStopped,
    LeaderIsolated,
    LeaderKilled,
    LeaderPatroniStopped,
    ReplicaKilled,
    Switchover,
)
from pghalab.drills.state import cluster_state, dynamic_config, sync_standbys, wait_healthy
from pghalab.drills.writer import WRITES_TABLE, Writer, missing_ids, setup_table

__all__ = [
    "DRILLS",
    "Context",
    "Drill",
    "DrillError",
    "EtcdMembersDown",
    "LeaderHaproxyStopped",
    "LeaderIsolated",
    "LeaderKilled",
    "LeaderPatroniStopped",
    "Monitor",
    "ReplicaKilled",
    "Switchover",
    "WRITES_TABLE",
    "Writer",
    "cluster_state",
    "dynamic_config",
    "log",
    "missing_ids",
    "run_drill",
    "setup_table",
    "sync_standbys",
    "wait_healthy",
]
