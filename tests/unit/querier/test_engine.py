"""Unit tests of the PromQL engine on hand-made data with hand-computed answers (the engine against a
naive port of Prometheus's Go code on random data is in ``test_naive_ports.py``)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from shardmon.model.errors import BadQueryError, QueryExecutionError, QueryTimeoutError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import STALE_NAN
from shardmon.model.storage import SeriesSet
from shardmon.querier.promql import Engine, QueryResult, UnsupportedQueryError
from tests.unit.querier.conftest import M, S, as_dict, lbl, storage_with


@pytest.fixture
def jobs() -> Engine:
    """Four series of ``http_requests`` and one of ``other``, constant values, a sample every 10s."""
    ts = list(range(0, 10 * M + 1, 10 * S))
    storage = storage_with(
        (lbl(__name__="http_requests", job="api", instance="0"), ts, [1.0] * len(ts)),
        (lbl(__name__="http_requests", job="api", instance="1"), ts, [2.0] * len(ts)),
        (lbl(__name__="http_requests", job="web", instance="0"), ts, [4.0] * len(ts)),
        (lbl(__name__="http_requests", job="web", instance="1", extra="x"), ts, [8.0] * len(ts)),
        (lbl(__name__="other", job="api"), ts, [16.0] * len(ts)),
    )
    return Engine(storage)


# -- selectors ---------------------------------------------------------------------------------


def test_equality_matcher_selects_by_label_and_keeps_the_metric_name(jobs: Engine) -> None:
    got = as_dict(jobs.instant('http_requests{job="api"}', 5 * M))
    assert got == {
        lbl(__name__="http_requests", job="api", instance="0"): 1.0,
        lbl(__name__="http_requests", job="api", instance="1"): 2.0,
    }


def test_negative_equality_matcher(jobs: Engine) -> None:
    got = as_dict(jobs.instant('http_requests{job!="api"}', 5 * M))
    assert sorted(got.values()) == [4.0, 8.0]


def test_regex_matcher_is_anchored(jobs: Engine) -> None:
    assert as_dict(jobs.instant('http_requests{job=~"ap"}', 5 * M)) == {}
    assert sorted(as_dict(jobs.instant('http_requests{job=~"ap.|w.b"}', 5 * M)).values()) == [1, 2, 4, 8]


def test_negative_regex_matcher(jobs: Engine) -> None:
    got = as_dict(jobs.instant('http_requests{instance!~"0|2"}', 5 * M))
    assert sorted(got.values()) == [2.0, 8.0]


def test_missing_label_matches_the_empty_string(jobs: Engine) -> None:
    assert sorted(as_dict(jobs.instant('http_requests{extra=""}', 5 * M)).values()) == [1, 2, 4]
    assert sorted(as_dict(jobs.instant('http_requests{extra!=""}', 5 * M)).values()) == [8]


def test_metric_name_as_a_regex_matcher(jobs: Engine) -> None:
    got = as_dict(jobs.instant('{__name__=~"other|http_.*", job="api"}', 5 * M))
    assert sorted(got.values()) == [1.0, 2.0, 16.0]


def test_re2_flag_groups_work_as_in_prometheus(jobs: Engine) -> None:
    assert sorted(as_dict(jobs.instant('http_requests{job=~"(?i)API"}', 5 * M)).values()) == [1, 2]
    assert sorted(as_dict(jobs.instant('http_requests{job=~"a((?i)P)i"}', 5 * M)).values()) == [1, 2]


def test_vector_selector_result_is_sorted_by_labels(jobs: Engine) -> None:
    labels = [s.labels for s in jobs.instant('{job=~".+"}', 5 * M).series]
    assert labels == sorted(labels)
    assert len(labels) == 5


def test_positive_and_negative_offset() -> None:
    ts = [0, 60 * S, 120 * S]
    engine = Engine(storage_with((lbl(__name__="x"), ts, [1.0, 2.0, 3.0])))
    assert as_dict(engine.instant("x offset 1m", 120 * S)) == {lbl(__name__="x"): 2.0}
    assert as_dict(engine.instant("x offset -1m", 60 * S)) == {lbl(__name__="x"): 3.0}
    # The instant-vector result keeps the evaluation time, not the sample's time.
    assert engine.instant("x offset 1m", 120 * S).series[0].timestamps_ms.tolist() == [120 * S]


def test_lookback_window_is_closed_at_both_ends() -> None:
    engine = Engine(storage_with((lbl(__name__="x"), [10 * S], [7.0])))
    assert as_dict(engine.instant("x", 10 * S)) == {lbl(__name__="x"): 7.0}
    assert as_dict(engine.instant("x", 10 * S + 5 * M)) == {lbl(__name__="x"): 7.0}
    assert as_dict(engine.instant("x", 10 * S + 5 * M + 1)) == {}
    assert as_dict(engine.instant("x", 10 * S - 1)) == {}


def test_lookback_delta_is_configurable() -> None:
    engine = Engine(storage_with((lbl(__name__="x"), [0], [7.0])), lookback_delta_ms=30 * S)
    assert as_dict(engine.instant("x", 30 * S)) == {lbl(__name__="x"): 7.0}
    assert as_dict(engine.instant("x", 30 * S + 1)) == {}


def test_staleness_marker_ends_a_series_until_the_next_sample() -> None:
    engine = Engine(storage_with((lbl(__name__="x"), [0, 10 * S, 20 * S], [1.0, STALE_NAN, 2.0])))
    assert as_dict(engine.instant("x", 5 * S)) == {lbl(__name__="x"): 1.0}
    assert as_dict(engine.instant("x", 10 * S)) == {}
    assert as_dict(engine.instant("x", 15 * S)) == {}
    assert as_dict(engine.instant("x", 20 * S)) == {lbl(__name__="x"): 2.0}


def test_plain_nan_sample_is_a_value_not_staleness() -> None:
    engine = Engine(storage_with((lbl(__name__="x"), [0], [math.nan])))
    got = as_dict(engine.instant("x", 0))
    assert list(got) == [lbl(__name__="x")] and math.isnan(got[lbl(__name__="x")])


class RecordingQuerier:
    """A Querier that records each select's time bounds and answers with given warnings."""

    def __init__(self, storage: MemoryStorage, warnings: list[str] | None = None, delay_s: float = 0.0) -> None:
        self.storage = storage
        self.warnings = warnings or []
        self.delay_s = delay_s
        self.calls: list[tuple[int, int]] = []

    def select(self, matchers, start_ms, end_ms, **kwargs):
        self.calls.append((start_ms, end_ms))
        time.sleep(self.delay_s)
        result = self.storage.select(matchers, start_ms, end_ms, **kwargs)
        return SeriesSet(result.series, list(self.warnings))

    def label_names(self, matchers, start_ms, end_ms, **kwargs):
        return self.storage.label_names(matchers, start_ms, end_ms, **kwargs)

    def label_values(self, name, matchers, start_ms, end_ms, **kwargs):
        return self.storage.label_values(name, matchers, start_ms, end_ms, **kwargs)


def test_each_selector_fetches_once_for_the_whole_range() -> None:
    querier = RecordingQuerier(storage_with((lbl(__name__="x"), [0], [1.0])))
    engine = Engine(querier, lookback_delta_ms=5 * M)
    engine.range("x offset 1m", 10 * M, 20 * M, 15 * S)
    assert querier.calls == [(10 * M - 5 * M - 1 * M, 20 * M - 1 * M)]
    querier.calls.clear()
    engine.range("sum(rate(x[2m] offset -1m))", 10 * M, 20 * M, 15 * S)
    assert querier.calls == [(10 * M - 2 * M + 1 * M, 20 * M + 1 * M)]


def test_querier_warnings_are_passed_through_once() -> None:
    querier = RecordingQuerier(storage_with((lbl(__name__="x"), [0], [1.0])), warnings=["shard 2 down"])
    result = Engine(querier).instant("sum by (a) (x)", 0)
    assert result.warnings == ["shard 2 down"]
    assert Engine(querier).range("max(x)", 0, 60 * S, 10 * S).warnings == ["shard 2 down"]


def test_slow_query_times_out() -> None:
    querier = RecordingQuerier(storage_with((lbl(__name__="x"), [0], [1.0])), delay_s=0.05)
    with pytest.raises(QueryTimeoutError):
        Engine(querier, timeout_ms=10).instant("x", 0)


# -- rate and increase -------------------------------------------------------------------------


def counter(ts_s: list[int], vals: list[float]) -> Engine:
    return Engine(storage_with((lbl(__name__="c", job="j"), [t * S for t in ts_s], vals)))


def job_value(result: QueryResult) -> float:
    """The value of the one series of ``counter``'s rate or increase."""
    got = as_dict(result)
    assert list(got) == [lbl(job="j")], got  # rate and increase drop __name__.
    return got[lbl(job="j")]


def test_increase_without_extrapolation_when_samples_cover_the_window() -> None:
    engine = counter([0, 10, 20, 30, 40, 50, 60], [0, 10, 20, 30, 40, 50, 60])
    assert job_value(engine.instant("increase(c[1m])", 60 * S)) == pytest.approx(60.0)
    assert job_value(engine.instant("rate(c[1m])", 60 * S)) == pytest.approx(1.0)


def test_increase_extrapolates_to_both_window_ends() -> None:
    # Window [0s, 60s]; samples 5s..55s rise by 50 in 50s. Both gaps (5s) are under 1.1 x the
    # average interval (10s), so the increase is extrapolated to 60s: 50 * 60/50 = 60.
    engine = counter([5, 15, 25, 35, 45, 55], [10, 20, 30, 40, 50, 60])
    assert job_value(engine.instant("increase(c[1m])", 60 * S)) == pytest.approx(60.0)
    assert job_value(engine.instant("rate(c[1m])", 60 * S)) == pytest.approx(1.0)


def test_increase_does_not_extrapolate_below_the_counters_zero_point() -> None:
    # As above but starting at 1: the counter would reach zero 1s before the first sample, so the
    # window is taken to start there: 50 * (50 + 1 + 5)/50 = 56.
    engine = counter([5, 15, 25, 35, 45, 55], [1, 11, 21, 31, 41, 51])
    assert job_value(engine.instant("increase(c[1m])", 60 * S)) == pytest.approx(56.0)


def test_increase_extrapolates_half_an_interval_when_samples_stop_far_from_the_end() -> None:
    # Window [0s, 60s], samples at 30s, 40s, 50s: 30s to the start is over 1.1 x 10s, so only half
    # an interval (5s) is added there; 10s to the end is under it and added fully: 20 * 35/20.
    engine = counter([30, 40, 50], [100, 110, 120])
    assert job_value(engine.instant("increase(c[1m])", 60 * S)) == pytest.approx(35.0)


def test_increase_handles_a_counter_reset() -> None:
    # 0, 10, 20, then a reset to 5, then 15: the reset adds the 20 lost, so 15 - 0 + 20 = 35.
    engine = counter([0, 10, 20, 30, 40], [0, 10, 20, 5, 15])
    assert job_value(engine.instant("increase(c[40s])", 40 * S)) == pytest.approx(35.0)
    assert job_value(engine.instant("rate(c[40s])", 40 * S)) == pytest.approx(35.0 / 40)
    # A window after the reset sees no reset: 15 - 5 over [30s, 40s], no extrapolation needed.
    assert job_value(engine.instant("increase(c[10s])", 40 * S)) == pytest.approx(10.0)


def test_rate_needs_two_samples_in_the_window() -> None:
    engine = counter([0, 30], [0, 10])
    assert as_dict(engine.instant("rate(c[20s])", 30 * S)) == {}
    assert job_value(engine.instant("rate(c[30s])", 30 * S)) == pytest.approx(10 / 30)


def test_range_window_is_closed_at_both_ends_and_drops_staleness_markers() -> None:
    engine = counter([0, 10, 20, 30], [0, 10, STALE_NAN, 30])
    # [10s, 30s] holds 10@10s, a marker (dropped) and 30@30s: two samples, 20 in 20s.
    assert job_value(engine.instant("increase(c[20s])", 30 * S)) == pytest.approx(20.0)
    # [10s, 20s] holds one sample once the marker is dropped.
    assert as_dict(engine.instant("increase(c[10s])", 20 * S)) == {}


def test_rate_with_offset() -> None:
    engine = counter([0, 10, 20, 30, 40, 50, 60], [0, 10, 20, 30, 40, 50, 100])
    assert job_value(engine.instant("increase(c[20s] offset 20s)", 60 * S)) == pytest.approx(20.0)


def test_rate_over_a_range_query_gives_one_value_per_step() -> None:
    engine = counter([0, 10, 20, 30, 40, 50, 60], [0, 10, 20, 30, 40, 50, 60])
    result = engine.range("rate(c[20s])", 0, 60 * S, 20 * S)
    assert result.result_type == "matrix"
    [series] = result.series
    # At 0s the window holds one sample: no value. Afterwards 1/s everywhere.
    assert series.timestamps_ms.tolist() == [20 * S, 40 * S, 60 * S]
    assert series.values.tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_rate_refuses_two_series_that_differ_only_in_name() -> None:
    engine = Engine(
        storage_with(
            (lbl(__name__="a", job="j"), [0, 10 * S], [0.0, 1.0]),
            (lbl(__name__="b", job="j"), [0, 10 * S], [0.0, 1.0]),
        )
    )
    with pytest.raises(QueryExecutionError, match="vector cannot contain metrics with the same labelset"):
        engine.instant('rate({job="j"}[1m])', 10 * S)


# -- aggregations ------------------------------------------------------------------------------


def test_sum_without_grouping_drops_all_labels(jobs: Engine) -> None:
    assert as_dict(jobs.instant("sum(http_requests)", 5 * M)) == {Labels(): 15.0}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum by (job) (http_requests)", {"api": 3.0, "web": 12.0}),
        ("avg by (job) (http_requests)", {"api": 1.5, "web": 6.0}),
        ("min by (job) (http_requests)", {"api": 1.0, "web": 4.0}),
        ("max by (job) (http_requests)", {"api": 2.0, "web": 8.0}),
        ("count by (job) (http_requests)", {"api": 2.0, "web": 2.0}),
    ],
)
def test_aggregation_by(jobs: Engine, query: str, expected: dict[str, float]) -> None:
    assert as_dict(jobs.instant(query, 5 * M)) == {lbl(job=k): v for k, v in expected.items()}


def test_by_ignores_labels_no_series_has(jobs: Engine) -> None:
    assert as_dict(jobs.instant("sum by (job, nonexistent) (http_requests)", 5 * M)) == {
        lbl(job="api"): 3.0,
        lbl(job="web"): 12.0,
    }


def test_without_drops_the_listed_labels_and_the_metric_name(jobs: Engine) -> None:
    assert as_dict(jobs.instant("sum without (instance) (http_requests)", 5 * M)) == {
        lbl(job="api"): 3.0,
        lbl(job="web"): 4.0,
        lbl(job="web", extra="x"): 8.0,
    }
    assert as_dict(jobs.instant("max without () (other)", 5 * M)) == {lbl(job="api"): 16.0}


def test_aggregation_result_is_sorted_by_labels(jobs: Engine) -> None:
    labels = [s.labels for s in jobs.instant("count by (instance, job) (http_requests)", 5 * M).series]
    assert labels == sorted(labels) and len(labels) == 4


def test_nested_aggregations(jobs: Engine) -> None:
    assert as_dict(jobs.instant("max(sum by (job) (http_requests))", 5 * M)) == {Labels(): 12.0}


@pytest.fixture
def special() -> Engine:
    """Series with NaN and infinities, grouped by ``g``."""
    rows = {
        ("nan", "a"): math.nan,
        ("nan", "b"): 1.0,
        ("nan", "c"): 3.0,
        ("allnan", "a"): math.nan,
        ("allnan", "b"): math.nan,
        ("inf", "a"): math.inf,
        ("inf", "b"): -math.inf,
        ("big", "a"): 1.7e308,
        ("big", "b"): 1.7e308,
        ("posinf", "a"): math.inf,
        ("posinf", "b"): 5.0,
    }
    return Engine(storage_with(*((lbl(__name__="v", g=g, p=p), [0], [x]) for (g, p), x in rows.items())))


def test_min_and_max_ignore_nan_unless_all_values_are_nan(special: Engine) -> None:
    assert as_dict(special.instant('min(v{g="nan"})', 0)) == {Labels(): 1.0}
    assert as_dict(special.instant('max(v{g="nan"})', 0)) == {Labels(): 3.0}
    assert math.isnan(as_dict(special.instant('max(v{g="allnan"})', 0))[Labels()])
    assert math.isnan(as_dict(special.instant('min(v{g="allnan"})', 0))[Labels()])


def test_sum_propagates_nan(special: Engine) -> None:
    assert math.isnan(as_dict(special.instant('sum(v{g="nan"})', 0))[Labels()])
    assert math.isnan(as_dict(special.instant('sum(v{g="inf"})', 0))[Labels()])


def test_avg_of_huge_values_does_not_overflow(special: Engine) -> None:
    assert as_dict(special.instant('avg(v{g="big"})', 0)) == {Labels(): 1.7e308}
    assert as_dict(special.instant('sum(v{g="big"})', 0)) == {Labels(): math.inf}


def test_avg_with_infinities(special: Engine) -> None:
    assert math.isnan(as_dict(special.instant('avg(v{g="inf"})', 0))[Labels()])
    assert as_dict(special.instant('avg(v{g="posinf"})', 0)) == {Labels(): math.inf}


def test_count_counts_nan_values(special: Engine) -> None:
    assert as_dict(special.instant('count(v{g="allnan"})', 0)) == {Labels(): 2.0}


def test_aggregation_of_nothing_is_empty(jobs: Engine) -> None:
    assert jobs.instant("sum(nonexistent)", 5 * M).series == []


# -- literals and result shapes ----------------------------------------------------------------


def test_number_literals_are_scalars(jobs: Engine) -> None:
    result = jobs.instant("-(2.5)", 7 * S)
    assert (result.result_type, result.scalar, result.time_ms, result.series) == ("scalar", -2.5, 7 * S, [])
    assert jobs.instant("((3))", 0).scalar == 3.0
    assert math.isinf(jobs.instant("-Inf", 0).scalar)


def test_range_query_of_a_scalar_is_one_series_without_labels(jobs: Engine) -> None:
    result = jobs.range("42", 0, 30 * S, 10 * S)
    assert result.result_type == "matrix"
    [series] = result.series
    assert series.labels == Labels()
    assert series.timestamps_ms.tolist() == [0, 10 * S, 20 * S, 30 * S]
    assert series.values.tolist() == [42.0] * 4


def test_range_query_keeps_only_the_steps_where_a_series_has_a_value() -> None:
    storage = storage_with(
        (lbl(__name__="x", i="early"), [0], [1.0]),
        (lbl(__name__="x", i="late"), [10 * M], [2.0]),
    )
    result = Engine(storage).range("x", 0, 12 * M, 2 * M)
    assert [s.labels for s in result.series] == [lbl(__name__="x", i="early"), lbl(__name__="x", i="late")]
    early, late = result.series
    assert early.timestamps_ms.tolist() == [0, 2 * M, 4 * M]
    assert late.timestamps_ms.tolist() == [10 * M, 12 * M]
    assert late.values.tolist() == [2.0, 2.0]


def test_range_query_agrees_with_instant_queries_at_each_step(jobs: Engine) -> None:
    query = "sum by (job) (rate(http_requests[1m]))"
    result = jobs.range(query, 2 * M, 4 * M, 30 * S)
    for series in result.series:
        for t, v in zip(series.timestamps_ms.tolist(), series.values.tolist()):
            assert as_dict(jobs.instant(query, t))[series.labels] == v


# -- errors ------------------------------------------------------------------------------------


def test_parse_error_is_a_bad_query_with_the_parsers_message(jobs: Engine) -> None:
    with pytest.raises(BadQueryError, match="unknown function with name 'nosuch'"):
        jobs.instant("nosuch(x)", 0)
    with pytest.raises(BadQueryError):
        jobs.instant("sum(", 0)


def test_invalid_regex_is_a_bad_query(jobs: Engine) -> None:
    with pytest.raises(BadQueryError):
        jobs.instant('x{a=~"("}', 0)


@pytest.mark.parametrize(
    "query",
    [
        'http_requests{job="api" or job="web"}',
    ],
)
def test_unsupported_features_are_bad_queries_that_say_so(jobs: Engine, query: str) -> None:
    with pytest.raises(UnsupportedQueryError, match="not supported yet") as info:
        jobs.instant(query, 5 * M)
    assert isinstance(info.value, BadQueryError)


def test_a_range_selector_as_instant_query_returns_the_raw_samples() -> None:
    ts = [0, 60 * S, 120 * S, 180 * S]
    engine = Engine(storage_with((lbl(__name__="x", a="1"), ts, [1.0, STALE_NAN, 3.0, 4.0])))
    res = engine.instant("x[2m]", 180 * S)
    assert res.result_type == "matrix"
    (s,) = res.series
    # Both ends of the window are included (Prometheus 2.x); staleness markers are not samples.
    assert s.labels == lbl(__name__="x", a="1")
    assert s.timestamps_ms.tolist() == [120 * S, 180 * S] and s.values.tolist() == [3.0, 4.0]
    assert engine.instant("x[2m]", 130 * S).series[0].timestamps_ms.tolist() == [120 * S]


def test_range_query_parameters_are_checked_as_prometheus_does(jobs: Engine) -> None:
    with pytest.raises(BadQueryError, match="end timestamp must not be before start time"):
        jobs.range("x", 10, 9, 1)
    with pytest.raises(BadQueryError, match="zero or negative query resolution step"):
        jobs.range("x", 0, 10, 0)
    with pytest.raises(BadQueryError, match="exceeded maximum resolution of 11,000 points per timeseries"):
        jobs.range("x", 0, 11_001 * S, S)
    # 11,000 intervals (11,001 points) is still allowed, as in Prometheus.
    assert jobs.range("1", 0, 11_000 * S, S).series[0].values.shape == (11_001,)
    with pytest.raises(BadQueryError, match='invalid expression type "range vector" for range query'):
        jobs.range("http_requests[5m]", 0, 10 * S, S)


def test_query_limits_are_clear_errors() -> None:
    st = MemoryStorage()
    for i in range(5):
        st.add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), np.arange(10) * 1000, np.ones(10))
    # A query is charged the samples it loads (here the 50 in the lookback window) and a point per
    # series and step of each selector's [series, steps] matrix (5 x 1 for an instant query).
    assert Engine(st, max_samples=55).instant("sum(x)", 9000).series[0].values[0] == 5
    with pytest.raises(QueryExecutionError, match="too many samples.*querier.max_samples"):
        Engine(st, max_samples=54).instant("sum(x)", 9000)
    assert Engine(st, max_samples=100).range("sum(x)", 0, 9000, 1000).series  # 50 + 5 x 10
    with pytest.raises(QueryExecutionError, match="too many samples"):
        Engine(st, max_samples=99).range("sum(x)", 0, 9000, 1000)
    with pytest.raises(QueryExecutionError, match="too many series.*querier.max_series"):
        Engine(st, max_series=4).instant("x", 9000)
    # The budget is for the whole query, subqueries included: 6 inner steps, 50 samples, 5 x 6 points,
    # and the subquery's one series over the outer grid of one step.
    assert Engine(st, max_samples=87).instant("max_over_time(sum(x)[5s:1s])", 9000).series
    with pytest.raises(QueryExecutionError, match="too many samples"):
        Engine(st, max_samples=86).instant("max_over_time(sum(x)[5s:1s])", 9000)
    # A range function's series are rows over the grid too: 50 samples and 5 x 10 points.
    assert Engine(st, max_samples=100).range("sum(max_over_time(x[5s]))", 0, 9000, 1000).series
    with pytest.raises(QueryExecutionError, match="too many samples"):
        Engine(st, max_samples=99).range("sum(max_over_time(x[5s]))", 0, 9000, 1000)
