"""The notifier's pure logic: external labels, alert relabeling, the bounded queue, batches of 64, and the
Alertmanager URLs of target groups (Prometheus 2.42's notifier.Manager and AlertmanagerFromGroup)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from shardmon.ingest.alertmanagers import AlertmanagerSet, alertmanager_urls
from shardmon.ingest.discovery.targetgroup import TargetGroup
from shardmon.ingest.notifier import MAX_BATCH_SIZE, Notifier, with_external_labels
from shardmon.model.config import parse_config
from shardmon.model.notification import Alert


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def alerting(text: str = ""):
    return parse_config("alerting:\n" + (text or "  alertmanagers: []")).alerting


def alerts(n: int, start: int = 0) -> list[Alert]:
    return [Alert({"alertname": "A", "i": str(i)}) for i in range(start, start + n)]


def test_external_labels_fill_what_the_alert_lacks_or_has_empty():
    assert with_external_labels({"alertname": "A", "cluster": "mine", "dc": ""}, {"cluster": "c", "dc": "d", "e": "f"}) == \
        {"alertname": "A", "cluster": "mine", "dc": "d", "e": "f"}


def test_alert_relabeling_runs_after_the_external_labels_and_drops_are_counted():
    n = Notifier(alerting("""
  alert_relabel_configs:
    - {source_labels: [cluster, severity], regex: 'eu;debug', action: drop}
    - {target_label: team, replacement: ops}
"""), {"cluster": "eu"})
    before = metric("shardmon_notifications_relabel_dropped_total")
    n.send([Alert({"alertname": "A", "severity": "debug"}, {"summary": "s"}, 1, 2, "g"),
            Alert({"alertname": "B", "severity": "page"}, {"summary": "s"}, 1, 2, "g")])
    batch = n.next_batch()
    assert [dict(a.labels) for a in batch] == [{"alertname": "B", "cluster": "eu", "severity": "page", "team": "ops"}]
    assert (batch[0].annotations, batch[0].starts_at_ms, batch[0].ends_at_ms, batch[0].generator_url) == \
        ({"summary": "s"}, 1, 2, "g")
    assert metric("shardmon_notifications_relabel_dropped_total") - before == 1


def test_batches_hold_at_most_64_alerts_oldest_first():
    n = Notifier(alerting())
    n.send(alerts(150))
    sizes, first = [], []
    while batch := n.next_batch():
        sizes.append(len(batch))
        first.append(batch[0].labels["i"])
    assert MAX_BATCH_SIZE == 64 and sizes == [64, 64, 22] and first == ["0", "64", "128"]


def test_a_full_queue_drops_the_oldest_and_counts_them():
    n = Notifier(alerting("  notification_queue_capacity: 100\n  alertmanagers: []"))
    assert metric("shardmon_notifications_queue_capacity") == 100
    before = metric("shardmon_notifications_dropped_total")
    n.send(alerts(80))
    n.send(alerts(50, start=80))
    assert n.queue_length() == 100 and metric("shardmon_notifications_queue_length") == 100
    assert metric("shardmon_notifications_dropped_total") - before == 30
    n.send(alerts(130, start=1000))  # larger than the queue: only its newest 100 are kept
    assert metric("shardmon_notifications_dropped_total") - before == 30 + 30 + 100
    kept = [a.labels["i"] for a in n.next_batch()]
    assert kept[0] == "1030" and n.queue_length() == 36


def group(*targets: dict[str, str], labels: dict[str, str] | None = None) -> TargetGroup:
    return TargetGroup("0", [dict(t) for t in targets], labels or {})


def test_alertmanager_urls_from_a_group_with_scheme_and_path_prefix():
    am = alerting("""
  alertmanagers:
    - scheme: https
      path_prefix: /prefix/
      static_configs: [{targets: [a:9093]}]
""").alertmanagers[0]
    urls, dropped = alertmanager_urls(group({"__address__": "a:9093"}, {"__address__": "b:9093"}), am)
    assert urls == ["https://a:9093/prefix/api/v2/alerts", "https://b:9093/prefix/api/v2/alerts"] and dropped == []


def test_relabeling_sees_alerts_path_and_group_labels_and_drops_alertmanagers():
    am = alerting("""
  alertmanagers:
    - relabel_configs:
        - {source_labels: [dc], regex: 'b', action: drop}
        - {source_labels: [__meta_port], target_label: __address__, regex: '(.+)', replacement: 'h:$1'}
        - {source_labels: [__alerts_path__], target_label: __alerts_path__, replacement: '/x$1'}
        - {target_label: __scheme__, replacement: https}
""").alertmanagers[0]
    urls, dropped = alertmanager_urls(group({"__address__": "a:1", "__meta_port": "7"}, {"__address__": "b:1", "dc": "b"},
                                            labels={"dc": "a"}), am)
    assert urls == ["https://h:7/x/api/v2/alerts"]
    assert [d["__address__"] for d in dropped] == ["b:1"]


def test_an_address_that_is_a_url_after_relabeling_skips_its_group():
    am = alerting("""
  alertmanagers:
    - relabel_configs: [{target_label: __address__, replacement: 'http://x/'}]
""").alertmanagers[0]
    with pytest.raises(ValueError, match="is not a valid hostname"):
        alertmanager_urls(group({"__address__": "a:1"}), am)
    s = AlertmanagerSet(am)
    assert s.sync([group({"__address__": "a:1"})]) == []


def test_a_set_deduplicates_its_alertmanagers():
    am = alerting("  alertmanagers: [{static_configs: [{targets: [a:1]}]}]").alertmanagers[0]
    s = AlertmanagerSet(am)
    assert s.sync([group({"__address__": "a:1"}), group({"__address__": "a:1"}, {"__address__": "b:1"})]) == \
        ["http://a:1/api/v2/alerts", "http://b:1/api/v2/alerts"]
