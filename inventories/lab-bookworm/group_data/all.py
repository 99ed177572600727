# The lab on Debian 12: wins over the repository's group_data/all.py (trixie).
debian_release = "bookworm"
