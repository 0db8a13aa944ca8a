"""The ``shardmon k8s-api`` service: its TLS context (configured or self-signed), ``--check``, and its
place in ``shardmon up``."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from shardmon.cli import main
from shardmon.k8sapi.tls import self_signed, server_context
from shardmon.launcher import LocalCluster
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from tests.k8sapi_support import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_a_self_signed_certificate_names_localhost_and_the_loopback_addresses():
    cert_pem, key_pem = self_signed(["localhost", "127.0.0.1", "::1", "myhost"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "myhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert b"PRIVATE KEY" in key_pem


def test_the_server_context_requests_client_certificates_only_with_a_ca():
    ctx = server_context(KubernetesMetricsConfig())
    assert ctx.verify_mode == ssl.CERT_NONE


def test_the_server_context_requests_but_does_not_require_client_certificates(pki):
    ctx = server_context(KubernetesMetricsConfig(
        tls_cert_file=pki.path("server.crt"), tls_private_key_file=pki.path("server.key"),
        client_ca_file=pki.path("ca.crt"), requestheader_client_ca_file=pki.path("front-proxy-ca.crt")))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert len(ctx.get_ca_certs()) == 2


def test_tls_errors_name_the_field(pki, tmp_path):
    with pytest.raises(ConfigError, match="kubernetes_metrics.tls_private_key_file: required with tls_cert_file"):
        server_context(KubernetesMetricsConfig(tls_cert_file=pki.path("server.crt")))
    with pytest.raises(ConfigError, match="kubernetes_metrics.tls_cert_file: cannot load"):
        server_context(KubernetesMetricsConfig(tls_cert_file=pki.path("server.crt"),
                                               tls_private_key_file=pki.path("admin.key")))
    with pytest.raises(ConfigError, match="kubernetes_metrics.client_ca_file: cannot load"):
        server_context(KubernetesMetricsConfig(client_ca_file=str(tmp_path / "none.crt")))


def _write(tmp_path, section: str) -> str:
    p = tmp_path / "c.yml"
    p.write_text(f"local: {{data_dir: {tmp_path / 'data'}}}\n{section}")
    return str(p)


def test_check_prints_how_it_serves_and_authenticates(tmp_path, pki, capsys):
    path = _write(tmp_path, f"""kubernetes_metrics:
  listen_address: 0.0.0.0:6443
  requestheader_client_ca_file: {pki.path("front-proxy-ca.crt")}
  client_ca_file: {pki.path("ca.crt")}
""")
    assert main(["k8s-api", "--config", path, "--check"]) == 0
    out = capsys.readouterr().out
    assert ("k8s-api: HTTPS on 0.0.0.0:6443 with a self-signed certificate; authentication: front-proxy "
            "certificates, client certificates; over") in out


def test_check_refuses_a_missing_section_and_a_bad_token_file(tmp_path, capsys):
    assert main(["k8s-api", "--config", _write(tmp_path, ""), "--check"]) == 2
    assert "kubernetes_metrics: the section is missing" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("only,two\n")
    path = _write(tmp_path, f"kubernetes_metrics: {{token_auth_file: {tmp_path / 't.csv'}}}\n")
    assert main(["k8s-api", "--config", path, "--check"]) == 2
    assert "kubernetes_metrics.token_auth_file:" in capsys.readouterr().err
    path = _write(tmp_path, "kubernetes_metrics: {authentication_token_webhook: true}\n")
    assert main(["k8s-api", "--config", path, "--check"]) == 2
    assert "kubernetes_metrics.authentication_token_webhook" in capsys.readouterr().err


def test_shardmon_up_starts_the_service_when_configured(tmp_path):
    plain = LocalCluster(parse_config(f"local: {{data_dir: {tmp_path / 'a'}}}\n"), None)
    assert "k8s-api" not in [c.name for c in plain.children()]
    c = LocalCluster(parse_config(f"local: {{data_dir: {tmp_path / 'b'}}}\n"
                                  "kubernetes_metrics: {listen_address: 127.0.0.1:9443}\n"), None)
    child = next(ch for ch in c.children() if ch.name == "k8s-api")
    assert "k8s-api" in child.argv
    assert child.ready == ("127.0.0.1", 9443)
    names = [c.name for c in c.children()]
    assert names.index("k8s-api") > names.index("querier")
    assert any(child in stage for stage in c.stop_stages()[1:2])
