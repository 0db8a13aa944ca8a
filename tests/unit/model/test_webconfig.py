"""The web config file (Prometheus's --web.config.file format), checked as ``promtool check web-config``
(Debian's Prometheus 2.42) checks the same files: the same files pass, the same fail, with its message."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from shardmon.model.errors import ConfigError
from shardmon.model.webconfig import (
    BasicAuthVerifier,
    bcrypt_cost,
    load_web_config,
    read_web_config,
    server_ssl_context,
)
from tests.tlsutil import bcrypt_hash, make_certs

PROMTOOL = shutil.which("promtool")
HASH = "$2y$04$Y0pZ0.Vbq4Kq8cCNCe5rGOdj8Ql3x0zq2xN3J8d7n1qf5M1KJz2p6"  # any well-formed hash

TLS = "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: certs/server.key\n"
# name -> (file text, the part of promtool's message Shardmon's must contain; None: valid)
CASES: dict[str, tuple[str, str | None]] = {
    "empty": ("", None),
    "tls": (TLS, None),
    "mtls": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: certs/ca.crt\n", None),
    "verify_if_given": (TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: certs/ca.crt\n", None),
    "legacy_require": (TLS + "  client_auth_type: RequireClientCert\n  client_ca_file: certs/ca.crt\n", None),
    "versions_ciphers_curves": (TLS + "  min_version: TLS12\n  max_version: TLS12\n  cipher_suites:\n"
                                "    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS_AES_128_GCM_SHA256\n"
                                "  curve_preferences: [CurveP256, X25519]\n  prefer_server_cipher_suites: false\n", None),
    "users": ("basic_auth_users:\n  alice: {hash}\n  bob: {hash}\n", None),
    "users_and_tls": (TLS + "basic_auth_users:\n  alice: {hash}\n", None),
    "headers": ("http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
                "    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n"
                "    X-XSS-Protection: '1'\n    Content-Security-Policy: default-src 'self'\n", None),
    "not_a_hash": ("basic_auth_users:\n  alice: doe\n", "hashedSecret too short to be a bcrypted password"),
    "hash_cost": ("basic_auth_users:\n  alice: $2y$99$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
                  "cost 99 is outside allowed range (4,31)"),
    "hash_version": ("basic_auth_users:\n  alice: $3y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
                     "requested is newer than current version"),
    "unknown_field": ("tls_server_config:\n  cert_filse: server.crt\n", "cert_filse not found"),
    "newer_field": ("tls_server_config:\n  client_allowed_sans: [a]\n", "client_allowed_sans not found"),
    "unknown_top": ("tls_config:\n  cert_file: a\n", "tls_config not found"),
    "duplicate_key": ("tls_server_config:\n  cert_file: a\n  cert_file: b\n", "cert_file already set"),
    "not_a_mapping": ("- a\n", "yaml"),
    "cert_without_key": ("tls_server_config:\n  cert_file: certs/server.crt\n", "missing key_file"),
    "key_without_cert": ("tls_server_config:\n  key_file: certs/server.key\n", "missing cert_file"),
    "auth_without_cert": ("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n", "missing cert_file"),
    "cert_missing": ("tls_server_config:\n  cert_file: nope.crt\n  key_file: certs/server.key\n",
                     "failed to load X509KeyPair: open"),
    "key_is_not_a_cert": ("tls_server_config:\n  cert_file: certs/server.key\n  key_file: certs/server.key\n",
                          "failed to load X509KeyPair"),
    "key_mismatch": ("tls_server_config:\n  cert_file: certs/client.crt\n  key_file: certs/server.key\n",
                     "failed to load X509KeyPair"),
    "ca_without_policy": (TLS + "  client_ca_file: certs/ca.crt\n",
                          "Client CA's have been configured without a Client Auth Policy"),
    "ca_missing": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.crt\n",
                   "no such file or directory"),
    "bad_client_auth": (TLS + "  client_auth_type: Sometimes\n", "Invalid ClientAuth: Sometimes"),
    "bad_header": ("http_server_config:\n  headers:\n    Server: x\n", 'HTTP header "Server" can not be configured'),
    "bad_header_value": ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                         "invalid value for X-Frame-Options"),
    "bad_cipher": ("tls_server_config:\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "unknown cipher"),
    "bad_curve": ("tls_server_config:\n  curve_preferences: [P256]\n", "unknown curve"),
    "bad_version": ("tls_server_config:\n  max_version: TLS14\n", "unknown TLS version"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("webconfig")
    make_certs(d / "certs")
    return d


@pytest.mark.parametrize("name", sorted(CASES))
def test_checked_as_promtool_check_web_config(folder: Path, name: str):
    assert PROMTOOL, "promtool is not installed (scripts/setup.sh installs Debian's prometheus)"
    text, expected = CASES[name]
    path = folder / f"{name}.yml"
    path.write_text(text.replace("{hash}", HASH))
    promtool = subprocess.run([PROMTOOL, "check", "web-config", str(path)], capture_output=True, text=True)
    try:
        read_web_config(path)
        mine = None
    except ValueError as exc:
        mine = str(exc)
    assert (promtool.returncode == 0) == (mine is None), (promtool.stdout + promtool.stderr, mine)
    if expected is not None:
        assert expected in promtool.stdout + promtool.stderr
        assert expected in mine


def test_relative_paths_are_relative_to_the_web_config_files_folder(folder: Path, tmp_path: Path, monkeypatch):
    path = folder / "rel.yml"
    path.write_text(TLS)
    monkeypatch.chdir(tmp_path)  # elsewhere: the paths must not depend on the working directory
    cfg = read_web_config(path)
    assert cfg.tls_server_config.cert_file == str(folder / "certs" / "server.crt")
    assert isinstance(server_ssl_context(cfg), ssl.SSLContext)


def test_load_names_the_field_and_reads_once(folder: Path):
    bad = folder / "bad.yml"
    bad.write_text("tls_server_config:\n  cert_file: certs/server.crt\n")
    with pytest.raises(ConfigError, match=r"^web_config_file \(.*bad.yml\): missing key_file"):
        load_web_config(str(bad))
    good = folder / "good.yml"
    good.write_text("basic_auth_users:\n  alice: " + HASH + "\n")
    assert load_web_config(str(good)) is load_web_config(str(good))


def test_the_hashes_are_secrets(folder: Path):
    path = folder / "secret.yml"
    path.write_text("basic_auth_users:\n  alice: " + HASH + "\n")
    cfg = read_web_config(path)
    assert HASH not in repr(cfg) and HASH not in str(cfg.model_dump())


def test_bcrypt_cost_reads_as_go():
    assert bcrypt_cost("$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi") == 10
    assert bcrypt_cost(bcrypt_hash("x", 5)) == 5
    with pytest.raises(ValueError, match="must start with"):
        bcrypt_cost("x" * 60)


def test_verifier_as_exporter_toolkit():
    import asyncio
    import base64

    v = BasicAuthVerifier({"alice": __import__("pydantic").SecretStr(bcrypt_hash("right"))})

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def main():
        assert await v.check(None) == "no_credentials"
        assert await v.check("Bearer abc") == "no_credentials"
        assert await v.check("Basic !!!") == "no_credentials"
        assert await v.check(header("alice", "wrong")) == "wrong_credentials"
        assert await v.check(header("mallory", "right")) == "wrong_credentials"
        assert await v.check(header("alice", "right")) == ""
        assert await v.check(header("alice", "right")) == ""  # cached
        # Go's bcrypt reads 72 bytes of a password at most; so does the verifier (no error past them).
        assert await v.check(header("alice", "x" * 100)) == "wrong_credentials"

    asyncio.run(main())
    assert v.check_blocking(header("alice", "right")) == ""
    assert v.check_blocking(header("alice", "nope")) == "wrong_credentials"
