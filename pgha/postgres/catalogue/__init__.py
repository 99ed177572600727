"""PostgreSQL parameter catalogues (N.json, one per major version) and the script that makes them (generate.py)."""
