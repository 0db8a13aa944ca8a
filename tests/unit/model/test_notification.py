"""What the rule manager sends (Prometheus 2.42's sendAlerts / SendAlerts) and its Alertmanager v2 JSON."""

from __future__ import annotations

import json

from shardmon.model.notification import (
    Alert,
    generator_url,
    needs_sending,
    notification,
    openapi_json,
    rfc3339_millis,
    valid_until,
)

MIN = 60_000
T = 1_700_000_000_000


def test_ends_at_of_an_active_alert_is_four_times_the_larger_of_resend_delay_and_interval():
    assert valid_until(T, resend_delay_ms=MIN, interval_ms=15_000) == T + 4 * MIN
    assert valid_until(T, resend_delay_ms=MIN, interval_ms=5 * MIN) == T + 20 * MIN


def test_a_resolved_alert_ends_when_it_resolved():
    a = notification({"alertname": "A"}, {}, fired_at_ms=T, resolved_at_ms=T + 30_000, now_ms=T + 60_000,
                     resend_delay_ms=MIN, interval_ms=15_000, external_url="http://p:9090", expr="up == 0")
    assert (a.starts_at_ms, a.ends_at_ms) == (T, T + 30_000)
    active = notification({"alertname": "A"}, {}, fired_at_ms=T, resolved_at_ms=0, now_ms=T + 60_000,
                          resend_delay_ms=MIN, interval_ms=15_000, external_url="http://p:9090", expr="up == 0")
    assert active.ends_at_ms == T + 60_000 + 4 * MIN and not active.resolved_at(T + 60_000)


def test_needs_sending_as_the_rule_manager():
    kw = dict(resend_delay_ms=MIN)
    assert not needs_sending(pending=True, last_sent_ms=None, resolved_ms=None, now_ms=T, **kw)
    assert needs_sending(pending=False, last_sent_ms=None, resolved_ms=None, now_ms=T, **kw)  # never sent
    assert not needs_sending(pending=False, last_sent_ms=T, resolved_ms=None, now_ms=T + MIN, **kw)  # not strictly after
    assert needs_sending(pending=False, last_sent_ms=T, resolved_ms=None, now_ms=T + MIN + 1, **kw)
    assert needs_sending(pending=False, last_sent_ms=T, resolved_ms=T + 1, now_ms=T + 2, **kw)  # resolved since
    assert not needs_sending(pending=False, last_sent_ms=T + 2, resolved_ms=T + 1, now_ms=T + 3, **kw)


def test_generator_url_escapes_as_go_s_query_escape():
    # Go: url.QueryEscape(`sum(rate(x{a="b c"}[5m])) > 0.5`)
    assert generator_url("http://p:9090", 'sum(rate(x{a="b c"}[5m])) > 0.5') == (
        "http://p:9090/graph?g0.expr=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29%29+%3E+0.5&g0.tab=1")
    assert generator_url("", "a_b-c.d~e/f") == "/graph?g0.expr=a_b-c.d~e%2Ff&g0.tab=1"


def test_times_are_rfc3339_with_milliseconds_in_utc():
    assert rfc3339_millis(T + 7) == "2023-11-14T22:13:20.007Z"
    assert rfc3339_millis(0) == "0001-01-01T00:00:00.000Z"


def test_openapi_json_sorts_labels_and_leaves_out_what_go_omits():
    body = json.loads(openapi_json([
        Alert({"z": "1", "alertname": "A"}, {"summary": "s", "a": "ü"}, T, T + 1, "http://g"),
        Alert({"alertname": "B"}),
    ]))
    assert body[0] == {"annotations": {"a": "ü", "summary": "s"}, "endsAt": "2023-11-14T22:13:20.001Z",
                       "startsAt": "2023-11-14T22:13:20.000Z", "generatorURL": "http://g",
                       "labels": {"alertname": "A", "z": "1"}}
    assert list(body[0]["labels"]) == ["alertname", "z"]
    assert body[1] == {"endsAt": "0001-01-01T00:00:00.000Z", "startsAt": "0001-01-01T00:00:00.000Z",
                       "labels": {"alertname": "B"}}
