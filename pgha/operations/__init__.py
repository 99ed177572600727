"""pyinfra operations: each compares a fact with the wanted state and yields commands or a noop."""
