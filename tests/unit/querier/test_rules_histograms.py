"""Rules over native histograms, as Prometheus 2.53's rule manager: a recording rule whose result is a
histogram writes histograms (staleness markers as for floats), an alerting rule's alert value of a histogram
sample is 0 and its templates' ``$value`` is the histogram printed as Go prints it."""

from __future__ import annotations

import numpy as np

from shardmon.model.histogram import Histogram
from shardmon.model.histogram_notation import go_string
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from shardmon.querier.promql import Engine
from shardmon.querier.rules import AlertingRule, Group, RecordingRule, engine_query_func
from shardmon.querier.rules import metrics as rule_metrics
from shardmon.querier.rules.api_json import alert_json

M = 60_000
T = 20 * M


def _counter_histogram(step: int, i: int) -> Histogram:
    """A counter histogram growing by ``i`` observations per bucket and step (schema 0, two buckets)."""
    n = float(step * i)
    return Histogram(schema=0, count=3 * n, sum=5.5 * n, zero_threshold=0.001, zero_count=n,
                     positive_spans=((0, 2),), positive_buckets=(n, n), is_int=True)


def _storage() -> MemoryStorage:
    storage = MemoryStorage()
    steps = np.arange(0, T + 1, 15_000)
    for i in (1, 2):
        hists = np.empty(len(steps), dtype=object)
        hists[:] = [_counter_histogram(k, i) for k in range(len(steps))]
        storage.add_series(Labels.from_dict({"__name__": "h", "i": str(i)}), steps, np.full(len(steps), np.nan),
                           hists)
    return storage


def _select(storage: MemoryStorage, name: str, start: int, end: int):
    return storage.select([Matcher(MatchType.EQ, "__name__", name)], start, end).series


def test_a_recording_rule_of_a_histogram_writes_the_histogram_the_expression_gives():
    storage = _storage()
    engine = Engine(storage)
    g = Group("g", "f", M, [RecordingRule("job:h:rate5m", "sum(rate(h[5m]))", Labels()),
                            RecordingRule("job:h:count", "histogram_count(job:h:rate5m)", Labels()),
                            RecordingRule("h:scaled", "h * 2", Labels.from_dict({"kind": "scaled"}))],
              query=engine_query_func(engine), appender=storage)
    g.eval(T)
    assert g.health == "ok", [r.last_error for r in g.rules]
    expected = engine.instant("sum(rate(h[5m]))", T).series[0].histograms[0]
    (rec,) = _select(storage, "job:h:rate5m", T, T)
    assert rec.timestamps_ms.tolist() == [T] and rec.histograms is not None
    assert rec.histograms[0].identical(expected)
    # A later rule of the group reads the histogram just written.
    (count,) = _select(storage, "job:h:count", T, T)
    assert count.histograms is None and count.values.tolist() == [expected.count]
    scaled = _select(storage, "h:scaled", T, T)
    assert [s.labels.get("i") for s in scaled] == ["1", "2"] and all(s.labels.get("kind") == "scaled" for s in scaled)
    for s in scaled:
        want = engine.instant(f'h{{i="{s.labels.get("i")}"}} * 2', T).series[0].histograms[0]
        assert s.histograms[0].identical(want)
    # Each histogram sample counts once in the group's samples, as 2.53's len(vector).
    assert rule_metrics.GROUP_SAMPLES.labels(g.key)._value.get() == 1 + 1 + 2


def test_a_histogram_series_a_rule_no_longer_produces_gets_a_float_staleness_marker():
    h = Histogram(schema=1, count=2, sum=3, positive_spans=((0, 1),), positive_buckets=(2.0,))
    answers = {0: [(Labels.from_dict({"i": "1"}), h), (Labels.from_dict({"i": "2"}), 4.0)], M: []}
    storage = MemoryStorage()
    g = Group("g", "f", M, [RecordingRule("r", "x", Labels())], query=lambda expr, ts: answers[ts], appender=storage)
    g.eval(0)
    g.eval(M)
    one, two = _select(storage, "r", 0, 2 * M)
    assert one.timestamps_ms.tolist() == [0, M] and one.histograms[0].identical(h) and one.histograms[1] is None
    assert is_stale(one.values).tolist() == [False, True]
    assert two.values[0] == 4.0 and is_stale(two.values).tolist() == [False, True]


def test_an_alert_on_a_histogram_has_value_0_and_the_histogram_in_its_templates():
    storage = _storage()
    engine = Engine(storage)
    rule = AlertingRule("HistHigh", "sum by (i) (rate(h[5m]))", labels={"severity": "page"},
                        annotations={"v": "{{ $value }}", "h": "{{ humanize $value }}",
                                     "q": '{{ with query "sum(rate(h[5m]))" }}{{ . | first | value }}{{ end }}'},
                        restored=True)
    g = Group("g", "f", M, [rule], query=engine_query_func(engine), appender=storage)
    g.eval(T)
    alerts = sorted(rule.alerts(), key=lambda a: a.labels.get("i"))
    assert [a.labels.get("i") for a in alerts] == ["1", "2"]
    want = engine.instant('sum by (i) (rate(h{i="1"}[5m]))', T).series[0].histograms[0]
    a = alerts[0]
    assert a.value == 0.0 and alert_json(a)["value"] == "0e+00"
    annotations = dict(a.annotations)
    assert annotations["v"] == go_string(want) and annotations["v"].startswith("{count:")
    assert "can't convert *histogram.FloatHistogram to float" in annotations["h"]
    total = engine.instant("sum(rate(h[5m]))", T).series[0].histograms[0]
    assert annotations["q"] == go_string(total)
    # ALERTS and ALERTS_FOR_STATE stay floats.
    (alerts_series, _) = sorted(_select(storage, "ALERTS", T, T), key=lambda s: s.labels.get("i"))
    assert alerts_series.values.tolist() == [1.0] and alerts_series.histograms is None


def test_go_string_is_go_histogram_string():
    """Examples from Prometheus's model/histogram tests (its String of the same histograms)."""
    assert go_string(Histogram()) == "{count:0, sum:0}"
    neg = Histogram.from_deltas(schema=0, zero_threshold=0.001, zero_count=12, count=9, sum=-3.1415,
                                negative_spans=((0, 5), (1, 1)), negative_deltas=(1, 2, -2, 1, -1, 0))
    assert go_string(neg) == ("{count:9, sum:-3.1415, [-64,-32):1, [-16,-8):1, [-8,-4):2, [-4,-2):1, [-2,-1):3, "
                              "[-1,-0.5):1, [-0.001,0.001]:12}")
    both = Histogram.from_deltas(schema=0, zero_threshold=0, zero_count=0, count=19, sum=2.7,
                                 positive_spans=((0, 4), (0, 0), (0, 3)), positive_deltas=(1, 2, -2, 1, -1, 0, 0),
                                 negative_spans=((0, 5), (1, 0), (0, 1)), negative_deltas=(1, 2, -2, 1, -1, 0))
    assert go_string(both) == ("{count:19, sum:2.7, [-64,-32):1, [-16,-8):1, [-8,-4):2, [-4,-2):1, [-2,-1):3, "
                               "[-1,-0.5):1, (0.5,1]:1, (1,2]:3, (2,4]:1, (4,8]:2, (8,16]:1, (16,32]:1, (32,64]:1}")
