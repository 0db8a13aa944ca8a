"""Secrets in the configuration are never printed, a YAML error never quotes the file, and the web
config's listeners and Shardmon's own clients must fit together."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shardmon.cli import main
from shardmon.model.config import load_config, parse_config
from shardmon.model.errors import ConfigError
from tests.tlsutil import bcrypt_hash, make_certs

SECRET = "hunter2-very-secret"


def test_scrape_and_internal_secrets_are_secretstr_and_never_printed(tmp_path: Path, capsys):
    raw = {
        "scrape_configs": [
            {"job_name": "a", "basic_auth": {"username": "u", "password": SECRET},
             "static_configs": [{"targets": ["h:1"]}]},
            {"job_name": "b", "authorization": {"credentials": SECRET}, "static_configs": [{"targets": ["h:2"]}]},
            {"job_name": "c", "bearer_token": SECRET, "static_configs": [{"targets": ["h:3"]}]},
        ],
        "internal_client": {"basic_auth": {"username": "u", "password": SECRET}},
    }
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump())
    assert cfg.scrape_configs[0].basic_auth.password.get_secret_value() == SECRET
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


def test_a_yaml_error_names_the_position_not_the_line():
    with pytest.raises(ConfigError) as err:
        parse_config(f"scrape_configs:\n  - job_name: a\n    basic_auth: {{password: {SECRET}\n   x: [\n", "c.yml")
    msg = str(err.value)
    assert "line " in msg and "column " in msg and SECRET not in msg


def _web(tmp_path: Path, text: str) -> str:
    make_certs(tmp_path / "certs")
    (tmp_path / "web.yml").write_text(text)
    return "web.yml"


TLS = "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: certs/server.key\n"


@pytest.mark.parametrize("web,extra,error", [
    (TLS, {}, "internal_client.tls_config: required"),
    (TLS, {"internal_client": {"tls_config": {"ca_file": "certs/ca.crt"}}}, None),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: certs/ca.crt\n",
     {"internal_client": {"tls_config": {"ca_file": "certs/ca.crt"}}}, "internal_client.tls_config.cert_file: required"),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: certs/ca.crt\n",
     {"internal_client": {"tls_config": {"ca_file": "certs/ca.crt", "cert_file": "certs/client.crt",
                                         "key_file": "certs/client.key"}}}, None),
    ("basic_auth_users:\n  u: HASH\n", {}, "internal_client.basic_auth: required"),
    ("basic_auth_users:\n  u: HASH\n", {"internal_client": {"basic_auth": {"username": "u", "password": "p"}}}, None),
    ("", {"internal_client": {"tls_config": {}}}, "internal_client.tls_config: set, but the listeners speak no TLS"),
    ("", {"shards": {"tls": {"ca_file": "x"}}}, "shards.tls: set, but the listeners speak no TLS"),
])
def test_the_listeners_and_shardmons_own_clients_must_fit(tmp_path: Path, monkeypatch, web, extra, error):
    monkeypatch.chdir(tmp_path)  # the client's relative certificate paths
    name = _web(tmp_path, web.replace("HASH", bcrypt_hash("p")))
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"web_config_file": name, **extra}))
    cfg = load_config(tmp_path / "c.yml")
    assert cfg.web_config_file == str(tmp_path / "web.yml")  # relative to the configuration's folder
    if error is None:
        assert cfg.web_config() is not None
    else:
        with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
            cfg.web_config()


def test_grpc_cannot_skip_verification():
    with pytest.raises(ConfigError, match=r"shards\.tls: insecure_skip_verify: not supported for gRPC"):
        parse_config("shards:\n  tls:\n    insecure_skip_verify: true\n")
