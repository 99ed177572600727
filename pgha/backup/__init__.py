"""pgBackRest: the repository host, WAL archiving, backups, point-in-time recovery."""
