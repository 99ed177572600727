"""A host firewall table per role (nftables, its own table only): who may reach its ports."""
