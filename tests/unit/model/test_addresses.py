"""Addresses in the configuration (model/addresses.py): checked when the configuration loads, the error
naming the field path, so every subcommand sees the same errors."""

import pytest

from shardmon.model.addresses import check_host_port, check_ray_address, check_redis_url, redacted_url
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


@pytest.mark.parametrize("value", ["127.0.0.1:9090", "0.0.0.0:1", "shard-0:65535", "[::1]:9090", "a_b.c:80"])
def test_host_ports(value):
    assert check_host_port(value) == value


@pytest.mark.parametrize("value", ["", "shard-0", ":9090", "h:0", "h:65536", "h:port", "http://h:1", "h:1/x", "[::1"])
def test_not_host_ports(value):
    with pytest.raises(ValueError, match="not a host:port address"):
        check_host_port(value)


def test_redis_urls_and_ray_addresses():
    for ok in ("redis://127.0.0.1:6379/0", "rediss://redis-0:6380", "unix:///run/redis.sock", "redis://u@h:1/2"):
        assert check_redis_url(ok) == ok
    for bad in ("redis-0:6379", "http://h:1", "redis://", "redis://[::1"):
        with pytest.raises(ValueError, match="not a redis:// URL"):
            check_redis_url(bad)
    for ok in ("local", "ray-head:6379", "ray://ray-head:10001"):
        assert check_ray_address(ok) == ok
    for bad in ("ray-head", "ray://", "auto"):
        with pytest.raises(ValueError, match="not a host:port address"):
            check_ray_address(bad)


def test_a_password_never_shows_in_the_message():
    assert redacted_url("redis://user:s3cret@h:1/0") == "redis://user:xxxxx@h:1/0"
    with pytest.raises(ValueError) as info:
        check_redis_url("http://user:s3cret@h:1/0")
    assert "s3cret" not in str(info.value) and "xxxxx" in str(info.value)


NODE = '{id: 0, address: "s:9301", redis_url: "redis://r:6379/0"}'


@pytest.mark.parametrize("text, error", [
    (f"shards: {{nodes: [{NODE}, {{id: 1, address: s1, redis_url: 'redis://r:1'}}]}}",
     "shards.nodes[1].address: not a host:port address: 's1'"),
    (f"shards: {{nodes: [{NODE}, {{id: 1, address: 's:1', redis_url: 'r:1'}}]}}",
     "shards.nodes[1].redis_url: not a redis:// URL: 'r:1'"),
    ("shards: {nodes: [{id: 0, address: 's:1', redis_url: 'redis://r:1', metrics_address: m}]}",
     "shards.nodes[0].metrics_address: not a host:port address: 'm'"),
    ("querier: {http_address: ':9090'}", "querier.http_address: not a host:port address: ':9090'"),
    ("querier: {grpc_address: 'q:91910'}", "querier.grpc_address: not a host:port address: 'q:91910'"),
    ("ingest: {ray_address: ray-head}", "ingest.ray_address: not a host:port address: 'ray-head'"),
    ("ingest: {http_address: ingest}", "ingest.http_address: not a host:port address: 'ingest'"),
    ("receiver: {http_address: r}", "receiver.http_address: not a host:port address: 'r'"),
    ("receiver: {pushgateway_address: 9091}", "receiver.pushgateway_address: not a host:port address: '9091'"),
    ("local: {demo_targets: ['d:1', d]}", "local.demo_targets[1]: not a host:port address: 'd'"),
])
def test_a_bad_address_is_refused_when_the_config_loads_naming_the_field(text, error):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yml")
    assert str(info.value) == f"c.yml: {error}"


def test_good_addresses_load_and_optional_ones_may_be_unset():
    c = parse_config("""
shards: {nodes: [{id: 0, address: "[::1]:9301", redis_url: "rediss://r:6380/0", metrics_address: "0.0.0.0:9311"}]}
ingest: {ray_address: "ray://ray-head:10001", http_address: "127.0.0.1:9193"}
receiver: {pushgateway_address: null}
local: {demo_targets: []}
""")
    assert c.shards.nodes[0].address == "[::1]:9301" and c.receiver.pushgateway_address is None
    assert c.ingest.ray_address == "ray://ray-head:10001" and c.ingest.http_address == "127.0.0.1:9193"
