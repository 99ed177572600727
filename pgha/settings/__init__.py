"""The cluster's settings: their schema (schema.py), the topology (topology.py), the checks
(checks.py) and the one loader (loader.py: load_cluster, check_inventory, current)."""
