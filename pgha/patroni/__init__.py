"""PostgreSQL and Patroni on the patroni group."""
