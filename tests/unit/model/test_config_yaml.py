"""The running configuration as YAML (``/api/v1/status/config``): every secret shown as ``<secret>``, the rest
written as the file would be (durations and sizes as Prometheus writes them) and read back unchanged."""

from __future__ import annotations

import yaml

from shardmon.cli_common import default_config_text
from shardmon.model.config import parse_config
from shardmon.model.config_yaml import SECRET, config_yaml, redact_url
from shardmon.model.units import format_size_bytes

SECRETS = ["hunter2-basic", "tok-authorization", "bt-bearer", "k8s-bearer", "redis-pw", "url-redis-pw",
           "proxy-pw", "PRIVATE-KEY-TEXT", "internal-pw", "am-pw"]

CONFIG = """
global: {scrape_interval: 15s, external_labels: {dc: x}}
scrape_configs:
  - job_name: a
    basic_auth: {username: u, password: hunter2-basic}
    static_configs: [{targets: ["127.0.0.1:1"], labels: {env: demo}}]
    relabel_configs: [{source_labels: [__address__], target_label: x}]
  - job_name: b
    authorization: {credentials: tok-authorization}
    proxy_url: http://pu:proxy-pw@127.0.0.1:3128
    tls_config: {key: PRIVATE-KEY-TEXT, cert: CERT-TEXT}
    kubernetes_sd_configs: [{role: pod, api_server: "https://k:6443", bearer_token: k8s-bearer}]
  - job_name: c
    bearer_token: bt-bearer
    scrape_interval: 1h30m
    body_size_limit: 1536MB
alerting:
  alertmanagers: [{basic_auth: {username: am, password: am-pw}, static_configs: [{targets: ["127.0.0.1:9093"]}]}]
shards:
  nodes:
    - {id: 0, address: "127.0.0.1:7000", redis_url: "redis://127.0.0.1:6379/0", redis_password: redis-pw}
    - {id: 1, address: "127.0.0.1:7001", redis_url: "redis://:url-redis-pw@127.0.0.1:6380/0"}
  retention_time: 30d
internal_client: {basic_auth: {username: i, password: internal-pw}}
"""


def test_no_configured_secret_appears_and_each_is_shown_as_secret():
    text = config_yaml(parse_config(CONFIG))
    for secret in SECRETS:
        assert secret not in text
    doc = yaml.safe_load(text)
    a, b, c = doc["scrape_configs"]
    assert a["basic_auth"] == {"username": "u", "password": SECRET}
    assert b["authorization"]["credentials"] == SECRET
    assert b["tls_config"]["key"] == SECRET and b["tls_config"]["cert"] == "CERT-TEXT"
    assert b["proxy_url"] == f"http://pu:{SECRET}@127.0.0.1:3128"
    assert b["kubernetes_sd_configs"][0]["bearer_token"] == SECRET
    assert c["bearer_token"] == SECRET
    assert [n.get("redis_password") for n in doc["shards"]["nodes"]] == [SECRET, SECRET]
    assert doc["internal_client"]["basic_auth"]["password"] == SECRET
    assert doc["alerting"]["alertmanagers"][0]["basic_auth"]["password"] == SECRET


def test_values_are_written_as_the_file_writes_them():
    doc = yaml.safe_load(config_yaml(parse_config(CONFIG)))
    assert list(doc)[0] == "global" and doc["global"]["scrape_interval"] == "15s"
    a, _, c = doc["scrape_configs"]
    assert list(a)[0] == "job_name"
    assert a["static_configs"] == [{"targets": ["127.0.0.1:1"], "labels": {"env": "demo"}}]
    assert c["scrape_interval"] == "1h30m" and c["body_size_limit"] == "1536MiB"
    assert doc["shards"]["retention_time"] == "30d"
    assert doc["querier"]["max_query_length"] == "256KiB"


def test_the_yaml_reads_back_to_the_same_configuration():
    for text in (CONFIG, default_config_text()):
        once = config_yaml(parse_config(text))
        assert config_yaml(parse_config(once)) == once


def test_sizes_as_go_base2bytes_and_urls_redacted_only_with_a_password():
    assert [format_size_bytes(n) for n in (0, 1, 1024, 512 * 2**20, 2**30, 2**30 + 512 * 2**20, 1025)] == [
        "0B", "1B", "1KiB", "512MiB", "1GiB", "1536MiB", "1025B"]
    assert redact_url("https://u:p@h:1/x?y") == f"https://u:{SECRET}@h:1/x?y"
    assert redact_url("https://u@h:1/x") == "https://u@h:1/x"
    assert redact_url("a:b@c") == "a:b@c"
