"""A shard's Redis settings: the password never stays in the URL (nor in any message), password_file,
TLS for rediss://, and the errors naming the field."""

from __future__ import annotations

import pytest

from shardmon.model.addresses import redacted_url
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


def _node(extra: str) -> str:
    return f"shards:\n  nodes:\n  - id: 0\n    address: 127.0.0.1:9301\n    {extra}\n"


def test_a_password_in_redis_url_moves_out_of_it_into_a_secret():
    c = parse_config(_node("redis_url: redis://app:s3cr%40t@127.0.0.1:6401/0"))
    n = c.shards.nodes[0]
    assert n.redis_url == "redis://app@127.0.0.1:6401/0"
    assert n.redis_password_value() == "s3cr@t"
    assert "s3cr" not in repr(c) and "s3cr" not in str(n.model_dump())
    assert parse_config(_node("redis_url: redis://:pw@h:1/0")).shards.nodes[0].redis_url == "redis://h:1/0"


def test_redis_password_file_is_read_at_use_and_trimmed(tmp_path):
    f = tmp_path / "pw"
    f.write_text("first\n")
    n = parse_config(_node(f"redis_url: redis://h:1/0\n    redis_password_file: {f}")).shards.nodes[0]
    assert n.redis_password_value() == "first"
    f.write_text("  rotated  \n")
    assert n.redis_password_value() == "rotated"
    f.unlink()
    with pytest.raises(ConfigError, match="redis_password_file: cannot read"):
        n.redis_password_value()


@pytest.mark.parametrize("extra, message", [
    ("redis_url: redis://:pw@h:1/0\n    redis_password_file: /x", "at most one of a password in redis_url"),
    ("redis_url: redis://h:1/0\n    redis_password: a\n    redis_password_file: /x",
     "at most one of redis_password & redis_password_file"),
    ("redis_url: redis://h:1/0\n    redis_tls_config: {ca_file: /ca.pem}",
     "shards.nodes[0]: redis_tls_config: TLS needs a rediss:// redis_url"),
    ("redis_url: rediss://h:1/0\n    redis_tls_config: {cert: x, key: y}", "redis_tls_config.cert: not supported"),
    ("redis_url: rediss://h:1/0\n    redis_tls_config: {server_name: x}", "redis_tls_config.server_name"),
    ("redis_url: rediss://h:1/0\n    redis_tls_config: {cert_file: /c.pem}", "key_file must be configured"),
])
def test_bad_redis_settings_name_the_field_and_never_echo_the_password(extra, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(_node(extra))
    assert message in str(exc.value)
    assert "pw" not in str(exc.value)


def test_tls_settings_of_a_rediss_url_load():
    text = _node("redis_url: rediss://h:1/0\n    redis_tls_config: "
                 "{ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, min_version: TLS12}")
    n = parse_config(text).shards.nodes[0]
    assert n.redis_tls_config.ca_file == "/ca.pem" and n.redis_tls_config.min_version == "TLS12"


def test_redacted_url_hides_only_the_password():
    assert redacted_url("redis://u:p@h:1/0") == "redis://u:xxxxx@h:1/0"
    assert redacted_url("redis://:p@h:1/0") == "redis://:xxxxx@h:1/0"
    assert redacted_url("redis://u@h:1/0") == "redis://u@h:1/0"
    assert redacted_url("redis://h:1/0") == "redis://h:1/0"


def test_wal_appendfsync_off_asks_for_no_aof():
    assert parse_config("shards: {wal_appendfsync: 'off'}").shards.wal_appendfsync == "off"
    with pytest.raises(ConfigError, match="shards.wal_appendfsync"):
        parse_config("shards: {wal_appendfsync: never}")
    # Unquoted, YAML reads off (and no) as false: the error says how to write it.
    with pytest.raises(ConfigError, match="shards.wal_appendfsync: write the policy as a quoted string"):
        parse_config("shards: {wal_appendfsync: off}")
