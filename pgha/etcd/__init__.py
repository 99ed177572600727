"""etcd: the DCS, three (or five) members, TLS and logins."""
