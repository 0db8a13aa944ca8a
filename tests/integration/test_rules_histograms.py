"""Recording rules over native histograms on three real shards: the input written through the shards' Write,
the rules' queries through the fan-out (the group's selectors prefetched in one round), their output written
back to the shards; what is recorded equals the expression's result, histogram for histogram."""

from __future__ import annotations

import numpy as np

from shardmon.localshards import LocalShards
from shardmon.model.histogram import Histogram, HistogramColumns
from shardmon.model.labels import Labels, Matcher, MatchType, series_id_of
from shardmon.model.samples import SampleBatch, is_stale
from shardmon.querier.promql import Engine
from shardmon.querier.promqltest import sharded_storage
from shardmon.querier.rules import AlertingRule, Group, RecordingRule, engine_query_func

M = 60_000
T0 = 1_700_000_000_000
T = T0 + 20 * M


def _input_batch(instances: int) -> SampleBatch:
    """``latency`` counter histograms of ``instances`` series every 15 s from T0 to T."""
    steps = np.arange(T0, T + 1, 15_000)
    keys = [Labels.from_dict({"__name__": "latency", "instance": f"i{i}"}).canonical() for i in range(instances)]
    series, times, hists = [], [], []
    for i in range(instances):
        for k, t in enumerate(steps.tolist()):
            n = float(k * (i + 1))
            series.append(i)
            times.append(t)
            hists.append(Histogram(schema=3, count=4 * n, sum=0.75 * n, zero_threshold=2.0 ** -128, zero_count=n,
                                   positive_spans=((-4, 2), (3, 1)), positive_buckets=(n, n, n), is_int=True))
    empty = SampleBatch.of([series_id_of(k) for k in keys], keys, [], [], [])
    return empty._replace(histograms=HistogramColumns.of(series, times, hists))


def _select(querier, name: str, start: int, end: int):
    return querier.select([Matcher(MatchType.EQ, "__name__", name)], start, end).series


def test_recorded_histograms_equal_the_expression_over_three_shards():
    with LocalShards(3) as shards:
        clients = shards.clients()
        try:
            appender, querier = sharded_storage(clients)()
            appender.append(_input_batch(6))
            engine = Engine(querier)
            rules = [RecordingRule("job:latency:rate5m", "sum(rate(latency[5m]))", Labels()),
                     RecordingRule("instance:latency:rate5m", "rate(latency[5m])", Labels.from_dict({"kind": "r"})),
                     RecordingRule("job:latency:p90", "histogram_quantile(0.9, job:latency:rate5m)", Labels()),
                     AlertingRule("LatencyRecorded", "job:latency:rate5m", annotations={"v": "{{ $value }}"},
                                  restored=True)]
            g = Group("g", "rules.yml", M, rules, query=engine_query_func(engine), appender=appender,
                      querier=querier)
            g.eval(T)
            assert g.health == "ok", [r.last_error for r in g.rules]

            want = engine.instant("sum(rate(latency[5m]))", T).series[0].histograms[0]
            (rec,) = _select(querier, "job:latency:rate5m", T0, T)
            assert rec.timestamps_ms.tolist() == [T] and rec.histograms[0].identical(want)
            per_instance = _select(querier, "instance:latency:rate5m", T0, T)
            assert len(per_instance) == 6
            for s in per_instance:
                inst = s.labels.get("instance")
                expect = engine.instant(f'rate(latency{{instance="{inst}"}}[5m])', T).series[0].histograms[0]
                assert s.labels.get("kind") == "r" and s.histograms[0].identical(expect)
            # A later rule read the recorded histogram from the shards.
            (p90,) = _select(querier, "job:latency:p90", T0, T)
            assert p90.histograms is None
            assert p90.values[0] == engine.instant("histogram_quantile(0.9, sum(rate(latency[5m])))", T).series[0].values[0]
            (alert,) = rules[3].alerts()
            assert alert.value == 0.0 and dict(alert.annotations)["v"].startswith(f"{{count:{want.count:g}, ")

            # The input stops: the next evaluation finds nothing and marks the recorded series stale.
            g.eval(T + 10 * M)
            (rec,) = _select(querier, "job:latency:rate5m", T0, T + 10 * M)
            assert rec.timestamps_ms.tolist() == [T, T + 10 * M] and is_stale(rec.values).tolist() == [False, True]
            assert rec.histograms[0].identical(want) and rec.histograms[1] is None
        finally:
            for c in clients:
                c.close()
