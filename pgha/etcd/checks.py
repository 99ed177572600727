"""etcd's checks across settings and topology: its member count."""

from __future__ import annotations

import logging

from pgha.cluster import Cluster

logger = logging.getLogger("pgha")


def problems(cluster: Cluster) -> list[str]:
    s = cluster.settings
    count = len(cluster.etcd)
    if count < 2:
        return [f"inventory: group 'etcd' has {count} member(s): expected 3 or 5 (an odd number of at least 3)"]
    if count % 2 == 0:
        if s.get("etcd_allow_even_members") is True:
            logger.warning(
                "group 'etcd' has %d members: an even count tolerates no more failures "
                "than %d members (allowed by etcd_allow_even_members)", count, count - 1,
            )
            return []
        return [
            f"inventory: group 'etcd' has {count} members: expected an odd number "
            "(set etcd_allow_even_members = True to allow it, e.g. while scaling out)"
        ]
    return []
