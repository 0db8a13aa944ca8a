"""Targets from static_configs, with Prometheus's label overrides, and their assignment to scrapers."""

import pytest

from shardmon.ingest.target import Target, assign_targets, targets_from_config
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError
from shardmon.model.labels import Labels

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
    # A configured param overrides the group's __param_ label, as in Prometheus 2.42 (checked on a real one).
    assert t.url == "https://h:1/probe?module=a&x=1&x=2"
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
    from shardmon.model.labels import Labels

    targets = [Target("j", f"http://h{i}:80/metrics", Labels.from_dict({"instance": f"h{i}"}), 1000, 1000, False, True)
               for i in range(100)]
    out = assign_targets(targets, ["s0", "s1"])
    assert sorted(t.url for ts in out.values() for t in ts) == sorted(t.url for t in targets)


# --- Prometheus 2.42's PopulateLabels (each behaviour below was checked on a real Prometheus 2.42) -----


def test_an_address_without_a_port_gets_the_scheme_default_port():
    ts = _targets("""
scrape_configs:
  - job_name: j
    static_configs: [{targets: ["localhost", "127.0.0.1", "[::1]", "h:1"]}]
  - job_name: s
    scheme: https
    static_configs: [{targets: ["localhost"]}]
""")
    assert [(t.url, t.instance) for t in ts] == [
        ("http://localhost:80/metrics", "localhost:80"),
        ("http://127.0.0.1:80/metrics", "127.0.0.1:80"),
        ("http://[::1]:80/metrics", "[::1]:80"),
        ("http://h:1/metrics", "h:1"),
        ("https://localhost:443/metrics", "localhost:443"),
    ]


def test_params_are_sorted_and_escaped_as_go_encodes_them_and_a_param_label_adds_one():
    a, b = _targets("""
scrape_configs:
  - job_name: p
    params: {zz: ["1", "2"], module: [a], "b c": ["x y&z"]}
    static_configs:
      - {targets: ["h:1"], labels: {__param_module: b}}
      - {targets: ["h:2"], labels: {__param_new: n}}
""")
    assert a.url == "http://h:1/metrics?b+c=x+y%26z&module=a&zz=1&zz=2"
    assert b.url == "http://h:2/metrics?b+c=x+y%26z&module=a&new=n&zz=1&zz=2"


def test_relabel_configs_shape_targets_and_double_underscore_labels_vanish():
    ts = _targets("""
scrape_configs:
  - job_name: r
    static_configs:
      - targets: ["h:1", "h:2", "h:3"]
        labels: {__tmp_x: t, __meta_y: m, __keep: k}
    relabel_configs:
      - {source_labels: [__address__], regex: "h:2", action: drop}
      - {source_labels: [__tmp_x], target_label: tx}
      - {source_labels: [__meta_y], target_label: my}
      - {source_labels: [__address__], regex: "h:3", target_label: __address__, replacement: "other:9"}
      - {source_labels: [__address__], regex: "other:9", target_label: __metrics_path__, replacement: /probe}
""")
    assert [(t.url, t.labels.to_dict()) for t in ts] == [
        ("http://h:1/metrics", {"instance": "h:1", "job": "r", "my": "m", "tx": "t"}),
        ("http://other:9/probe", {"instance": "other:9", "job": "r", "my": "m", "tx": "t"}),
    ]


@pytest.mark.parametrize("relabel, message", [
    ("{action: labeldrop, regex: __address__}", "no address"),
    ("{target_label: __address__, replacement: 'a/b:1'}", "'a/b:1' is not a valid hostname"),
    ("{target_label: __scrape_interval__, replacement: 0s}", "scrape interval cannot be 0"),
    ("{target_label: __scrape_timeout__, replacement: 2m}", "scrape timeout cannot be greater than scrape interval"),
    ("{target_label: __scrape_interval__, replacement: soon}", "error parsing scrape interval"),
])
def test_a_target_prometheus_would_refuse_is_a_config_error_naming_it(relabel, message):
    with pytest.raises(ConfigError, match=r"scrape_configs\[0\].static_configs\[0\].targets\[0\]: ") as info:
        _targets(f"""
scrape_configs:
  - job_name: j
    static_configs: [{{targets: ["h:1"]}}]
    relabel_configs: [{relabel}]
""")
    assert message in str(info.value)


def test_discovered_label_sets_become_targets_skipping_refused_ones():
    from shardmon.ingest.target import job_targets

    sc = parse_config("scrape_configs: [{job_name: d, target_limit: 3, sample_limit: 7}]\n" + SHARDS).scrape_configs[0]
    errors = []
    ts = job_targets(sc, [{"__address__": "a:1", "__meta_x": "y"}, {"__address__": ""}, {"__address__": "a:1"},
                          {"__address__": "b:1", "zone": "z"}], lambda i, exc: errors.append((i, str(exc))))
    assert [(t.url, t.labels.to_dict(), t.error) for t in ts] == [
        ("http://a:1/metrics", {"instance": "a:1", "job": "d"}, ""),
        ("http://b:1/metrics", {"instance": "b:1", "job": "d", "zone": "z"}, ""),
    ]
    assert errors == [(1, "no address")] and ts[0].options.sample_limit == 7


def test_target_limit_marks_every_target_of_the_job_and_lifts_when_under():
    from shardmon.ingest.target import apply_target_limit

    ts = _targets("""
scrape_configs:
  - job_name: j
    target_limit: 2
    static_configs: [{targets: ["h:1", "h:2", "h:3"]}]
""")
    assert {t.error for t in ts} == {"target_limit exceeded (number of targets: 3, limit: 2)"}
    assert [t.error for t in apply_target_limit(ts[:2], 2)] == ["", ""]


def test_scrape_options_carry_limits_relabeling_and_the_http_client():
    (t,) = _targets("""
scrape_configs:
  - job_name: j
    sample_limit: 10
    label_limit: 3
    label_name_length_limit: 4
    label_value_length_limit: 5
    body_size_limit: 1KB
    basic_auth: {username: u, password: p}
    metric_relabel_configs: [{action: labeldrop, regex: x}]
    static_configs: [{targets: ["h:1"]}]
""")
    o = t.options
    assert (o.sample_limit, o.label_limit, o.label_name_length_limit, o.label_value_length_limit, o.body_size_limit) == (
        10, 3, 4, 5, 1024)
    assert len(o.metric_relabel_configs) == 1 and o.http is not None and o.http.basic_auth.username == "u"
    (plain,) = _targets("scrape_configs: [{job_name: j, static_configs: [{targets: ['h:1']}]}]\n")
    assert plain.options.http is None and plain.error == ""
