"""PostgreSQL parameter catalogues: N.json per major version, made by generate.py."""
