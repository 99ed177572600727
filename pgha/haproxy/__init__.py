"""HAProxy on every Patroni node: 5432 to the leader, 5433 to the replicas, stats, the etcd proxy."""
