"""pgBackRest on the `backup` host (the repository, the backup timers) and on every Patroni
node (archiving, replicas from the repository), then the stanza and `pgbackrest check`.

Usage: pyinfra -y inventory.py deploys/backup.py
(The archiving settings in patroni.yml come with deploys/patroni.py: run deploys/all.py
when you add a `backup` host to a running cluster.)
"""

from pgha import rollout
from pgha.common.operations import barrier
from pgha.settings.loader import current

cluster = current()

rollout.begin(cluster)
rollout.backup(cluster)
barrier(name="pgBackRest's TLS servers run on the repository host and every Patroni node", what="pgbackrest ready")
rollout.backup_checks(cluster)
