"""The cluster CA (pgha.pki): names on each certificate, files and modes, when a certificate
is issued again, and the checks of one's own CA's files."""

from __future__ import annotations

import dataclasses
import datetime
import stat

import pytest
from cryptography import x509

from pgha.pki import authority
from pgha.pki.values import subject_names

from .conftest import cluster_with


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_patroni_node_certificate_names_every_patroni_node_and_loopback(cluster):
    dns, ips = subject_names(cluster, cluster.node("pg-1"))
    for node in cluster.patroni:
        assert node.address in ips
        assert set(node.all_names) <= set(dns)
    assert "127.0.0.1" in ips and "localhost" in dns
    assert not any(n.address in ips for n in cluster.etcd)


def test_an_etcd_node_certificate_names_only_itself_and_loopback(cluster):
    node = cluster.node("etcd1")
    dns, ips = subject_names(cluster, node)
    assert ips == [node.address, "127.0.0.1"]
    assert dns == ["etcd1", "localhost"]


def test_tls_client_names_go_on_patroni_certificates(groups, group_data):
    cluster = cluster_with(groups, group_data, tls_client_names=["db.example.com"])
    assert "db.example.com" in subject_names(cluster, cluster.node("pg-2"))[0]
    assert "db.example.com" not in subject_names(cluster, cluster.node("etcd2"))[0]


def test_files_are_made_on_first_use_with_private_modes(cluster, pki_path):
    files = authority.host_files(cluster)
    assert sorted(files) == sorted(n.name for n in cluster.nodes)
    assert _mode(pki_path / "ca.key") == 0o600 and _mode(pki_path) == 0o700
    for each in files.values():
        assert _mode(each.key) == 0o600
        cert = x509.load_pem_x509_certificate(each.cert.read_bytes())
        assert authority.signed_by(cert, x509.load_pem_x509_certificate(each.ca.read_bytes()))


def test_the_certificate_holds_the_names_it_must(cluster):
    node = cluster.node("pg-3")
    files = authority.host_files(cluster)[node.name]
    dns, ips = authority.certificate_names(x509.load_pem_x509_certificate(files.cert.read_bytes()))
    assert (dns, ips) == tuple(set(v) for v in subject_names(cluster, node))


def test_a_second_load_issues_nothing_again(cluster):
    first = {n: f.cert.read_bytes() for n, f in authority.host_files(cluster).items()}
    second = {n: f.cert.read_bytes() for n, f in authority.host_files(cluster).items()}
    assert first == second


def test_a_new_name_issues_that_node_again_and_keeps_the_ca(groups, group_data, cluster):
    before = {n: f.cert.read_bytes() for n, f in authority.host_files(cluster).items()}
    ca_before = authority.directory().joinpath("ca.crt").read_bytes()
    renamed = cluster_with(groups, group_data, tls_client_names=["db.example.com"])
    after = {n: f.cert.read_bytes() for n, f in authority.host_files(renamed).items()}
    assert authority.directory().joinpath("ca.crt").read_bytes() == ca_before
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {n.name for n in cluster.patroni}


def test_a_certificate_near_its_end_is_issued_again(cluster, monkeypatch):
    node = cluster.node("etcd1")
    old = authority.host_files(cluster)[node.name].cert.read_bytes()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=authority.HOST_DAYS - 20)
    monkeypatch.setattr(authority, "_now", lambda: later)
    assert authority.host_files(cluster)[node.name].cert.read_bytes() != old


def _own_ca(tmp_path, cluster, names_of=None):
    """Files of another CA, issued the way pgha would, for tls_ca_file."""
    folder = tmp_path / "own"
    ca_cert, ca_key = authority.ensure_ca(folder, "own CA")
    for node in cluster.nodes:
        dns, ips = subject_names(cluster, names_of or node)
        authority.issue(folder, node.name, dns, ips, ca_cert, ca_key)
    return folder


def _with_own_files(cluster, folder, **overrides):
    nodes = {
        n.name: dataclasses.replace(
            n, tls_cert_file=str(folder / "hosts" / f"{n.name}.crt"), tls_key_file=str(folder / "hosts" / f"{n.name}.key")
        )
        for n in cluster.nodes
    }
    nodes.update(overrides)
    return dataclasses.replace(
        cluster.with_groups(**{group: [nodes[n.name] for n in members] for group, members in cluster.groups.items()}),
        settings={**cluster.settings, "tls_ca_file": str(folder / "ca.crt")},
    )


def test_own_ca_files_that_fit_pass_and_are_used(cluster, tmp_path):
    own = _with_own_files(cluster, _own_ca(tmp_path, cluster))
    assert authority.problems(own) == []
    assert authority.host_files(own)["pg_patroni1"].cert == tmp_path / "own" / "hosts" / "pg_patroni1.crt"
    assert authority.client_ca(own) == tmp_path / "own" / "ca.crt"


def test_own_ca_missing_names_are_named(cluster, tmp_path):
    # every certificate issued with etcd1's names only
    own = _with_own_files(cluster, _own_ca(tmp_path, cluster, names_of=cluster.node("etcd1")))
    problems = "\n".join(authority.problems(own))
    assert "host 'pg_patroni1': tls_cert_file" in problems
    assert "lacks the subject alternative names" in problems and "10.0.3.141" in problems and "pg-1" in problems


def test_own_ca_a_certificate_from_another_ca_and_a_wrong_key(cluster, tmp_path):
    folder = _own_ca(tmp_path, cluster)
    other = tmp_path / "other"
    other_ca, other_key = authority.ensure_ca(other, "someone else")
    node = cluster.node("etcd2")
    authority.issue(other, node.name, *subject_names(cluster, node), other_ca, other_key)
    own = _with_own_files(
        cluster, folder,
        etcd2=dataclasses.replace(node, tls_cert_file=str(other / "hosts" / "etcd2.crt"),
                                  tls_key_file=str(folder / "hosts" / "etcd2.key")),
    )
    problems = "\n".join(authority.problems(own))
    assert "is not issued by tls_ca_file" in problems
    assert "is not the key of tls_cert_file" in problems


def test_own_ca_without_host_files_is_refused(cluster, tmp_path):
    folder = _own_ca(tmp_path, cluster)
    own = dataclasses.replace(cluster, settings={**cluster.settings, "tls_ca_file": str(folder / "ca.crt")})
    problems = authority.problems(own)
    assert len(problems) == len(cluster.nodes)
    assert "expected both in its host data when tls_ca_file is set" in problems[0]


def test_own_ca_file_that_is_not_a_certificate(cluster, tmp_path):
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    own = dataclasses.replace(cluster, settings={**cluster.settings, "tls_ca_file": str(bad)})
    (problem,) = authority.problems(own)
    assert problem.startswith(f"tls_ca_file: '{bad}' cannot be read as a PEM certificate")


@pytest.mark.parametrize("value", ["", 5, ["a"]])
def test_tls_ca_file_must_be_a_path(groups, group_data, value):
    from pgha.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        cluster_with(groups, group_data, tls_ca_file=value)
    assert "tls_ca_file" in str(error.value)
