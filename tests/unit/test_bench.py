"""bench/ha_drills.py's timing profiles: fast is the fastest the release's Patroni allows."""

from __future__ import annotations

import importlib.util

import pytest

from pgha.errors import ConfigError
from pgha.releases import RELEASES

from .conftest import REPO_ROOT, cluster_with

_spec = importlib.util.spec_from_file_location("ha_drills", REPO_ROOT / "bench" / "ha_drills.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

EXPECTED = {
    # Patroni 3.0.2: loop_wait + 2 * retry_timeout = 7 <= ttl 7, the bound met exactly
    "bookworm": {"seed": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
                 "fast": {"ttl": 7, "loop_wait": 1, "retry_timeout": 3}},
    # Patroni 4.0.7: ttl 20 at least (Patroni 3.2+ raises a lower one to 20)
    "trixie": {"seed": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
               "fast": {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}},
}


def timings(profile: dict) -> dict:
    return {f"patroni_{key}": value for key, value in profile.items()}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_profiles_of_each_release(release):
    assert bench.profiles(RELEASES[release]) == EXPECTED[release]


@pytest.mark.parametrize("release", sorted(RELEASES))
@pytest.mark.parametrize("name", bench.PROFILE_NAMES)
def test_every_profile_passes_the_settings_check(groups, group_data, release, name):
    profile = bench.profiles(RELEASES[release])[name]
    cluster = cluster_with(groups, group_data, debian_release=release, **timings(profile))
    assert cluster.settings["patroni_ttl"] == profile["ttl"]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_fast_ttl_is_the_lowest_the_release_accepts(groups, group_data, release):
    fast = bench.profiles(RELEASES[release])["fast"]
    with pytest.raises(ConfigError, match="patroni_"):
        cluster_with(groups, group_data, debian_release=release, **timings({**fast, "ttl": fast["ttl"] - 1}))


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_leader_killed_target_is_ttl_plus_two(release):
    for profile in bench.profiles(RELEASES[release]).values():
        assert bench.targets("leader-killed", profile, sync=False)["rto"] == f"<= {profile['ttl'] + 2}"
