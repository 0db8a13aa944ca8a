"""The engine over native histograms (an in-test Querier with histogram samples), against hand-computed answers
and Prometheus 2.53's rules: what each function, aggregation and operator does with histograms."""

from __future__ import annotations

import math

import pytest

from shardmon.model.histogram import GAUGE_TYPE, Histogram
from shardmon.model.labels import Labels
from shardmon.querier.promql import Engine
from tests.unit.querier.hist_storage import HistStorage

M = 60_000


def H(zc: float, b1: float, b2: float, hint: int = 0) -> Histogram:
    return Histogram(0, 0.001, zc, zc + b1 + b2, 2.0 * zc, ((0, 2),), (b1, b2), counter_reset_hint=hint)


@pytest.fixture(scope="module")
def engine() -> Engine:
    st = HistStorage()
    st.add(Labels.from_dict({"__name__": "h", "job": "a"}), [(i * M, H(i, i, 2 * i)) for i in range(11)])
    st.add(Labels.from_dict({"__name__": "h", "job": "b"}), [(i * M, H(1, 1, 1)) for i in range(11)])
    st.add(Labels.from_dict({"__name__": "g", "job": "a"}), [(i * M, H(i, i, i, GAUGE_TYPE)) for i in range(11)])
    st.add(Labels.from_dict({"__name__": "f", "job": "a"}), [(i * M, float(i)) for i in range(11)])
    st.add(Labels.from_dict({"__name__": "m", "job": "a"}), [(i * M, float(i) if i % 2 else H(1, 1, 1)) for i in range(11)])
    return Engine(st, aggregation_pushdown=False)


def one(engine: Engine, q: str, t: int = 10 * M):
    r = engine.instant(q, t)
    return {tuple(sorted(dict(s.labels).items())): (s.histograms[0] if s.histograms is not None else float(s.values[0]))
            for s in r.series}, r.warnings


def test_selector_returns_histograms(engine: Engine) -> None:
    got, _ = one(engine, "h")
    assert got[(("__name__", "h"), ("job", "a"))].count == 40


def test_rate_increase_of_counter_histograms(engine: Engine) -> None:
    got, warnings = one(engine, 'increase(h{job="a"}[5m])')
    h = got[(("job", "a"),)]
    # h(10) - h(5), samples at both window ends: no extrapolation.
    assert (h.count, h.zero_count, h.positive_buckets, h.counter_reset_hint) == (20, 5, (5, 10), GAUGE_TYPE)
    got, _ = one(engine, 'rate(h{job="a"}[5m])')
    assert math.isclose(got[(("job", "a"),)].count, 20 / 300)
    assert not warnings


def test_rate_of_a_gauge_warns_and_delta_of_a_counter_warns(engine: Engine) -> None:
    _, warnings = one(engine, "delta(h[5m])")
    assert 'PromQL warning: this native histogram metric is not a gauge: "h"' in warnings
    got, warnings = one(engine, "delta(g[5m])")
    assert not warnings and got[(("job", "a"),)].count == 15
    _, warnings = one(engine, "rate(g[5m])")
    assert 'PromQL warning: this native histogram metric is not a counter: "g"' in warnings


def test_counter_reset_is_added_back(engine: Engine) -> None:
    st = HistStorage()
    st.add(Labels.from_dict({"__name__": "r"}), [(0, H(0, 0, 0)), (M, H(2, 2, 2)), (2 * M, H(1, 1, 1))])
    got, _ = one(Engine(st, aggregation_pushdown=False), "increase(r[2m])", 2 * M)
    h = got[()]
    # 1 - 0 + 2 (reset), window covered sample to sample: factor 1.
    assert (h.zero_count, h.count) == (3, 9)
    got, _ = one(Engine(st, aggregation_pushdown=False), "resets(r[2m])", 2 * M)
    assert got[()] == 1


def test_mixed_window_gives_nothing_and_warns(engine: Engine) -> None:
    got, warnings = one(engine, "rate(m[5m])")
    assert got == {} and 'PromQL warning: encountered a mix of histograms and floats for metric name "m"' in warnings
    got, _ = one(engine, "count_over_time(m[5m])")
    assert got[(("job", "a"),)] == 6
    got, _ = one(engine, "max_over_time(m[5m])")  # histograms ignored
    assert got[(("job", "a"),)] == 9


def test_over_time_functions(engine: Engine) -> None:
    got, _ = one(engine, 'sum_over_time(h{job="a"}[2m])')
    assert got[(("job", "a"),)].count == 4 * (8 + 9 + 10)
    got, _ = one(engine, 'avg_over_time(h{job="a"}[2m])')
    assert got[(("job", "a"),)].count == 36
    got, _ = one(engine, 'last_over_time(h{job="a"}[2m])')
    assert got[(("__name__", "h"), ("job", "a"))].count == 40
    got, _ = one(engine, 'max_over_time(h{job="a"}[2m])')
    assert got == {}


def test_histogram_statistics(engine: Engine) -> None:
    assert one(engine, 'histogram_count(h{job="b"})')[0] == {(("job", "b"),): 3.0}
    assert one(engine, 'histogram_sum(h{job="b"})')[0] == {(("job", "b"),): 2.0}
    assert one(engine, 'histogram_avg(h{job="b"})')[0] == {(("job", "b"),): 2 / 3}
    # zero bucket 1 (only positive buckets: from 0), (0.5,1]: 1, (1,2]: 1; rank 1.5 -> middle of (0.5, 1].
    assert one(engine, 'histogram_quantile(0.5, h{job="b"})')[0] == {(("job", "b"),): 0.75}
    assert one(engine, 'histogram_fraction(0, 1, h{job="b"})')[0] == {(("job", "b"),): 2 / 3}
    assert one(engine, "histogram_count(f)")[0] == {}


def test_aggregations(engine: Engine) -> None:
    got, _ = one(engine, "sum(h)")
    assert got[()].count == 43 and got[()].positive_buckets == (11, 21)
    got, _ = one(engine, "avg(h)")
    assert got[()].count == 21.5
    assert one(engine, "count(h)")[0] == {(): 2.0}
    got, warnings = one(engine, 'sum({job="a"})')
    assert got == {} and "PromQL warning: encountered a mix of histograms and floats for aggregation" in warnings
    assert one(engine, "max(h)")[0] == {(): 0.0}  # 2.53 reads a histogram's float as 0


def test_operators(engine: Engine) -> None:
    got, _ = one(engine, 'h{job="b"} * 2')
    assert got[(("job", "b"),)].count == 6
    got, _ = one(engine, '2 * h{job="b"}')
    assert got[(("job", "b"),)].sum == 4
    got, _ = one(engine, 'h{job="b"} / 2')
    assert got[(("job", "b"),)].count == 1.5
    got, _ = one(engine, 'h{job="a"} - h{job="a"}')
    assert got[(("job", "a"),)].count == 0 and got[(("job", "a"),)].positive_spans == ()
    got, _ = one(engine, "h + h")
    assert got[(("job", "b"),)].count == 6
    assert one(engine, "h > 1")[0] == {}
    assert one(engine, "abs(h)")[0] == {}
    got, _ = one(engine, "h and f")
    assert got[(("__name__", "h"), ("job", "a"))].count == 40


def test_range_query_and_subquery(engine: Engine) -> None:
    r = engine.range('rate(h{job="a"}[5m])', 5 * M, 10 * M, M)
    assert len(r.series) == 1 and r.series[0].histograms is not None and len(r.series[0].histograms) == 6
    got, _ = one(engine, 'histogram_count(last_over_time(rate(h{job="a"}[5m])[3m:1m]))')
    assert math.isclose(got[(("job", "a"),)], 20 / 300)
