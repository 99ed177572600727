"""PostgreSQL itself: its parameters catalogue (catalogue/, parameters.py) and the facts
asked of a member's server (facts.py)."""

# where pgha's PostgreSQL puts its socket (Patroni's unix_socket_directories)
SOCKET_DIR = "/var/run/postgresql"
