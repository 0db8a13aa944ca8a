"""The scrape options of ``scrape_configs`` entries: Prometheus 2.42's names, defaults and checks."""

import pytest

from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


def _sc(extra: str = ""):
    return parse_config(f"scrape_configs:\n  - job_name: a\n{extra}").scrape_configs[0]


def test_limits_default_to_none_and_the_http_client_to_plain():
    sc = _sc()
    assert (sc.sample_limit, sc.label_limit, sc.label_name_length_limit, sc.label_value_length_limit,
            sc.body_size_limit, sc.target_limit) == (0, 0, 0, 0, 0, 0)
    assert sc.follow_redirects and sc.enable_http2 and sc.basic_auth is None and sc.authorization is None
    assert sc.http_client_config().tls_config.insecure_skip_verify is False


@pytest.mark.parametrize("text, size", [("10MB", 10 * 2**20), ("1KiB", 1024), ("512B", 512), ("0", 0), (2048, 2048)])
def test_body_size_limit_takes_base_2_units(text, size):
    assert _sc(f"    body_size_limit: {text}\n").body_size_limit == size


def test_every_option_loads_with_its_prometheus_name():
    sc = _sc("""    sample_limit: 1000
    label_limit: 30
    label_name_length_limit: 200
    label_value_length_limit: 2048
    target_limit: 10
    follow_redirects: false
    authorization: {type: Token, credentials_file: /run/token}
    tls_config: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, server_name: x, insecure_skip_verify: true,
                 min_version: TLS12}
""")
    http = sc.http_client_config()
    assert (sc.sample_limit, sc.label_limit, sc.label_name_length_limit, sc.label_value_length_limit, sc.target_limit) == (
        1000, 30, 200, 2048, 10)
    assert http.authorization.type == "Token" and http.tls_config.server_name == "x" and not http.follow_redirects


@pytest.mark.parametrize("extra, message", [
    # Prometheus's own words (common/config.HTTPClientConfig.Validate and TLSConfig.Validate).
    ("basic_auth: {username: u}\n    bearer_token: t", "at most one of basic_auth, bearer_token & bearer_token_file"),
    ("bearer_token: t\n    bearer_token_file: /f", "at most one of bearer_token & bearer_token_file must be configured"),
    ("authorization: {credentials: c}\n    bearer_token: t", "authorization is not compatible with bearer_token"),
    ("authorization: {credentials: c}\n    basic_auth: {username: u}", "at most one of basic_auth, oauth2 & authorization"),
    ("authorization: {type: basic}", 'authorization type cannot be set to "basic", use "basic_auth" instead'),
    ("authorization: {credentials: c, credentials_file: /f}", "at most one of authorization credentials & credentials_file"),
    ("basic_auth: {username: u, password: p, password_file: /f}", "at most one of basic_auth password & password_file"),
    ("tls_config: {cert_file: /c}", "exactly one of key or key_file must be configured"),
    ("tls_config: {key_file: /k}", "exactly one of cert or cert_file must be configured"),
    ("sample_limit: -1", "sample_limit: Input should be greater than or equal to 0"),
    ("body_size_limit: 10XB", "body_size_limit: not a valid size"),
    # Not implemented by Shardmon: refused by name, never ignored.
    ("oauth2: {client_id: x, token_url: http://t}", "oauth2: field not supported"),
    ("http_headers: {X: {values: [y]}}", "http_headers: field not supported"),
    ("tls_config: {ciphers: [x]}", "tls_config.ciphers: field not supported"),
])
def test_a_bad_or_unsupported_option_is_an_error_naming_it(extra, message):
    with pytest.raises(ConfigError) as info:
        _sc(f"    {extra}\n")
    assert "scrape_configs[0]" in str(info.value) and message in str(info.value)
