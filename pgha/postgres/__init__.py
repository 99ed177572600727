"""PostgreSQL itself: its parameters catalogue and the facts asked of a member's server."""

# where pgha's PostgreSQL puts its socket (Patroni's unix_socket_directories)
SOCKET_DIR = "/var/run/postgresql"
