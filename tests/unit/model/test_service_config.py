"""Fields of the configuration's service sections that need more than their model: web.external_url."""

import socket

import pytest

from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


def test_external_url_as_prometheus_derives_and_checks_it():
    assert parse_config("web: {external_url: 'https://m.example.com/shardmon/'}\n").external_url() == \
        "https://m.example.com/shardmon"
    default = parse_config("querier: {http_address: '0.0.0.0:9190'}\n")
    assert default.external_url() == f"http://{socket.gethostname()}:9190"
    for bad in ("m.example.com", "'http://m.example.com'", "ftp://m.example.com"):
        with pytest.raises(ConfigError, match="web.external_url"):
            parse_config(f"web: {{external_url: \"{bad}\"}}\n")
