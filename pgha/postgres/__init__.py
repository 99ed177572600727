"""PostgreSQL itself: the parameter catalogue of each supported major version and the checks built on it."""
