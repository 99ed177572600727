"""conftest.render renders every template exactly as pyinfra's files.template does, so the
template tests check the text the hosts get."""

from __future__ import annotations

import jinja2
import pytest
from pyinfra.api.util import get_template

from pgha import TEMPLATES, etcd, haproxy, patroni

from .conftest import FAKE_SECRETS, render


def template_data(cluster) -> dict[str, dict]:
    node = cluster.node("pg-1")
    return {
        "etcd/etcd.conf.yml.j2": {
            "etcd": etcd.config(cluster, cluster.node("etcd1"), etcd.plan(cluster, {})["etcd1"])
        },
        "etcd/default-etcd.j2": {"config_file": etcd.CONFIG_FILE},
        "etcd/firewall.nft.j2": {"fw": etcd.firewall(cluster)},
        "etcd/firewall.service.j2": {"rules": etcd.FIREWALL_RULES},
        "patroni/patroni.yml.j2": {"p": patroni.config(cluster, node, FAKE_SECRETS)},
        "patroni/patroni.service.j2": {
            "scope": "my-ha-cluster",
            "member": "pg-1",
            "config_file": patroni.config_file(node),
            "handover": "/usr/local/lib/pgha/patroni-handover",
        },
        "patroni/handover.sh.j2": {
            "port": 8008,
            "curlrc": "/etc/patroni/.restapi-curlrc",
            "member": "pg-1",
        },
        "patroni/restapi-curlrc.j2": {"username": "patroni", "password": FAKE_SECRETS["restapi_password"]},
        "haproxy/haproxy.cfg.j2": {"h": haproxy.config(cluster, FAKE_SECRETS)},
    }


def test_every_template_is_covered(cluster):
    found = sorted(str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.j2"))
    assert found == sorted(template_data(cluster))


@pytest.mark.parametrize(
    "template",
    [
        "etcd/etcd.conf.yml.j2",
        "etcd/default-etcd.j2",
        "etcd/firewall.nft.j2",
        "etcd/firewall.service.j2",
        "patroni/patroni.yml.j2",
        "patroni/patroni.service.j2",
        "patroni/handover.sh.j2",
        "patroni/restapi-curlrc.j2",
        "haproxy/haproxy.cfg.j2",
    ],
)
def test_render_is_pyinfra_rendering(cluster, template):
    data = template_data(cluster)[template]
    ours = render(template, **data)
    theirs = get_template(str(TEMPLATES / template)).render(data)
    assert ours == theirs
    assert ours.endswith("\n")
    assert "{{" not in ours and "{%" not in ours


def test_a_missing_value_fails_the_render(cluster):
    data = template_data(cluster)["patroni/patroni.yml.j2"]
    incomplete = {key: value for key, value in data["p"].items() if key != "restapi_password"}
    with pytest.raises(jinja2.UndefinedError):
        render("patroni/patroni.yml.j2", p=incomplete)
