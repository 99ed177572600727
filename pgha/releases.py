"""What each supported Debian release ships, and what follows from it: one table, read by
the settings check (versions, Patroni's timing floors), the lab (its base container) and the
deploys (what differs between Patroni 3.0 and 4.x).

Measured in the distributions' own packages: bookworm (Debian 12) ships PostgreSQL 15,
Patroni 3.0.2, etcd 3.4, HAProxy 2.6, PgBouncer 1.18; trixie (Debian 13) ships PostgreSQL 17, Patroni 4.0.7,
etcd 3.5, HAProxy 3.0, PgBouncer 1.24.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Release:
    name: str
    debian: int
    postgresql: tuple[int, ...]  # the PostgreSQL major versions the release ships
    patroni: tuple[int, int, int]
    etcd: tuple[int, int]
    haproxy: tuple[int, int]
    pgbouncer: tuple[int, int]
    # Since Patroni 3.2, patroni/config.py (_validate_and_adjust_timeouts) silently raises
    # ttl, loop_wait and retry_timeout below these to them: refused instead.
    patroni_minimums: dict[str, int] = field(default_factory=dict)

    @property
    def default_postgresql(self) -> int:
        return self.postgresql[0]

    @property
    def patroni_4(self) -> bool:
        return self.patroni >= (4, 0, 0)

    @property
    def failsafe_mode_reliable(self) -> bool:
        """Patroni 4.0.7 fixed failsafe mode not taking over when etcd3 fails (its etcd3
        exceptions were not always handled): before it, losing etcd could still demote."""
        return self.patroni >= (4, 0, 7)


PATRONI_3_2_MINIMUMS = {"patroni_ttl": 20, "patroni_loop_wait": 1, "patroni_retry_timeout": 3}

RELEASES = {
    "bookworm": Release("bookworm", 12, (15,), (3, 0, 2), (3, 4), (2, 6), (1, 18)),
    "trixie": Release("trixie", 13, (17,), (4, 0, 7), (3, 5), (3, 0), (1, 24), PATRONI_3_2_MINIMUMS),
}
DEFAULT = "trixie"


def release(name: str) -> Release:
    return RELEASES[name]
