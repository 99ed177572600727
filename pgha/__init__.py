"""pgha: a highly-available PostgreSQL cluster (Patroni + etcd + HAProxy) deployed with pyinfra."""

from pathlib import Path

# The repository (installed in editable mode): secrets.json and .lab/ live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# On the nodes: pgha's own scripts (HAProxy's hold, Patroni's handover, pgBackRest's wrapper)
SCRIPTS_DIR = "/usr/local/lib/pgha"
