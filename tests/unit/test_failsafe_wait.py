"""A planned leader change right after the leader lost etcd (the soak's finding: a leader
stopped then left the cluster without a leader for the ttl, its replicas still following it
in failsafe mode). The stop-time switchover script (patroni/handover.sh.j2) runs under
/bin/sh against a fake curl answering as Patroni's REST API does; `pgha switchover`'s wait
(pgha.client) runs on recorded member statuses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from pgha import client
from pgha.errors import SwitchoverError
from pgha.patroni import rest
from pgha.patroni import values as patroni

from .conftest import recorded, render

API = "https://127.0.0.1:8008"
REPLICAS = ["https://10.0.3.201:8008/patroni", "https://10.0.3.68:8008/patroni"]
CLUSTER_JSON = {"members": [
    {"name": "pg-1", "role": "leader", "api_url": "https://10.0.3.141:8008/patroni"},
    *({"name": f"pg-{i}", "role": "replica", "api_url": url} for i, url in enumerate(REPLICAS, 2)),
]}

# answers by URL; a replica says failsafe mode is active for its first ACTIVE_ANSWERS answers
FAKE_CURL = r"""#!/bin/sh
url="" method=GET
for arg in "$@"; do case "$arg" in http*) url=$arg ;; OPTIONS|POST) method=$arg ;; esac; done
echo "$(date +%s.%N) $method $url" >> "$FAKE_DIR/calls"
case "$method $url" in
  "OPTIONS $API/primary") printf 200 ;;
  "GET $API/patroni") printf '%s' "$LEADER_STATUS" ;;
  "GET $API/cluster") printf '%s' "$CLUSTER_JSON" ;;
  "POST $API/switchover") printf 'Successfully switched over to "pg-2"' ;;
  GET*)
    n=$(cat "$FAKE_DIR/answers" 2>/dev/null || echo 0); echo $((n + 1)) > "$FAKE_DIR/answers"
    if [ "$n" -lt "$ACTIVE_ANSWERS" ]; then
      printf '{"state": "running", "role": "replica", "failsafe_mode_is_active": true}'
    else
      printf '{"state": "running", "role": "replica"}'
    fi ;;
esac
"""


def run_handover(tmp_path, active_answers: int, failsafe_wait: int = 30, paused: bool = False):
    script = tmp_path / "handover.sh"
    script.write_text(render("patroni/handover.sh.j2", {
        "api": API, "ca_file": "/etc/pgha/tls/ca.crt", "curlrc": "/etc/patroni/.restapi-curlrc", "member": "pg-1",
        "leader_check": "/primary", "failsafe_wait": failsafe_wait}))
    curl = tmp_path / "bin" / "curl"
    curl.parent.mkdir()
    curl.write_text(FAKE_CURL)
    curl.chmod(curl.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{curl.parent}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path), "API": API,
           "CLUSTER_JSON": json.dumps(CLUSTER_JSON), "ACTIVE_ANSWERS": str(active_answers),
           "LEADER_STATUS": json.dumps({"state": "running", "role": "primary", "pause": paused})}
    started = time.monotonic()
    done = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    calls = [line.split(" ", 2) for line in (tmp_path / "calls").read_text().splitlines()]
    return done, calls, time.monotonic() - started


def posted(calls) -> list[float]:
    return [float(at) for at, method, url in calls if method == "POST" and url == f"{API}/switchover"]


def test_without_failsafe_mode_it_switches_over_at_once(tmp_path):
    done, calls, seconds = run_handover(tmp_path, active_answers=0)
    assert done.returncode == 0 and done.stdout == "", done
    assert len(posted(calls)) == 1 and seconds < 1, calls
    assert {url for _, method, url in calls if method == "GET"} >= {m["api_url"] for m in CLUSTER_JSON["members"]}


def test_it_waits_until_no_replica_is_in_failsafe_mode(tmp_path):
    # three members asked each round: active for the first round and a half, then not
    done, calls, seconds = run_handover(tmp_path, active_answers=5)
    assert done.returncode == 0, done
    assert "failsafe mode active on" in done.stdout and done.stdout.count("\n") == 1, done.stdout
    [at] = posted(calls)
    last_active = sorted(float(t) for t, method, url in calls if method == "GET" and url.startswith("https://10."))[4]
    assert at > last_active, calls  # the switchover only after the last answer that said active
    assert 1.5 < seconds < 6, seconds


def test_the_wait_is_bounded_then_it_switches_over_anyway(tmp_path):
    done, calls, seconds = run_handover(tmp_path, active_answers=10**6, failsafe_wait=2)
    assert done.returncode == 0, done
    assert len(posted(calls)) == 1, calls
    # the deadline is in whole seconds of `date +%s`: between 1 and 2 s of waiting, a check more
    assert 1 <= seconds < 6, seconds


def test_in_maintenance_mode_it_does_nothing(tmp_path):
    done, calls, _ = run_handover(tmp_path, active_answers=0, paused=True)
    assert done.returncode == 0 and posted(calls) == [] and len(calls) == 1, calls


@pytest.mark.parametrize(("switchover_on_stop", "ttl", "expected"), [(True, 30, 60), (True, 20, 50), (False, 30, 30)])
def test_the_stop_timeout_leaves_room_for_the_wait(switchover_on_stop, ttl, expected):
    settings = {"patroni_switchover_on_stop": switchover_on_stop, "patroni_ttl": ttl}
    assert patroni.stop_timeout(settings) == expected


# --- pgha switchover (pgha.client) ------------------------------------------------------------

IN_FAILSAFE = json.loads(recorded("patroni-4.0.7-replica-failsafe-patroni.json"))
NOT_IN_FAILSAFE = {k: v for k, v in IN_FAILSAFE.items() if k != "failsafe_mode_is_active"}


def test_the_members_in_failsafe_mode_are_read_from_their_own_status(monkeypatch):
    statuses = {"pg-1": {"role": "primary", "state": "running"}, "pg-2": None, "pg-3": IN_FAILSAFE}
    monkeypatch.setattr(rest, "own_statuses", lambda cluster, timeout=2: statuses)
    assert rest.failsafe_active(None) == ["pg-3"]
    statuses["pg-3"] = NOT_IN_FAILSAFE
    assert rest.failsafe_active(None) == []


def answers(monkeypatch, *rounds: list[str]):
    """rest.failsafe_active answering each of ``rounds`` in turn, then the last one."""
    left = list(rounds)
    monkeypatch.setattr(rest, "failsafe_active", lambda cluster: left.pop(0) if len(left) > 1 else left[0])
    monkeypatch.setattr(client, "wait_for", lambda check, timeout, interval: next(
        (True for _ in range(int(timeout / interval)) if check()), False))


def test_a_switchover_waits_for_failsafe_mode_to_end_and_says_so(monkeypatch, cluster):
    answers(monkeypatch, ["pg-2", "pg-3"], ["pg-3"], [])
    said: list[str] = []
    waited = client._failsafe_ended(cluster, said.append)
    assert waited["members"] == ["pg-2", "pg-3"] and waited["seconds"] >= 0
    assert len(said) == 1 and "failsafe mode active on pg-2, pg-3" in said[0], said


def test_without_failsafe_mode_there_is_no_wait(monkeypatch, cluster):
    answers(monkeypatch, [])
    said: list[str] = []
    assert client._failsafe_ended(cluster, said.append) is None and said == []


def test_failsafe_mode_that_does_not_end_refuses_the_switchover(monkeypatch, cluster):
    answers(monkeypatch, ["pg-3"])
    with pytest.raises(SwitchoverError, match=r"failsafe mode still active on pg-3 after 35s: the leader does not reach etcd"):
        client._failsafe_ended(cluster)
