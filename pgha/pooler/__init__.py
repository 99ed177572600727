"""PgBouncer on every Patroni node (pgha.components: the pooler)."""
