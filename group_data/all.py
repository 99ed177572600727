# The cluster's settings, the same for every inventory (the lab's and yours). The hosts and
# their addresses are in the inventory; pgha/settings/schema.py knows the type of each
# setting and a bad value (or an unknown key that looks like a typo) is refused before any
# host is touched.

# --- The nodes' Debian release: bookworm (Debian 12) or trixie (Debian 13) ---------------
# It decides the versions installed (PostgreSQL 15 / 17, Patroni 3.0.2 / 4.0.7) and the lab
# builds its containers from it.
debian_release = "trixie"

# --- Ports ------------------------------------------------------------------------------
etcd_client_port = 2379  # etcd client API on the etcd nodes
etcd_peer_port = 2380  # etcd peer traffic on the etcd nodes
haproxy_etcd_port = 2379  # local TCP proxy to the etcd nodes, on every Patroni node
postgresql_port = 5434  # PostgreSQL itself, on every Patroni node
patroni_restapi_port = 8008  # Patroni REST API
haproxy_rw_port = 5432  # read-write: only the leader passes the health check
haproxy_ro_port = 5433  # read-only: round-robin over the streaming replicas
haproxy_stats_port = 7000  # HAProxy stats page (authenticated)

# --- What the cluster is for --------------------------------------------------------------
# True only for a cluster whose data may be lost: the destructive drills (`make drills`:
# failovers, a whole-cluster restore, rebuilt replicas, parameter changes) refuse any other.
# A lab (an inventory of LXC containers) is one whatever this says; the read-only
# verification (`make verify`) runs against any cluster.
test_cluster = False

# --- Who may connect (no default: each inventory says it) --------------------------------
# client_networks: networks allowed to reach PostgreSQL and HAProxy, besides the nodes.
# etcd_client_networks: besides the Patroni nodes and etcd members, who may reach etcd's
# client port (a firewall on each etcd member). The lab sets both in lab/pghalab/topology.py;
# inventories/example/ shows them for your own machines.

# --- TLS ----------------------------------------------------------------------------------
# None: the cluster's own CA, made on first use in pki/ (or $PGHA_PKI) on the control
# machine, issues every host's certificate. Your own CA: its certificate's path here, and
# each host's tls_cert_file and tls_key_file in its host data.
tls_ca_file = None
# DNS names clients use for the cluster besides the nodes' own (a round-robin name, a VIP's):
# added to every Patroni node's certificate, for sslmode=verify-full.
tls_client_names = []

# --- etcd -------------------------------------------------------------------------------
etcd_cluster_token = "patroni"  # initial-cluster-token
# An even member count tolerates no more failures than one member less: refused unless
# this is true (the seed runs a 2-member cluster before adding the third member).
etcd_allow_even_members = False
# Members missing from the inventory but still in the cluster are refused unless true;
# then they are removed from the cluster.
etcd_allow_member_removal = False
# seconds the etcd deploy's last step waits for every member to be healthy and agree
etcd_check_timeout = 60
# etcd user (and role) of Patroni: read-write on this cluster's keys only (/service/<scope>/);
# its password is `etcd_patroni_password` in the secrets file
etcd_patroni_user = "patroni"

# --- Patroni / PostgreSQL ---------------------------------------------------------------
patroni_scope = "my-ha-cluster"  # cluster name in the DCS
postgresql_version = None  # None: the one debian_release ships (bookworm 15, trixie 17)
patroni_ttl = 30  # leader lock TTL, seconds
patroni_loop_wait = 10  # seconds between HA loop runs
patroni_retry_timeout = 10  # DCS and PostgreSQL retry timeout, seconds
patroni_maximum_lag_on_failover = 1048576  # bytes a replica may lag and still be promoted
# Synchronous replication (cluster-wide, in the DCS): a commit is acknowledged once
# synchronous_node_count replicas have it, so a failover loses no acknowledged write.
# strict: with no synchronous replica left, writes wait rather than go asynchronous.
patroni_synchronous_mode = False
patroni_synchronous_mode_strict = False
patroni_synchronous_node_count = 1
# DCS failsafe mode: with etcd lost (no quorum) the leader stays writable as long as it
# reaches every other member's REST API, instead of demoting. None: on where the release's
# Patroni makes it reliable (4.0.7: trixie), off on bookworm (Patroni 3.0.2)
patroni_failsafe_mode = None
# Watchdog: a leader whose Patroni stops renewing its lock (hung, killed, starved) is reset
# by the kernel before the lock expires, so that a new leader never runs beside it.
# 'automatic': Patroni uses /dev/watchdog where there is one; on a machine (not a container)
# the deploy loads softdog for it. 'required': a member without a watchdog cannot lead
# (refused on containers: they have none). 'off': no watchdog.
patroni_watchdog = "automatic"
patroni_restapi_username = "patroni"  # basic auth user for the REST API's unsafe methods
patroni_superuser = "postgres"
patroni_replication_user = "repl"
patroni_admin_user = "dba"  # createrole, createdb
# True: Patroni reaches etcd through the local HAProxy (127.0.0.1:haproxy_etcd_port, the
# seed's final design); False: Patroni is given the list of etcd nodes.
patroni_dcs_via_local_proxy = True
# `systemctl stop patroni` (or a shutdown) on the leader first hands the leadership to a
# healthy replica (planned switchover, ~1.5 s without writes; Patroni's own stop: ~2.5 s).
# Right after the leader lost etcd it first waits, up to the ttl, for failsafe mode to end
# (docs/high-availability.md#dcs-failsafe-mode)
patroni_switchover_on_stop = True
# Members still in Patroni's cluster but no longer in the inventory are refused unless true;
# then the deploy stops and disables them (their data is kept) and drops their replication
# slot. Never the leader (switch over first), never down to fewer than two members.
patroni_allow_member_removal = False
postgresql_parameters = {
    "wal_level": "replica",
    "hot_standby": "on",
    "wal_keep_size": "128MB",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "checkpoint_timeout": "30s",
    "password_encryption": "scram-sha-256",
    # a replica cut off silently (no TCP reset) is dropped after this, not PostgreSQL's 60 s:
    # in synchronous mode the leader's commits wait for it until then (the soak measured 57 s)
    "wal_sender_timeout": "10s",
    "wal_receiver_timeout": "10s",
    # a client gone silently (a partition, a crashed proxy node) is dropped after 25 s, not
    # Linux's 2 h idle or 15 min with a reply unacknowledged: its open transaction's row locks
    # held every other writer (the soak: 51 s). Idle: 10 s, then a probe every 5 s
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 25000,  # ms; with data unacknowledged (keepalives wait for none)
}

# --- Backups: pgBackRest (only with a host in the inventory group `backup`) ----------------
# The repository host keeps the encrypted repository (passphrase `pgbackrest_repo_passphrase`
# in the secrets file) and takes the backups from a standby; every Patroni node archives
# its WAL there and builds replicas from it. Stanza: patroni_scope.
pgbackrest_tls_port = 8432  # pgBackRest's TLS server, on the repository host and every Patroni node
pgbackrest_repo_path = "/var/lib/pgbackrest"  # the repository, on the repository host
pgbackrest_retention_full = 2  # full backups kept (older ones and their WAL are expired)
pgbackrest_retention_diff = 6  # differential backups kept
pgbackrest_compress_type = "zst"  # zst, lz4, gz, bz2 or none
pgbackrest_process_max = 2  # parallel processes of a backup, a restore, the async archiver
# True: the backup's files are read from a standby; the leader only marks the start and stop
pgbackrest_backup_from_standby = True
# None: an unreachable repository makes WAL wait in pg_wal (writes go on; watch the disk).
# A size such as "8GiB": beyond it WAL is dropped from the queue (writes safe from a full
# disk, but point-in-time recovery has a gap until the next full backup).
pgbackrest_archive_push_queue_max = None
# PostgreSQL's archive_timeout: a WAL file is archived at least this often, even when the
# cluster is nearly idle (what a lost cluster can lose at most, restored from the repository)
pgbackrest_archive_timeout = "60s"
# systemd OnCalendar schedules of the timers on the repository host (None: no timer)
pgbackrest_schedule_full = "Sun *-*-* 01:00:00"
pgbackrest_schedule_diff = "Mon..Sat *-*-* 01:00:00"
pgbackrest_schedule_incr = "*-*-* 07..23/4:00:00"

# --- HAProxy ----------------------------------------------------------------------------
haproxy_stats_user = "admin"
# Health checks of the REST API (OPTIONS /primary, /replica). A new leader is marked up
# within downinter + (rise - 1) * fastinter (0.35 s); two checks either way avoid flapping
# on one slow answer. The seed's inter 2s/fastinter 1s took ~3.5 s to see a new leader.
haproxy_check_inter = "1s"  # interval between checks of a server that is up
haproxy_check_fastinter = "100ms"  # interval while a server changes state
haproxy_check_downinter = "250ms"  # interval between checks of a server that is down
haproxy_check_rise = 2  # successful checks to mark a server up
haproxy_check_fall = 2  # failed checks to mark a server down
# bytes a replica may lag behind the leader and still serve 5433 (Patroni's /replica?lag=);
# None: patroni_maximum_lag_on_failover. With no replica within it, 5433 goes to the leader.
haproxy_replica_max_lag = None

# --- PgBouncer (the pooler), on every Patroni node ------------------------------------------
# A client connects to PgBouncer on any node; PgBouncer goes through that node's HAProxy: the
# database <db> to the leader, <db>_ro to the replicas (within haproxy_replica_max_lag).
# `pgha switchover` pauses every PgBouncer: a pooled client waits instead of failing.
pgbouncer_port = 6432
# transaction: a server connection is the client's for one transaction only (no session
# state such as SET, temporary tables or advisory locks across transactions); session: for
# the client's whole connection (every client connection holds a server connection)
pgbouncer_pool_mode = "transaction"
pgbouncer_pool_size = 20  # server connections per database, user and node
pgbouncer_max_client_conn = 1000  # client connections per node
pgbouncer_databases = ["postgres"]  # each pooled as <db> (read-write) and <db>_ro (read-only)
# protocol-level prepared statements kept across transactions (None: 200 where PgBouncer
# supports them, 1.21 and later, so trixie; off on bookworm's 1.18)
pgbouncer_max_prepared_statements = None
pgbouncer_auth_user = "pgha_pooler"  # looks the other roles up (auth_query); its password: the secrets file
pgbouncer_pause_timeout = 10  # seconds a switchover waits for every PgBouncer to pause (else it resumes them, stops)

# --- Monitoring: Prometheus and Alertmanager (only with a host in the inventory group `monitor`)
# Every exporter, Prometheus and Alertmanager speak TLS (the cluster CA) and ask for basic auth:
# user monitoring_user, password `monitoring_password` in the secrets file. Each exporter
# answers the monitoring host only; Prometheus and Alertmanager answer client_networks.
node_exporter_port = 9100  # on every node
postgres_exporter_port = 9187  # on every Patroni node
pgbackrest_exporter_port = 9854  # on the repository host (trixie; bookworm: a node exporter text file)
etcd_metrics_port = 2381  # etcd's /metrics, on every etcd member
haproxy_metrics_port = 8405  # HAProxy's own exporter, on every Patroni node
prometheus_port = 9090  # on the monitoring host: its pages, its API, the overview /consoles/pgha.html
alertmanager_port = 9093  # on the monitoring host
blackbox_exporter_port = 9115  # on the monitoring host's loopback: the TLS probes
monitoring_user = "admin"
monitoring_postgres_role = "pgha_monitor"  # the PostgreSQL exporter's role (pg_monitor, no password)
monitoring_scrape_interval = "15s"  # also how often the rules are evaluated
monitoring_retention = "15d"  # how long Prometheus keeps its samples
# Where Alertmanager sends the alerts (and their resolution). Neither set: the alerts show in
# Prometheus, Alertmanager and `pgha status` only.
alert_webhook_url = None  # e.g. "https://chat.example.net/hooks/pgha"
alert_email_to = None  # e.g. "dba@example.net", with the two below
alert_email_from = None
alert_email_smarthost = None  # "smtp.example.net:587"
alert_email_require_tls = True
alert_repeat_interval = "4h"  # a firing alert is sent again this often
alert_group_interval = "1m"  # a group's changes (new alerts, resolved ones) are sent at most this often
# How long a fault lasts before its alert fires
alert_down_for = "1m"  # a member, an etcd member, an exporter down; a replica not streaming or lagging
alert_paused_for = "30m"  # Patroni paused (maintenance mode)
alert_pending_restart_for = "1h"  # a parameter waiting for a restart
alert_failover_window = "15m"  # how long "the primary changed" stays firing after a failover
# The newest backup may be this old; None: the longest gap between the scheduled backups
# (pgbackrest_schedule_*) plus alert_backup_grace
alert_backup_max_age = None
alert_backup_grace = "2h"
alert_certificate_days = 30  # a TLS certificate expiring within this many days (a deploy renews it)
alert_filesystem_free_percent = 10  # a filesystem with less free space than this
