"""PostgreSQL itself: its parameters catalogue (catalogue/, parameters.py) and the facts
asked of a member's server (facts.py)."""

# where pgha's PostgreSQL puts its socket (Patroni's unix_socket_directories)
SOCKET_DIR = "/var/run/postgresql"


def data_dir(settings) -> str:
    """The cluster's data directory on every member (Patroni's postgresql.data_dir)."""
    return f"/var/lib/postgresql/{settings['postgresql_version']}/{settings['patroni_scope']}"


def bin_dir(settings) -> str:
    return f"/usr/lib/postgresql/{settings['postgresql_version']}/bin"
