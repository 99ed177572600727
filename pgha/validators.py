"""What a setting's value must look like: the predicates every component's settings schema
uses (its ``SETTINGS``: name -> (predicate, what is expected, said in a message)).

Free of pyinfra and of the components: the bottom of the house."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]
# a setting's schema: its predicate, and what is expected (the end of every message about it)
Setting = tuple[Predicate, str]

DURATION = re.compile(r"^\d+(ms|s|m|h)?$")
PG_DURATION = re.compile(r"^\d+(ms|s|min|h|d)?$")
SIZE = re.compile(r"^\d+(KiB|MiB|GiB|TiB|KB|MB|GB|TB)$")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_int(minimum: int) -> Predicate:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parses(parse: Callable[[Any], Any]) -> Predicate:
    def check(value: Any) -> bool:
        try:
            parse(value)
        except (ValueError, TypeError):  # AddressValueError is a ValueError
            return False
        return True

    return check


is_ipv4 = _parses(ipaddress.IPv4Address)
is_network = _parses(lambda v: ipaddress.ip_network(v, strict=True))
is_ipv4_network = _parses(lambda v: ipaddress.IPv4Network(v, strict=True))


def is_list_of(check: Predicate) -> Predicate:
    """A list (or tuple) of such values; never a string, which Python would split into letters."""
    return lambda v: isinstance(v, (list, tuple)) and all(check(x) for x in v)


def is_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value) is not None


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None


def is_hostname(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= 253
        and all(is_dns_label(label) for label in value.rstrip(".").split("."))
    )


def is_duration(value: Any) -> bool:
    return isinstance(value, str) and DURATION.match(value) is not None


PORT: Setting = (is_port, "an integer port number from 1 to 65535")
BOOL: Setting = (is_bool, "true or false")
