"""The cluster CA and the certificates on the nodes."""
