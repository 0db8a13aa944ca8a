"""/api/v1/rules and /api/v1/alerts rendering (querier/rules/api_json.py): Go's field order, empty against
omitted, value and time formats, the ``type`` filter, and the PromQL printer (promql_text.py). The whole
documents are compared with Prometheus 2.42's in tests/integration/test_rules_api_vs_prometheus.py."""

from __future__ import annotations

import json

import pytest

from shardmon.model.errors import BadRequestError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.querier.rules import AlertingRule, Group, RecordingRule
from shardmon.querier.rules.api_json import (
    alert_json,
    alerts_document,
    dumps,
    go_json_float,
    group_alerts,
    group_json,
    rfc3339_nano,
    rules_document,
    rules_type,
)
from shardmon.querier.rules.promql_text import go_string

M = 60_000
T0 = 1_700_000_000_000


def two_series(expr, ts):
    return [(Labels.from_dict({"__name__": "x", "i": "2"}), 0.5), (Labels.from_dict({"__name__": "x", "i": "1"}), 3.0)]


def group(rules, **kw) -> Group:
    return Group("g", "rules.yml", 1000, rules, query=two_series, appender=MemoryStorage(), **kw)


def test_an_unevaluated_group_as_prometheus_shows_it():
    g = group([AlertingRule("A", "x>0", for_ms=M), RecordingRule("r", "sum(x)by(i)", Labels.from_dict({}))])
    doc = group_json(g)
    assert list(doc) == ["name", "file", "rules", "interval", "limit", "evaluationTime", "lastEvaluation"]
    assert doc["lastEvaluation"] == "0001-01-01T00:00:00Z" and doc["interval"] == 1 and doc["limit"] == 0
    alerting, recording = doc["rules"]
    assert list(alerting) == ["state", "name", "query", "duration", "keepFiringFor", "labels", "annotations",
                              "alerts", "health", "evaluationTime", "lastEvaluation", "type"]
    assert (alerting["state"], alerting["query"], alerting["duration"], alerting["labels"], alerting["annotations"],
            alerting["alerts"], alerting["health"]) == ("inactive", "x > 0", 60, {}, {}, [], "unknown")
    # A recording rule without labels has none; lastError only when there is one.
    assert list(recording) == ["name", "query", "health", "evaluationTime", "lastEvaluation", "type"]
    assert recording["query"] == "sum by (i) (x)"


def test_an_evaluated_group_with_alerts_and_errors():
    rules = [AlertingRule("A", "x", labels={"severity": "page"}, annotations={"v": "{{ $value }}"},
                          keep_firing_for_ms=5 * M, restored=True),
             RecordingRule("r", "x", Labels.from_dict({"k": "v"})), RecordingRule("limited", "x", Labels.from_dict({}))]
    g = group(rules, limit=1)
    g.eval(T0 + 120)
    doc = group_json(g)
    alerting, recording, _ = doc["rules"]
    # The alerting rule failed on the limit (2 alerts), as did the others: each shows Prometheus's error.
    assert (alerting["health"], alerting["lastError"]) == ("err", "exceeded limit of 1 with 2 alerts")
    assert list(recording)[:5] == ["name", "query", "labels", "health", "lastError"]
    assert recording["lastError"] == "exceeded limit of 1 with 2 series"
    assert doc["lastEvaluation"] == "2023-11-14T22:13:20.12Z" == recording["lastEvaluation"]

    g = group(rules)
    g.eval(T0)
    alerting = group_json(g)["rules"][0]
    assert alerting["state"] == "firing" and "lastError" not in alerting
    assert [a["labels"]["i"] for a in alerting["alerts"]] == ["1", "2"]  # sorted by labels
    first = alerting["alerts"][0]
    assert first == {"labels": {"alertname": "A", "i": "1", "severity": "page"}, "annotations": {"v": "3"},
                     "state": "firing", "activeAt": "2023-11-14T22:13:20Z", "value": "3e+00"}
    assert [a["value"] for a in group_alerts(g)] == ["3e+00", "5e-01"]


def test_keep_firing_since_is_shown_only_while_an_alert_keeps_firing():
    rule = AlertingRule("A", "x", keep_firing_for_ms=5 * M, restored=True)
    rule.eval(T0, two_series)
    assert "keepFiringSince" not in alert_json(rule.alerts()[0])
    rule.eval(T0 + M, lambda expr, ts: [])
    shown = alert_json(rule.alerts()[0])
    assert list(shown) == ["labels", "annotations", "state", "activeAt", "keepFiringSince", "value"]
    assert (shown["state"], shown["keepFiringSince"]) == ("firing", "2023-11-14T22:14:20Z")


@pytest.mark.parametrize(("value", "text"), [(3.0, "3e+00"), (0.5, "5e-01"), (123456.789, "1.23456789e+05"),
                                            (1e-7, "1e-07"), (0.0, "0e+00"), (float("nan"), "NaN"),
                                            (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (-2.5, "-2.5e+00")])
def test_alert_values_as_go_formats_them(value, text):
    rule = AlertingRule("A", "x", restored=True)
    rule.eval(T0, lambda expr, ts: [(Labels.from_dict({}), value)])
    assert alert_json(rule.alerts()[0])["value"] == text


def test_times_and_floats_as_go_writes_them():
    assert rfc3339_nano(T0) == "2023-11-14T22:13:20Z"
    assert rfc3339_nano(T0 + 5) == "2023-11-14T22:13:20.005Z" and rfc3339_nano(T0 + 500) == "2023-11-14T22:13:20.5Z"
    assert rfc3339_nano(None) == "0001-01-01T00:00:00Z"
    assert [go_json_float(v) for v in (1.0, 3600.0, 0.000054864, 1e-7, 1.5e-10, 1e21, 0.0, -2.0)] == [
        "1", "3600", "0.000054864", "1e-7", "1.5e-10", "1e+21", "0", "-2"]
    text = dumps({"q": "a > 1 & b < 2", "n": [1, 0.5, None, True], "é": "\u2028"})
    assert text == '{"q":"a \\u003e 1 \\u0026 b \\u003c 2","n":[1,0.5,null,true],"é":"\\u2028"}'
    assert json.loads(text) == {"q": "a > 1 & b < 2", "n": [1, 0.5, None, True], "é": "\u2028"}


def test_rules_document_sorts_groups_and_filters_by_type():
    def g(file, name, *types):
        return {"name": name, "file": file, "rules": [{"name": t, "type": t} for t in types]}

    groups = [g("b.yml", "a", "alerting"), g("a.yml", "z", "recording", "alerting"), g("a.yml", "b", "recording")]
    assert [(x["file"], x["name"]) for x in rules_document(groups)["groups"]] == [
        ("a.yml", "b"), ("a.yml", "z"), ("b.yml", "a")]
    alerts_only = rules_document(groups, "alert")["groups"]
    # 2.42 keeps a group whose rules are all of the other kind, with no rules.
    assert [[r["type"] for r in x["rules"]] for x in alerts_only] == [[], ["alerting"], ["alerting"]]
    assert [[r["type"] for r in x["rules"]] for x in rules_document(groups, "record")["groups"]] == [
        ["recording"], ["recording"], []]
    assert groups[1]["rules"] == [{"name": "recording", "type": "recording"}, {"name": "alerting", "type": "alerting"}]


def test_rules_type_parameter():
    assert (rules_type(None), rules_type(""), rules_type("ALERT"), rules_type("record")) == (None, None, "alert", "record")
    with pytest.raises(BadRequestError, match='invalid parameter "type": not supported value "foo"'):
        rules_type("Foo")


def test_alerts_document_is_sorted_by_labels():
    alerts = [{"labels": {"alertname": "B"}}, {"labels": {"alertname": "A", "i": "2"}}, {"labels": {"alertname": "A"}}]
    assert [a["labels"] for a in alerts_document(alerts)["alerts"]] == [
        {"alertname": "A"}, {"alertname": "A", "i": "2"}, {"alertname": "B"}]


@pytest.mark.parametrize(("expr", "printed"), [
    ("sum(x) by (job)", "sum by (job) (x)"), ('x{c!~"d",a="b"}', 'x{a="b",c!~"d"}'), ("x[90s] offset -5m", "x[1m30s] offset -5m"),
    ("x > bool ignoring(a) group_right y", "x > bool ignoring (a) group_right () y"), ("x + ignoring() y", "x + y"),
    ("x and on() y", "x and on () y"), ("1.5e3", "1500"), ("x == Inf", "x == +Inf"), ("x[1w2d]", "x[9d]"),
    ("x @ 100.5", "x @ 100.500"), ("not valid (", "not valid ("),
])
def test_queries_are_printed_as_prometheus_prints_them(expr, printed):
    assert go_string(expr) == printed
