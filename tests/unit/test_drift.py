"""`pgha diff`'s parsing and wording without a host (pgha.drift)."""

from __future__ import annotations

from pgha import drift


def test_upgradable_lines_of_apt_list():
    lines = ["patroni/stable 4.0.8-1 all [upgradable from: 4.0.7-1]",
             "postgresql-17/stable-security 17.7-0+deb13u1 amd64 [upgradable from: 17.6-0+deb13u1]"]
    assert drift.upgradable(lines) == [("patroni", "4.0.7-1", "4.0.8-1"),
                                       ("postgresql-17", "17.6-0+deb13u1", "17.7-0+deb13u1")]
    assert drift.upgradable(["Listing..."]) == []


def test_sections_of_the_gathering_output():
    output = "### file /etc/x\naGVsbG8=\n### certs\n/etc/pgha/tls/a.crt QUJD\n### upgradable\n### watchdog\nlxc\n-\n"
    assert drift._sections(output) == {"file /etc/x": ["aGVsbG8="], "certs": ["/etc/pgha/tls/a.crt QUJD"],
                                       "upgradable": [], "watchdog": ["lxc", "-"]}


def test_first_difference_names_the_line_and_hides_secrets():
    assert drift._first_difference("/etc/p.yml", "a: 1\nttl: 15\n", "a: 1\nttl: 30\n") == (
        "file /etc/p.yml: differs from line 2: live 'ttl: 15', wanted 'ttl: 30'")
    hidden = drift._first_difference("/etc/p.yml", "password: one\n", "password: two\n")
    assert "one" not in hidden and "two" not in hidden and "not shown" in hidden
    assert drift._first_difference("/f", "a\n", "a\nb\n") == "file /f: differs from line 2: live '(end of file)', wanted 'b'"


def test_path_value():
    assert drift._path_value({"postgresql": {"parameters": {"x": 1}}}, "postgresql.parameters.x") == 1
    assert drift._path_value({"ttl": 30}, "postgresql.parameters.x") is None


def _example_cluster(secrets_path, monkeypatch):
    from pathlib import Path

    from pgha.settings.loader import load_cluster

    monkeypatch.setenv("PGHA_SECRETS", str(secrets_path))
    return load_cluster(Path(__file__).resolve().parents[2] / "inventories" / "example" / "inventory.py")


def _seen_with(files: dict[str, str]) -> dict[str, list[str]]:
    import base64

    seen = {f"file {path}": [base64.b64encode(text.encode()).decode()] for path, text in files.items()}
    return {**seen, "certs": [], "upgradable": ["patroni/stable 9.9 all [upgradable from: 4.0.7-1]",
                                                "libc6/stable 9.9 amd64 [upgradable from: 2.41-1]"],
            "watchdog": ["none", "postgres"]}


def test_a_node_as_the_deploy_renders_it_differs_only_by_its_own_package_update(secrets_path, monkeypatch):
    import datetime

    cluster = _example_cluster(secrets_path, monkeypatch)
    node = cluster.patroni[0]
    files = drift.rendered_files(cluster, node, None)
    assert sorted(files) == ["/etc/haproxy/haproxy.cfg", f"/etc/patroni/{node.patroni_name}.yml",
                             "/etc/pgbouncer/pgbouncer.ini"]
    now = datetime.datetime.now(datetime.UTC)
    assert drift.node_differences(cluster, node, _seen_with(files), None, now) == [
        f"package patroni on {node.name}: live 4.0.7-1, available 9.9"]  # libc6 is not the deploy's


def test_a_changed_or_missing_file_is_named(secrets_path, monkeypatch):
    import datetime

    cluster = _example_cluster(secrets_path, monkeypatch)
    node = cluster.patroni[0]
    files = drift.rendered_files(cluster, node, None)
    files["/etc/haproxy/haproxy.cfg"] = files["/etc/haproxy/haproxy.cfg"].replace("maxconn", "maxconn 1 #", 1)
    del files["/etc/pgbouncer/pgbouncer.ini"]
    found = drift.node_differences(cluster, node, {**_seen_with(files), "upgradable": []}, None,
                                   datetime.datetime.now(datetime.UTC))
    assert len(found) == 2, found
    assert found[0].startswith("file /etc/haproxy/haproxy.cfg: differs from line ") and "maxconn 1 #" in found[0]
    assert found[1] == f"file /etc/pgbouncer/pgbouncer.ini on {node.name}: live absent, wanted rendered by the deploy"
