"""Patroni's systemd unit and its stop-time handover script (templates/patroni/)."""

from __future__ import annotations

import configparser

import pytest

from pgha.patroni import values as patroni
from pgha.patroni.rest import LEADER_CHECK

from .conftest import render

# --- the systemd unit --------------------------------------------------------------------------


def load_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("handover", ["/usr/local/lib/pgha/patroni-handover", ""])
def test_systemd_unit(cluster, handover):
    node = cluster.node("pg-1")
    text = render(
        "patroni/patroni.service.j2",
        {
            "scope": "my-ha-cluster",
            "member": "pg-1",
            "config_file": patroni.config_file(node),
            "handover": handover,
            "stop_timeout": 60,
        },
    )
    unit = load_unit(text)
    service = unit["Service"]
    # patroni_switchover_on_stop: the leader hands over before it stops
    assert service.get("ExecStop") == (handover or None)
    assert service["KillMode"] == "process"
    assert service["TimeoutStartSec"] == "30"
    assert service["TimeoutStopSec"] == "60"
    assert service["ExecStart"] == "/usr/bin/patroni /etc/patroni/pg-1.yml"
    assert service["User"] == "postgres"
    assert service["Group"] == "postgres"
    assert service["Type"] == "simple"
    assert "my-ha-cluster" in unit["Unit"]["Description"]
    assert "pg-1" in unit["Unit"]["Description"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_handover_script_switches_over_only_from_an_unpaused_leader():
    text = render(
        "patroni/handover.sh.j2",
        {"api": "https://127.0.0.1:8008", "ca_file": "/etc/pgha/tls/ca.crt", "curlrc": "/etc/patroni/.restapi-curlrc",
         "member": "pg-1", "leader_check": "/primary", "failsafe_wait": 30},
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "*'\"pause\": true'*) exit 0" in text
    assert "-X OPTIONS \"$API/primary\")\" = 200 ] || exit 0" in text
    assert "-K /etc/patroni/.restapi-curlrc -X POST" in text
    assert '-d \'{"leader": "pg-1"}\' "$API/switchover"' in text
    assert lines[-1] == "exit 0"  # never blocks the stop
    assert "password" not in text.lower().replace("-k /etc/patroni", "")


def test_handover_script_asks_the_leader_check_of_the_rest_module(cluster):
    config = patroni.handover_script(cluster, cluster.node("pg-1"))
    assert config["leader_check"] == LEADER_CHECK == "/primary"
