"""``/api/v1/targets``'s JSON from the coordinator's state: Prometheus's fields, each active target's
scraper, dropped targets, the ``state`` and ``scrapePool`` filters, and Shardmon's own job last."""

from shardmon.ingest.scrape_loop import TargetHealth
from shardmon.ingest.target import SELF_JOB, self_targets, targets_from_config
from shardmon.ingest.target_status import targets_data
from shardmon.model.config import parse_config

CONFIG = parse_config("""
global: {scrape_interval: 15s, scrape_timeout: 10s}
scrape_configs:
  - job_name: app
    scrape_interval: 5s
    scrape_timeout: 1500ms
    static_configs: [{targets: ["a:1", "b:1"]}]
  - job_name: other
    static_configs: [{targets: ["c:1"]}]
""")


def state():
    a, b, c = targets_from_config(CONFIG)
    (own,) = self_targets(CONFIG, [("querier", "127.0.0.1:9190", "/metrics")])
    discovered = {
        "app": [({"__address__": "a:1"}, a), ({"__address__": "b:1"}, b), ({"__address__": "gone:1"}, None)],
        "other": [({"__address__": "c:1"}, c)],
    }
    targets = [a, b, c, own]
    assignment = {"scraper-0": [a, c], "scraper-1": [b, own]}
    healths = [TargetHealth(a.url, a.labels.to_dict(), "up", "", 1_700_000_000_123, 0.25, 42),
               TargetHealth(b.url, b.labels.to_dict(), "down", "server returned HTTP status 500", 1_700_000_001_000,
                            0.5, 0)]
    return discovered, targets, assignment, healths


def test_active_targets_carry_prometheus_fields_health_and_their_scraper():
    data = targets_data(CONFIG, *state())
    active = data["activeTargets"]
    assert [(t["scrapePool"], t["labels"]["instance"]) for t in active] == [
        ("app", "a:1"), ("app", "b:1"), ("other", "c:1"), (SELF_JOB, "127.0.0.1:9190")]
    a, b, c, own = active
    assert a == {
        # As Prometheus: the discovered set with the scrape config's defaults, before relabeling.
        "discoveredLabels": {"__address__": "a:1", "job": "app", "__scrape_interval__": "5s",
                             "__scrape_timeout__": "1s500ms", "__metrics_path__": "/metrics", "__scheme__": "http"},
        "labels": {"instance": "a:1", "job": "app"},
        "scrapePool": "app",
        "scrapeUrl": "http://a:1/metrics",
        "globalUrl": "http://a:1/metrics",
        "lastError": "",
        "lastScrape": "2023-11-14T22:13:20.123Z",
        "lastScrapeDuration": 0.25,
        "health": "up",
        "scrapeInterval": "5s",
        "scrapeTimeout": "1s500ms",  # as Prometheus's model.Duration writes it
        "scraper": "scraper-0",
    }
    assert (b["health"], b["lastError"], b["scraper"]) == ("down", "server returned HTTP status 500", "scraper-1")
    # Not scraped yet: unknown, at Go's zero time.
    assert (c["health"], c["lastScrape"], c["lastScrapeDuration"], c["scraper"]) == (
        "unknown", "0001-01-01T00:00:00Z", 0, "scraper-0")
    assert (own["labels"]["component"], own["scraper"], own["scrapeInterval"]) == ("querier", "scraper-1", "15s")
    assert [d["discoveredLabels"]["__address__"] for d in data["droppedTargets"]] == ["gone:1"]
    assert data["droppedTargets"][0]["discoveredLabels"]["job"] == "app"  # the pool a dropped target came from


def test_state_and_scrape_pool_filter_as_prometheus_query_parameters_do():
    assert list(targets_data(CONFIG, *state(), state="active")) == ["activeTargets"]
    assert list(targets_data(CONFIG, *state(), state="dropped")) == ["droppedTargets"]
    other = targets_data(CONFIG, *state(), scrape_pool="other")
    assert [t["scrapeUrl"] for t in other["activeTargets"]] == ["http://c:1/metrics"] and other["droppedTargets"] == []
