"""Targets from static_configs, with Prometheus's label overrides, and their assignment to scrapers."""

import pytest

from ingest.target import Target, assign_targets, targets_from_config
from model.config import parse_config
from model.errors import ConfigError
from model.labels import Labels

SHARDS = "shards: {nodes: [{id: 0, address: '127.0.0.1:1', redis_url: 'redis://127.0.0.1:2'}]}\n"


def _targets(yaml_text):
    return targets_from_config(parse_config(yaml_text + SHARDS))


def test_static_targets_get_job_instance_and_group_labels():
    (t,) = _targets("""
scrape_configs:
  - job_name: node
    scrape_interval: 15s
    static_configs:
      - targets: ["10.0.0.1:9100"]
        labels: {dc: eu}
""")
    assert t.url == "http://10.0.0.1:9100/metrics"
    assert t.labels == Labels.from_dict({"job": "node", "instance": "10.0.0.1:9100", "dc": "eu"})
    assert (t.interval_ms, t.timeout_ms) == (15_000, 10_000)


def test_group_labels_override_path_scheme_instance_and_params():
    (t,) = _targets("""
scrape_configs:
  - job_name: j
    metrics_path: /m
    params: {module: [a], x: [1, 2]}
    static_configs:
      - targets: ["h:1"]
        labels:
          __metrics_path__: /probe
          __scheme__: https
          __param_module: b
          instance: nice-name
          __scrape_interval__: 30s
""")
    assert t.url == "https://h:1/probe?module=b&x=1&x=2"
    assert t.labels == Labels.from_dict({"job": "j", "instance": "nice-name"})
    assert t.interval_ms == 30_000


def test_group_label_can_override_job():
    (t,) = _targets("""
scrape_configs:
  - job_name: j
    static_configs: [{targets: ["h:1"], labels: {job: other}}]
""")
    assert t.job == "other" and t.labels.get("job") == "other"


def test_bad_override_names_the_target():
    with pytest.raises(ConfigError, match=r"scrape_configs\[0\].static_configs\[0\].targets\[0\]"):
        _targets("""
scrape_configs:
  - job_name: j
    scrape_interval: 10s
    static_configs: [{targets: ["h:1"], labels: {__scrape_timeout__: 20s}}]
""")


def test_duplicate_targets_are_scraped_once():
    ts = _targets("""
scrape_configs:
  - job_name: j
    static_configs: [{targets: ["h:1", "h:1"]}, {targets: ["h:1"]}]
""")
    assert len(ts) == 1


def test_assign_targets_gives_every_target_to_exactly_one_scraper():
    from model.labels import Labels

    targets = [Target("j", f"http://h{i}:80/metrics", Labels.from_dict({"instance": f"h{i}"}), 1000, 1000, False, True)
               for i in range(100)]
    out = assign_targets(targets, ["s0", "s1"])
    assert sorted(t.url for ts in out.values() for t in ts) == sorted(t.url for t in targets)
