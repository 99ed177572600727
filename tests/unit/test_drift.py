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
