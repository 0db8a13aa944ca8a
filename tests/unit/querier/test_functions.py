"""Unit tests of the PromQL functions, on hand-made data with hand-computed answers.

The range-vector functions are also checked against naive ports of Prometheus 2.x's per-step loops
(``promql/functions.go``) on random data, in range queries: ``test_naive_ports.py``.
"""

from __future__ import annotations

import math

import pytest

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import Labels
from shardmon.querier.promql import Engine
from shardmon.querier.promql.histogram import parse_go_float
from tests.unit.querier.conftest import M, S, as_dict, engine_with, lbl, points, same, single

# -- math and conversions ------------------------------------------------------------------------


@pytest.fixture
def gauges() -> Engine:
    ts = [0, 10 * S, 20 * S]
    return engine_with(
        (lbl(__name__="g", k="a"), ts, [-2.5, 0.5, 2.5]),
        (lbl(__name__="g", k="b"), ts, [4.0, 9.0, 16.0]),
        (lbl(__name__="g", k="c"), ts, [math.nan, -0.0, math.inf]),
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("abs(g)", {"a": 2.5, "b": 16.0, "c": math.inf}),
        ("sqrt(g)", {"a": math.sqrt(2.5), "b": 4.0, "c": math.inf}),
        ("ceil(g)", {"a": 3.0, "b": 16.0, "c": math.inf}),
        ("floor(g)", {"a": 2.0, "b": 16.0, "c": math.inf}),
        ("sgn(g)", {"a": 1.0, "b": 1.0, "c": 1.0}),
        ("round(g)", {"a": 3.0, "b": 16.0, "c": math.inf}),
        ("round(g, 5)", {"a": 5.0, "b": 15.0, "c": math.inf}),
        ("clamp_max(g, 3)", {"a": 2.5, "b": 3.0, "c": 3.0}),
        ("clamp_min(g, 3)", {"a": 3.0, "b": 16.0, "c": math.inf}),
        ("clamp(g, 0, 10)", {"a": 2.5, "b": 10.0, "c": 10.0}),
        ("deg(g)", {"a": 2.5 * 180 / math.pi, "b": 16 * 180 / math.pi, "c": math.inf}),
        ("log2(g)", {"a": math.log2(2.5), "b": 4.0, "c": math.inf}),
    ],
)
def test_math_functions_drop_the_metric_name(gauges: Engine, query: str, expected: dict[str, float]) -> None:
    got = as_dict(gauges.instant(query, 20 * S))
    assert set(got) == {lbl(k=k) for k in expected}
    for k, value in expected.items():
        assert same(got[lbl(k=k)], value), k


def test_round_rounds_ties_up(gauges: Engine) -> None:
    # -2.5 rounds to -2 (up), not to -3 (away from zero) nor to the even -2 by luck: 0.5 goes to 1.
    got = as_dict(gauges.instant("round(g)", 0))
    assert got[lbl(k="a")] == -2.0
    assert as_dict(gauges.instant("round(g)", 10 * S))[lbl(k="a")] == 1.0


def test_sgn_keeps_nan_and_zero(gauges: Engine) -> None:
    assert math.isnan(as_dict(gauges.instant("sgn(g)", 0))[lbl(k="c")])
    zero = as_dict(gauges.instant("sgn(g)", 10 * S))[lbl(k="c")]
    assert zero == 0.0 and math.copysign(1.0, zero) == -1.0


def test_clamp_with_max_below_min_returns_nothing(gauges: Engine) -> None:
    assert as_dict(gauges.instant("clamp(g, 5, -5)", 0)) == {}


def test_clamp_with_nan_bound_gives_nan(gauges: Engine) -> None:
    got = as_dict(gauges.instant("clamp(g, 0, NaN)", 0))
    assert all(math.isnan(v) for v in got.values())


def test_scalar_of_one_series_is_its_value_else_nan(gauges: Engine) -> None:
    assert gauges.instant('scalar(g{k="b"})', 10 * S).scalar == 9.0
    assert math.isnan(gauges.instant("scalar(g)", 10 * S).scalar)
    assert math.isnan(gauges.instant("scalar(nothing)", 10 * S).scalar)


def test_vector_and_time_over_a_range_query(gauges: Engine) -> None:
    res = gauges.range("vector(time())", 0, 20 * S, 10 * S)
    assert points(res) == {lbl(): {0: 0.0, 10 * S: 10.0, 20 * S: 20.0}}
    assert gauges.instant("time()", 1).scalar == 0.001
    assert gauges.instant("pi()", 0).scalar == math.pi


def test_sort_orders_an_instant_result_by_value_with_nan_last() -> None:
    engine = engine_with(
        (lbl(__name__="v", k="a"), [0], [3.0]),
        (lbl(__name__="v", k="b"), [0], [math.nan]),
        (lbl(__name__="v", k="c"), [0], [1.0]),
        (lbl(__name__="v", k="d"), [0], [2.0]),
    )
    asc = [s.labels.get("k") for s in engine.instant("sort(v)", 0).series]
    desc = [s.labels.get("k") for s in engine.instant("sort_desc(v)", 0).series]
    assert asc == ["c", "d", "a", "b"]
    assert desc == ["a", "d", "c", "b"]
    # sort keeps the metric name.
    assert engine.instant("sort(v)", 0).series[0].labels == lbl(__name__="v", k="c")


def test_sort_breaks_ties_as_gos_sort_does() -> None:
    # Go's sort.Sort is an insertion sort up to 12 elements: equal values keep their (label) order,
    # and NaNs, each "less" than the other, come out in reverse order.
    engine = engine_with(
        *((lbl(__name__="v", k=str(i)), [0], [v]) for i, v in enumerate([3.0, math.nan, 1.0, 2.0, 1.0, math.nan]))
    )
    asc = [s.labels.get("k") for s in engine.instant("sort(v)", 0).series]
    desc = [s.labels.get("k") for s in engine.instant("sort_desc(v)", 0).series]
    assert asc == ["2", "4", "3", "0", "5", "1"]
    assert desc == ["0", "3", "2", "4", "5", "1"]


# -- dropping the metric name --------------------------------------------------------------------


def test_same_labels_after_dropping_the_name_at_one_step_is_an_error() -> None:
    engine = engine_with((lbl(__name__="a", k="1"), [0], [1.0]), (lbl(__name__="b", k="1"), [0], [2.0]))
    with pytest.raises(QueryExecutionError, match="same labelset"):
        engine.instant('abs({__name__=~"a|b"})', 0)


def test_same_labels_after_dropping_the_name_at_different_steps_is_one_series() -> None:
    # a has a value up to 5m (lookback), b from 10m on: abs() gives one series over the whole range.
    engine = engine_with((lbl(__name__="a", k="1"), [0], [-1.0]), (lbl(__name__="b", k="1"), [10 * M], [-2.0]))
    res = engine.range('abs({__name__=~"a|b"})', 0, 10 * M, 5 * M)
    assert points(res) == {lbl(k="1"): {0: 1.0, 5 * M: 1.0, 10 * M: 2.0}}


# -- timestamp and dates -------------------------------------------------------------------------


def test_timestamp_of_a_selector_is_the_samples_own_time() -> None:
    engine = engine_with((lbl(__name__="m", k="1"), [0, 10 * S], [1.0, 1.0]))
    assert as_dict(engine.instant("timestamp(m)", 5 * S)) == {lbl(k="1"): 0.0}
    assert as_dict(engine.instant("timestamp((m))", 15 * S)) == {lbl(k="1"): 10.0}
    assert as_dict(engine.instant("timestamp(m offset 10s)", 15 * S)) == {lbl(k="1"): 0.0}
    # Of anything else, it is the evaluation time (as in Prometheus).
    assert as_dict(engine.instant("timestamp(abs(m))", 15 * S)) == {lbl(k="1"): 15.0}
    res = engine.range("timestamp(m)", 0, 20 * S, 5 * S)
    assert points(res) == {lbl(k="1"): {0: 0.0, 5 * S: 0.0, 10 * S: 10.0, 15 * S: 10.0, 20 * S: 10.0}}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        # 2016-02-29 23:59:59 UTC, a Monday.
        ("year", 2016),
        ("month", 2),
        ("day_of_month", 29),
        ("day_of_year", 60),
        ("day_of_week", 1),
        ("days_in_month", 29),
        ("hour", 23),
        ("minute", 59),
    ],
)
def test_date_functions_of_a_value(function: str, expected: int) -> None:
    engine = engine_with((lbl(__name__="t", k="1"), [0], [1456790399.9]))
    assert as_dict(engine.instant(f"{function}(t)", 0)) == {lbl(k="1"): float(expected)}


def test_date_functions_without_argument_use_the_step_time() -> None:
    engine = engine_with()
    res = engine.range("day_of_week()", 0, 2 * 86_400 * S, 86_400 * S)
    # 1970-01-01 was a Thursday (4).
    assert points(res) == {lbl(): {0: 4.0, 86_400 * S: 5.0, 2 * 86_400 * S: 6.0}}
    # Before 1970, the seconds are truncated towards zero as Go's integer division does.
    assert as_dict(engine.instant("year()", -500)) == {lbl(): 1970.0}
    assert as_dict(engine.instant("hour()", -3_600_000 - 1)) == {lbl(): 23.0}


# -- absent --------------------------------------------------------------------------------------


def test_absent_takes_labels_from_single_equality_matchers() -> None:
    engine = engine_with((lbl(__name__="here", k="1"), [0], [1.0]))
    got = as_dict(engine.instant('absent(nope{job="a", instance="b", path=~"x.*", dup="1", dup="2"})', 0))
    assert got == {lbl(job="a", instance="b"): 1.0}
    assert as_dict(engine.instant("absent(here)", 0)) == {}
    assert as_dict(engine.instant('absent((nope{job="a"}))', 0)) == {lbl(): 1.0}


def test_absent_and_absent_over_time_in_a_range_query() -> None:
    engine = engine_with((lbl(__name__="m", job="j"), [10 * M], [1.0]))
    res = engine.range('absent(m{job="j"})', 0, 20 * M, 5 * M)
    # The sample is seen from 10m to 15m (the lookback is 5m).
    assert points(res) == {lbl(job="j"): {0: 1.0, 5 * M: 1.0, 20 * M: 1.0}}
    res = engine.range('absent_over_time(m{job="j"}[1m])', 0, 20 * M, 5 * M)
    assert points(res) == {lbl(job="j"): {0: 1.0, 5 * M: 1.0, 15 * M: 1.0, 20 * M: 1.0}}


# -- label_replace and label_join ----------------------------------------------------------------


@pytest.fixture
def labelled() -> Engine:
    return engine_with(
        (lbl(__name__="m", src="host-01", dst="old"), [0], [1.0]),
        (lbl(__name__="m", src="db-02", dst="old"), [0], [2.0]),
    )


def test_label_replace_expands_groups_as_go_does(labelled: Engine) -> None:
    got = as_dict(
        labelled.instant(r'label_replace(m, "dst", "$2:${1}x:$1x:$$:$name", "src", "(?P<name>\\w+)-(\\d+)")', 0)
    )
    # $1x is the group named "1x", which does not exist; $$ is a dollar.
    assert got == {
        lbl(__name__="m", src="host-01", dst="01:hostx::$:host"): 1.0,
        lbl(__name__="m", src="db-02", dst="02:dbx::$:db"): 2.0,
    }


def test_label_replace_matches_the_whole_value_only(labelled: Engine) -> None:
    got = as_dict(labelled.instant('label_replace(m, "dst", "new", "src", "host")', 0))
    assert set(got) == {lbl(__name__="m", src="host-01", dst="old"), lbl(__name__="m", src="db-02", dst="old")}


def test_label_replace_to_an_empty_value_removes_the_label(labelled: Engine) -> None:
    got = as_dict(labelled.instant('label_replace(m, "dst", "", "src", "host.*")', 0))
    assert lbl(__name__="m", src="host-01") in got


def test_label_replace_errors(labelled: Engine) -> None:
    with pytest.raises(QueryExecutionError, match="invalid regular expression"):
        labelled.instant('label_replace(m, "dst", "", "src", "(")', 0)
    with pytest.raises(QueryExecutionError, match="invalid destination label name"):
        labelled.instant('label_replace(m, "a-b", "", "src", ".*")', 0)
    with pytest.raises(QueryExecutionError, match="same labelset"):
        labelled.instant('label_replace(m, "src", "", "src", ".*")', 0)


def test_label_join(labelled: Engine) -> None:
    got = as_dict(labelled.instant('label_join(m, "dst", "/", "src", "missing", "__name__")', 0))
    assert got == {
        lbl(__name__="m", src="host-01", dst="host-01//m"): 1.0,
        lbl(__name__="m", src="db-02", dst="db-02//m"): 2.0,
    }
    with pytest.raises(QueryExecutionError, match="invalid source label name"):
        labelled.instant('label_join(m, "dst", "", "a-b")', 0)


# -- histogram_quantile --------------------------------------------------------------------------


def histogram(name: str, buckets: dict[str, list[float]], **extra: str) -> list[tuple[Labels, list[int], list[float]]]:
    return [
        (lbl(__name__=name, le=le, **extra), [i * M for i in range(len(vals))], vals) for le, vals in buckets.items()
    ]


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    engine = engine_with(*histogram("h_bucket", {"1": [10.0], "2": [30.0], "+Inf": [40.0]}, job="a"))
    # Rank 20 of 40 is in (1, 2], half-way through its 20 observations.
    assert as_dict(engine.instant("histogram_quantile(0.5, h_bucket)", 0)) == {lbl(job="a"): 1.5}
    # Rank 5 is in the lowest bucket, interpolated from 0.
    assert single(engine.instant("histogram_quantile(0.125, h_bucket)", 0)) == 0.5
    # In the +Inf bucket, the answer is the highest finite bound.
    assert single(engine.instant("histogram_quantile(0.9, h_bucket)", 0)) == 2.0
    assert single(engine.instant("histogram_quantile(-1, h_bucket)", 0)) == -math.inf
    assert single(engine.instant("histogram_quantile(2, h_bucket)", 0)) == math.inf


def test_histogram_quantile_special_cases() -> None:
    engine = engine_with(
        *histogram("no_inf_bucket", {"1": [1.0], "2": [2.0]}),
        *histogram("empty_bucket", {"1": [0.0], "+Inf": [0.0]}),
        *histogram("negative_bucket", {"-1": [5.0], "+Inf": [10.0]}),
        *histogram("mixed_bucket", {"0.5": [1.0], "5e-1": [1.0], "+Inf": [4.0], "nonsense": [100.0]}),
        *histogram("falling_bucket", {"1": [10.0], "2": [5.0], "3": [20.0], "+Inf": [20.0]}),
    )
    assert math.isnan(single(engine.instant("histogram_quantile(0.5, no_inf_bucket)", 0)))
    assert math.isnan(single(engine.instant("histogram_quantile(0.5, empty_bucket)", 0)))
    # The lowest bucket's bound is the answer when it is not positive.
    assert single(engine.instant("histogram_quantile(0.2, negative_bucket)", 0)) == -1.0
    # 0.5 and 5e-1 are one bucket (2 observations); "nonsense" is no bucket.
    assert single(engine.instant("histogram_quantile(0.25, mixed_bucket)", 0)) == 0.25
    # The count of le=2 is raised to 10: rank 15 falls in (2, 3], half-way.
    assert single(engine.instant("histogram_quantile(0.75, falling_bucket)", 0)) == 2.5


def test_histogram_quantile_uses_the_buckets_present_at_each_step() -> None:
    # At the second step, the le=2 bucket has no sample (its one sample is beyond the lookback).
    engine = engine_with(
        (lbl(__name__="h_bucket", le="1"), [0, 10 * M], [10.0, 10.0]),
        (lbl(__name__="h_bucket", le="2"), [0], [30.0]),
        (lbl(__name__="h_bucket", le="+Inf"), [0, 10 * M], [40.0, 40.0]),
    )
    res = engine.range("histogram_quantile(0.5, h_bucket)", 0, 10 * M, 10 * M)
    # Without le=2, rank 20 is in the +Inf bucket: the answer is 1.
    assert points(res) == {lbl(): {0: 1.5, 10 * M: 1.0}}


def test_histograms_of_different_names_clash_after_dropping_it() -> None:
    engine = engine_with(
        *histogram("a_bucket", {"1": [1.0], "+Inf": [2.0]}), *histogram("b_bucket", {"1": [1.0], "+Inf": [2.0]})
    )
    with pytest.raises(QueryExecutionError, match="same labelset"):
        engine.instant('histogram_quantile(0.5, {__name__=~"a_bucket|b_bucket"})', 0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("+Inf", math.inf),
        ("-inf", -math.inf),
        ("Infinity", math.inf),
        (".5", 0.5),
        ("2e-1", 0.2),
        ("0x1p-2", 0.25),
        ("1_0", None),
        (" 1", None),
        ("1e400", None),
        ("+NaN", None),
        ("", None),
    ],
)
def test_le_values_parse_as_go_floats(text: str, value: float | None) -> None:
    assert parse_go_float(text) == value
    assert math.isnan(parse_go_float("NaN"))


# -- functions of range vectors --------------------------------------------------------------------


def test_range_functions_drop_the_name_except_last_over_time() -> None:
    engine = engine_with((lbl(__name__="m", k="1"), [0, 10 * S, 20 * S], [1.0, 2.0, 4.0]))
    assert as_dict(engine.instant("sum_over_time(m[1m])", 20 * S)) == {lbl(k="1"): 7.0}
    assert as_dict(engine.instant("last_over_time(m[1m])", 20 * S)) == {lbl(__name__="m", k="1"): 4.0}
    assert as_dict(engine.instant("count_over_time(m[1m])", 20 * S)) == {lbl(k="1"): 3.0}


def test_sums_and_averages_over_time_handle_huge_values_and_infinities() -> None:
    big = 9.988465674311579e307
    engine = engine_with(
        (lbl(__name__="m", k="big"), [0, S], [big, big]),
        (lbl(__name__="m", k="opposite"), [0, S], [-big, big]),
        (lbl(__name__="m", k="cancel"), [0, S, 2 * S], [1e16, 1.0, -1e16]),
        (lbl(__name__="m", k="inf"), [0, S, 2 * S], [math.inf, 0.0, math.inf]),
        (lbl(__name__="m", k="infs"), [0, S], [math.inf, -math.inf]),
    )
    avg = as_dict(engine.instant("avg_over_time(m[1m])", 2 * S))
    total = as_dict(engine.instant("sum_over_time(m[1m])", 2 * S))
    assert avg[lbl(k="big")] == big and total[lbl(k="big")] == math.inf
    assert avg[lbl(k="opposite")] == 0.0
    # A compensated sum, as Prometheus's Kahan sum, keeps the 1.
    assert total[lbl(k="cancel")] == 1.0
    assert avg[lbl(k="inf")] == math.inf and total[lbl(k="inf")] == math.inf
    assert math.isnan(avg[lbl(k="infs")]) and math.isnan(total[lbl(k="infs")])


def test_a_window_sum_stays_accurate_after_huge_sums_before_it() -> None:
    ts = list(range(0, 100 * S, S))
    vals = [1e15] * 50 + [0.1] * 50
    engine = engine_with((lbl(__name__="m"), ts, vals))
    assert single(engine.instant("sum_over_time(m[9s])", 99 * S)) == pytest.approx(1.0, rel=1e-15)


def test_holt_winters_checks_its_factors() -> None:
    engine = engine_with((lbl(__name__="m"), [0, S], [1.0, 2.0]))
    with pytest.raises(QueryExecutionError, match=r"invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"):
        engine.instant("holt_winters(m[1m], 1, 0.5)", S)
    with pytest.raises(QueryExecutionError, match="invalid trend factor"):
        engine.instant("holt_winters(m[1m], 0.5, 0)", S)


def test_predict_linear_predicts_from_the_evaluation_time() -> None:
    engine = engine_with((lbl(__name__="m"), [0, 60 * S, 120 * S], [0.0, 60.0, 120.0]))
    # Slope 1/s: at 120s the line is at 120, an hour later at 3720.
    assert single(engine.instant("predict_linear(m[5m], 3600)", 120 * S)) == pytest.approx(3720.0)
    assert single(engine.instant("deriv(m[5m])", 120 * S)) == pytest.approx(1.0)
    # A constant infinite series has no slope.
    inf = engine_with((lbl(__name__="m"), [0, S], [math.inf, math.inf]))
    assert math.isnan(single(inf.instant("deriv(m[1m])", S)))


def test_quantile_over_time_sorts_nan_first() -> None:
    engine = engine_with((lbl(__name__="m"), [0, S, 2 * S], [math.nan, 1.0, 2.0]))
    assert math.isnan(single(engine.instant("quantile_over_time(0, m[1m])", 2 * S)))
    assert single(engine.instant("quantile_over_time(0.5, m[1m])", 2 * S)) == 1.0
    assert single(engine.instant("quantile_over_time(0.75, m[1m])", 2 * S)) == 1.5
