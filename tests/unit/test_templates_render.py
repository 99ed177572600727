"""conftest.render renders every template exactly as pyinfra's files.template does, so the
template tests check the text the hosts get."""

from __future__ import annotations

import jinja2
import pytest
from pyinfra.api.util import get_template

from pgha import PROJECT_ROOT
from pgha.backup import values as backup
from pgha.etcd import values as etcd
from pgha.firewall import values as firewall
from pgha.haproxy import values as haproxy
from pgha.monitor import exporters, server
from pgha.monitor.daemons import dropin
from pgha.patroni import values as patroni
from pgha.pooler import values as pooler

from .conftest import render, template_path


def template_data(cluster) -> dict[str, dict]:
    """Each template's ``config`` mapping, from the values module that feeds it."""
    node = cluster.node("pg-1")
    return {
        "etcd/default-etcd.j2": etcd.defaults_file(cluster),
        "etcd/password.j2": etcd.password(etcd.users(cluster)[0]),
        "firewall/table.nft.j2": etcd.firewall(cluster),
        "firewall/table.service.j2": firewall.unit("etcd", "etcd.service"),
        "patroni/patroni.service.j2": patroni.systemd_unit(cluster, node),
        "patroni/handover.sh.j2": patroni.handover_script(cluster, node),
        "patroni/restapi-curlrc.j2": patroni.restapi_credentials(cluster),
        "patroni/role-pgpass.j2": patroni.role_pgpass(cluster, "patroni_admin_user"),
        "haproxy/haproxy.cfg.j2": haproxy.config(cluster),
        "haproxy/reload.conf.j2": haproxy.reload_dropin(),
        "backup/pgbackrest.conf.j2": backup.repository_config(cluster, common_names(cluster)),
        "backup/server.service.j2": backup.server_unit(cluster.node("backup1")),
        "backup/backup.service.j2": backup.timers(cluster)[0],
        "backup/backup.timer.j2": backup.timers(cluster)[0],
        "backup/if-reachable.sh.j2": backup.if_reachable_script(cluster),
        "backup/archive-push.sh.j2": backup.archive_push_script(),
        "pooler/pgbouncer.ini.j2": pooler.config(cluster),
        "pooler/listen.ini.j2": pooler.listen(cluster),
        "monitor/dropin.conf.j2": dropin(server.daemons(cluster, cluster.node("monitor1"))[0]),
        "monitor/pgbackrest-metrics.sh.j2": exporters.textfile_values(cluster),
        "monitor/pgbackrest-metrics.service.j2": exporters.textfile_values(cluster),
        "monitor/pgbackrest-metrics.timer.j2": exporters.textfile_values(cluster),
    }


def common_names(cluster) -> dict[str, str]:
    """The cluster CA's certificates are named after the node (pgha.pki.authority.issue)."""
    return {n.name: n.name for n in cluster.nodes}


def test_every_template_is_covered(cluster):
    root = PROJECT_ROOT / "pgha"
    found = sorted(
        f"{path.parent.parent.name}/{path.name}" for path in root.glob("*/templates/*.j2")
    )
    assert found == sorted(template_data(cluster))


@pytest.mark.parametrize(
    "template",
    [
        "etcd/default-etcd.j2",
        "etcd/password.j2",
        "firewall/table.nft.j2",
        "firewall/table.service.j2",
        "patroni/patroni.service.j2",
        "patroni/handover.sh.j2",
        "patroni/restapi-curlrc.j2",
        "patroni/role-pgpass.j2",
        "haproxy/haproxy.cfg.j2",
        "haproxy/reload.conf.j2",
        "backup/pgbackrest.conf.j2",
        "backup/server.service.j2",
        "backup/backup.service.j2",
        "backup/backup.timer.j2",
        "pooler/pgbouncer.ini.j2",
        "pooler/listen.ini.j2",
        "monitor/dropin.conf.j2",
        "monitor/pgbackrest-metrics.sh.j2",
        "monitor/pgbackrest-metrics.timer.j2",
    ],
)
def test_render_is_pyinfra_rendering(cluster, template):
    data = template_data(cluster)[template]
    ours = render(template, data)
    theirs = get_template(str(template_path(template))).render(config=data)
    assert ours == theirs
    assert ours.endswith("\n")
    assert "{{" not in ours and "{%" not in ours


def test_a_missing_value_fails_the_render(cluster):
    data = template_data(cluster)["haproxy/haproxy.cfg.j2"]
    incomplete = {key: value for key, value in data.items() if key != "stats_password"}
    with pytest.raises(jinja2.UndefinedError):
        render("haproxy/haproxy.cfg.j2", incomplete)


def parse_pgbackrest_conf(text: str) -> dict[str, list[tuple[str, str]]]:
    """pgbackrest.conf as pgBackRest reads it, strictly: `[section]` headers, then one
    `key=value` a line, no blank line inside a section (a blank line only before a header)."""
    lines = text.split("\n")
    assert lines[-1] == "" and lines[-2] != "", "one newline at the end"
    assert lines[0].startswith("# Managed by pgha")
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(lines[1:-1], start=2):
        if line == "":
            assert lines[number].startswith("["), f"line {number}: a blank line inside a section"
            continue
        if line.startswith("["):
            assert line.endswith("]") and lines[number - 2] == "", f"line {number}: {line!r}"
            current = line[1:-1]
            assert current not in sections, f"section {current} twice"
            sections[current] = []
            continue
        assert current is not None, f"line {number}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep and key and value and key == key.strip() and value == value.strip(), f"line {number}: {line!r}"
        assert all(c.isalnum() or c == "-" for c in key), f"line {number}: key {key!r}"
        sections[current].append((key, value))
    return sections


@pytest.mark.parametrize("role", ["repository", "member"])
def test_pgbackrest_conf_is_one_key_value_a_line_in_its_sections(cluster, role):
    make = backup.repository_config if role == "repository" else backup.member_config
    data = make(cluster, common_names(cluster))
    sections = parse_pgbackrest_conf(render("backup/pgbackrest.conf.j2", data))
    assert list(sections) == ["global", "my-ha-cluster"]
    # every option of the values module, in order, and nothing else
    assert sections == {name: [tuple(option) for option in options] for name, options in data["sections"].items()}
    assert ("tls-server-auth", "backup1=my-ha-cluster" if role == "member" else "pg_patroni1=my-ha-cluster") in (
        sections["global"]
    )


def test_the_reachability_wrapper_is_valid_bash_that_names_the_repository(cluster, tmp_path):
    import subprocess

    from pgha.backup import values as backup_values

    text = render("backup/if-reachable.sh.j2", backup_values.if_reachable_script(cluster))
    script = tmp_path / "if-reachable"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, text
    assert "/dev/tcp/backup1/8432" in text
    assert text.rstrip().endswith('exec pgbackrest "$@"')
