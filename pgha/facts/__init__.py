"""pyinfra facts: small FactBase classes, each a command and a parser of its output."""
