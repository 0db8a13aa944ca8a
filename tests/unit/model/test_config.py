"""Configuration: Prometheus's fields and defaults, Shardmon's sections, errors naming the field path."""

import pytest
import yaml

from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError
from shardmon.model.yaml_strict import StrictSafeLoader


def test_a_plain_prometheus_yml_loads_with_prometheus_defaults():
    c = parse_config("""
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels: {monitor: example}
scrape_configs:
  - job_name: prometheus
    scrape_interval: 5s
    scrape_timeout: 5s
    static_configs:
      - targets: ['localhost:9090']
  - job_name: node
    static_configs:
      - targets: ['localhost:9100']
""")
    prom, node = c.scrape_configs
    assert (prom.scrape_interval, prom.scrape_timeout) == (5000, 5000)
    # Unset: the global interval and the default 10s timeout.
    assert (node.scrape_interval, node.scrape_timeout) == (15_000, 10_000)
    assert node.metrics_path == "/metrics" and node.scheme == "http"
    assert node.honor_timestamps and not node.honor_labels
    assert [n.id for n in c.shards.nodes] == [0]


def test_default_timeout_is_capped_at_a_short_interval():
    c = parse_config("global: {scrape_interval: 5s}\nscrape_configs: [{job_name: a}]\n")
    assert c.global_.scrape_timeout == 5000
    assert c.scrape_configs[0].scrape_timeout == 5000


def test_shardmon_sections_load():
    c = parse_config("""
shards:
  replication_factor: 2
  block_duration: 1h
  nodes:
    - {id: 3, address: "h:1", redis_url: "redis://h:2"}
    - {id: 7, address: "h:3", redis_url: "redis://h:4"}
ingest: {scrapers: 4, flush_interval: 100ms}
querier: {http_address: "0.0.0.0:9090", partial_response: abort}
""")
    assert c.shards.replication_factor == 2 and c.shards.block_duration == 3_600_000
    assert c.shards.node(7).address == "h:3"
    assert c.ingest.scrapers == 4 and c.ingest.flush_interval == 100
    assert c.querier.partial_response == "abort"


@pytest.mark.parametrize(
    "text, message",
    [
        ("global: {scrape_interval: 5x}", "global.scrape_interval: not a valid duration string: '5x'"),
        ("global: {scrape_interval: 15}", "global.scrape_interval: not a valid duration string: 15"),
        ("global: {scrape_interval: 5s, scrape_timeout: 10s}", "global scrape timeout greater than scrape interval"),
        ("scrape_configs: [{job_name: a, foo: 1}]", "scrape_configs[0].foo: field not supported"),
        ("rule_files: ['a/*/b.yml']", "invalid rule file path 'a/*/b.yml'"),
        ("scrape_configs: [{static_configs: []}]", "scrape_configs[0].job_name: Field required"),
        (
            "scrape_configs: [{job_name: a, scrape_interval: 1s, scrape_timeout: 2s}]",
            "scrape_configs[0].scrape_timeout: scrape timeout greater than scrape interval for scrape config with job name 'a'",
        ),
        ("scrape_configs: [{job_name: a}, {job_name: a}]", "found multiple scrape configs with job name 'a'"),
        (
            "scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1'], labels: {'0bad': x}}]}]",
            "scrape_configs[0].static_configs[0].labels: Value error, '0bad' is not a valid label name",
        ),
        ("scrape_configs: [{job_name: a, scheme: ftp}]", "scrape_configs[0].scheme: Input should be 'http' or 'https'"),
        (
            "shards: {nodes: [{id: 0, address: 'a:1', redis_url: 'redis://b'}, {id: 0, address: 'c:1', redis_url: 'redis://d'}]}",
            "shards: Value error, shard ids must be unique",
        ),
        ("shards: {nodes: [{id: 0, address: a}]}", "shards.nodes[0].redis_url: Field required"),
        ("querier: {partial_response: maybe}", "querier.partial_response: Input should be 'warn' or 'abort'"),
        ("- a\n- b", "the top level must be a mapping"),
        ("a: [", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_field(text, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "cfg.yml")
    assert message.replace("Value error, ", "") in str(exc.value)
    assert str(exc.value).startswith("cfg.yml: ")


def test_a_static_url_target_is_refused_only_when_no_relabeling_moves_it():
    """As Prometheus: the address is checked after relabeling, so blackbox-style URL targets load."""
    from shardmon.ingest.target import targets_from_config

    bad = parse_config("scrape_configs: [{job_name: a, static_configs: [{targets: ['http://h:1']}]}]")
    with pytest.raises(ConfigError, match=r"scrape_configs\[0\]\.static_configs\[0\]\.targets\[0\]: .*not a valid hostname"):
        targets_from_config(bad)


def test_the_lifecycle_and_admin_apis_are_off_unless_the_web_section_turns_them_on():
    c = parse_config("")
    assert not c.web.enable_lifecycle and not c.web.enable_admin_api
    c = parse_config("web: {enable_lifecycle: true, enable_admin_api: true}")
    assert c.web.enable_lifecycle and c.web.enable_admin_api
    with pytest.raises(ConfigError, match=r"web\.enable_admin: field not supported"):
        parse_config("web: {enable_admin: true}")


def test_the_scraper_count_is_bounded_by_ingest_max_scrapers():
    assert parse_config("").ingest.max_scrapers == 64
    assert parse_config("ingest: {scrapers: 100, max_scrapers: 100}").ingest.scrapers == 100
    with pytest.raises(ConfigError, match=r"ingest\.scrapers: 65 is more than ingest\.max_scrapers \(64\)"):
        parse_config("ingest: {scrapers: 65}")
    with pytest.raises(ConfigError, match=r"ingest\.scrapers: 4 is more than ingest\.max_scrapers \(3\)"):
        parse_config("ingest: {scrapers: 4, max_scrapers: 3}")
    with pytest.raises(ConfigError, match=r"ingest\.max_scrapers: Input should be greater than or equal to 1"):
        parse_config("ingest: {max_scrapers: 0}")


def test_shards_allow_reset_is_gone_and_says_what_replaced_it():
    with pytest.raises(ConfigError, match=r"shards\.allow_reset: removed; .*web\.enable_admin_api: true"):
        parse_config("shards: {allow_reset: true}")


def test_the_launchers_stop_grace_period_is_a_duration():
    assert parse_config("").local.stop_grace_period == 15_000
    assert parse_config("local: {stop_grace_period: 2s}").local.stop_grace_period == 2000
    with pytest.raises(ConfigError, match=r"local\.stop_grace_period: not a valid duration"):
        parse_config("local: {stop_grace_period: 2}")



def test_scrape_configs_and_http_sd_configs_read_the_http_config_fields_as_an_http_config_file():
    import yaml

    from shardmon.model.http_config import HTTPClientConfig

    fields = {"basic_auth": {"username": "u", "password_file": "/p"}, "follow_redirects": False,
              "tls_config": {"ca_file": "/ca.pem", "server_name": "s"}, "proxy_url": "http://proxy:3128"}
    sc = parse_config(yaml.safe_dump({"scrape_configs": [
        {"job_name": "a", **fields, "http_sd_configs": [{"url": "http://sd:8080/targets", **fields}]},
    ]})).scrape_configs[0]
    expected = HTTPClientConfig.model_validate(fields)  # as --http.config.file reads them
    assert sc.http_client_config() == expected == sc.http_sd_configs[0].http_client_config()
    assert not sc.is_default_http_config() and sc.proxy_url == "http://proxy:3128"
    bad = {"basic_auth": {"username": "u"}, "bearer_token": "t"}
    for where, job in (("scrape_configs[0]", {"job_name": "a", **bad}),
                       ("scrape_configs[0].http_sd_configs[0]",
                        {"job_name": "a", "http_sd_configs": [{"url": "http://sd", **bad}]})):
        with pytest.raises(ConfigError) as info:
            parse_config(yaml.safe_dump({"scrape_configs": [job]}))
        assert str(info.value) == (f"<config>: {where}: at most one of basic_auth, bearer_token & bearer_token_file "
                                   "must be configured")


def test_a_key_given_twice_is_an_error_naming_it_as_prometheus_refuses_it() -> None:
    # PyYAML would keep the last value silently (the embedded default once lost its rules.rulers this way).
    with pytest.raises(ConfigError, match=r"line 3, column 1: field ingest already set \(first at line 1\)"):
        parse_config("ingest: {scrapers: 1}\nquerier: {}\ningest: {scrapers: 2}\n")


def test_merge_keys_still_work_and_their_keys_may_be_overridden() -> None:
    doc = yaml.load("a: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n", Loader=StrictSafeLoader)  # noqa: S506 - a safe loader
    assert doc["c"] == {"x": 3, "y": 2}
