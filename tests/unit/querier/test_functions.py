"""Unit tests of the PromQL functions, on hand-made data with hand-computed answers.

The range-vector functions are also checked against naive ports of Prometheus 2.x's per-step loops
(``promql/functions.go``) on random data, in range queries.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import QueryExecutionError
from model.labels import Labels
from model.memory import MemoryStorage
from querier.promql.engine import Engine, QueryResult
from querier.promql.histogram import parse_go_float

S = 1000  # One second in ms.
M = 60 * S


def lbl(**kv: str) -> Labels:
    return Labels.from_dict(kv)


def engine_with(*series: tuple[Labels, list[int], list[float]]) -> Engine:
    storage = MemoryStorage()
    for labels, ts, vals in series:
        storage.add_series(labels, np.array(ts, dtype=np.int64), np.array(vals, dtype=np.float64))
    return Engine(storage)


def as_dict(result: QueryResult) -> dict[Labels, float]:
    assert result.result_type == "vector"
    return {s.labels: float(s.values[0]) for s in result.series}


def single(result: QueryResult) -> float:
    [value] = as_dict(result).values()
    return value


def points(result: QueryResult) -> dict[Labels, dict[int, float]]:
    """A range query's result as {labels: {timestamp: value}}."""
    return {s.labels: dict(zip(s.timestamps_ms.tolist(), s.values.tolist())) for s in result.series}


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


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


# -- against naive ports of Prometheus ---------------------------------------------------------------


def kahan_inc(inc: float, total: float, comp: float) -> tuple[float, float]:
    t = total + inc
    if abs(total) >= abs(inc):
        comp += (total - t) + inc
    else:
        comp += (inc - t) + total
    return t, comp


def ref_linear_regression(ts: list[int], vs: list[float], intercept_ms: int) -> tuple[float, float]:
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    const = True
    for i, (t, v) in enumerate(zip(ts, vs)):
        if const and i > 0 and v != vs[0]:
            const = False
        n += 1
        x = (t - intercept_ms) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const:
        return (math.nan, math.nan) if math.isinf(vs[0]) else (0.0, vs[0])
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var if var != 0 else (math.copysign(math.inf, cov) if cov != 0 and not math.isnan(cov) else math.nan)
    return slope, sy / n - slope * sx / n


def ref_holt_winters(vs: list[float], sf: float, tf: float) -> float | None:
    if len(vs) < 2:
        return None
    s0, s1, b = 0.0, vs[0], vs[1] - vs[0]
    for i in range(1, len(vs)):
        x = sf * vs[i]
        if i - 1 != 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return s1


def ref_quantile(q: float, vs: list[float]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = [v for v in vs if math.isnan(v)] + sorted(v for v in vs if not math.isnan(v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def ref_over_time(fn: str, ts: list[int], vs: list[float], t: int) -> float | None:
    """One step of a range-vector function, as Prometheus's per-step code computes it."""
    if not vs:
        return None
    if fn == "sum_over_time":
        s = c = 0.0
        for v in vs:
            s, c = kahan_inc(v, s, c)
        return s if math.isinf(s) else s + c
    if fn == "avg_over_time":
        mean = c = count = 0.0
        for v in vs:
            count += 1
            if math.isinf(mean):
                if math.isinf(v) and (mean > 0) == (v > 0):
                    continue
                if not math.isinf(v) and not math.isnan(v):
                    continue
            mean, c = kahan_inc(v / count - mean / count, mean, c)
        return mean if math.isinf(mean) else mean + c
    if fn in ("min_over_time", "max_over_time"):
        acc = vs[0]
        for v in vs:
            if (v < acc if fn == "min_over_time" else v > acc) or math.isnan(acc):
                acc = v
        return acc
    if fn in ("stddev_over_time", "stdvar_over_time"):
        count = mean = cm = aux = ca = 0.0
        for v in vs:
            count += 1
            delta = v - (mean + cm)
            mean, cm = kahan_inc(delta / count, mean, cm)
            aux, ca = kahan_inc(delta * (v - (mean + cm)), aux, ca)
        var = (aux + ca) / count
        if fn == "stdvar_over_time":
            return var
        return math.nan if var < 0 else math.sqrt(var)
    if fn == "count_over_time":
        return float(len(vs))
    if fn == "last_over_time":
        return vs[-1]
    if fn == "present_over_time":
        return 1.0
    if fn == "changes":
        return float(sum(1 for a, b in zip(vs, vs[1:]) if b != a and not (math.isnan(a) and math.isnan(b))))
    if fn == "resets":
        return float(sum(1 for a, b in zip(vs, vs[1:]) if b < a))
    if fn == "quantile_over_time(0.3, ":
        return ref_quantile(0.3, vs)
    if len(vs) < 2:
        return None
    if fn in ("irate", "idelta"):
        last, prev = vs[-1], vs[-2]
        if fn == "idelta":
            return last - prev
        return (last if last < prev else last - prev) / ((ts[-1] - ts[-2]) / 1000)
    if fn == "deriv":
        return ref_linear_regression(ts, vs, ts[0])[0]
    if fn == "predict_linear(":
        slope, intercept = ref_linear_regression(ts, vs, t)
        return slope * 600 + intercept
    if fn == "holt_winters(":
        return ref_holt_winters(vs, 0.3, 0.6)
    raise AssertionError(fn)


_QUERIES = {
    "sum_over_time": "sum_over_time(x[{r}s])",
    "avg_over_time": "avg_over_time(x[{r}s])",
    "min_over_time": "min_over_time(x[{r}s])",
    "max_over_time": "max_over_time(x[{r}s])",
    "stddev_over_time": "stddev_over_time(x[{r}s])",
    "stdvar_over_time": "stdvar_over_time(x[{r}s])",
    "count_over_time": "count_over_time(x[{r}s])",
    "last_over_time": "last_over_time(x[{r}s])",
    "present_over_time": "present_over_time(x[{r}s])",
    "changes": "changes(x[{r}s])",
    "resets": "resets(x[{r}s])",
    "quantile_over_time(0.3, ": "quantile_over_time(0.3, x[{r}s])",
    "irate": "irate(x[{r}s])",
    "idelta": "idelta(x[{r}s])",
    "deriv": "deriv(x[{r}s])",
    "predict_linear(": "predict_linear(x[{r}s], 600)",
    "holt_winters(": "holt_winters(x[{r}s], 0.3, 0.6)",
}

_values = st.one_of(
    st.integers(-20, 50).map(float),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e300, -1e300]),
)
_series = st.lists(st.tuples(st.integers(1, 40_000), _values), min_size=0, max_size=30)


@settings(max_examples=120, deadline=None)
@given(
    data=st.lists(_series, min_size=1, max_size=3),
    range_s=st.integers(1, 200),
    start=st.integers(-20_000, 300_000),
    step=st.integers(1_000, 60_000),
    n_steps=st.integers(1, 12),
)
def test_range_functions_match_a_naive_port_of_prometheus(
    data, range_s: int, start: int, step: int, n_steps: int
) -> None:
    storage = MemoryStorage()
    raw = []
    for k, samples in enumerate(data):
        ts = np.cumsum([gap for gap, _ in samples]).astype(np.int64)
        vals = np.array([v for _, v in samples], dtype=np.float64)
        if ts.size:
            labels = lbl(__name__="x", k=str(k))
            storage.add_series(labels, ts, vals)
            raw.append((labels, ts.tolist(), vals.tolist()))
    engine = Engine(storage)
    end = start + step * (n_steps - 1)
    for fn, query in _QUERIES.items():
        got = points(engine.range(query.format(r=range_s), start, end, step))
        for labels, ts, vals in raw:
            out = labels if fn == "last_over_time" else labels.without(["__name__"])
            for t in range(start, end + 1, step):
                window = [(a, v) for a, v in zip(ts, vals) if t - range_s * S <= a <= t]
                want = ref_over_time(fn, [a for a, _ in window], [v for _, v in window], t)
                have = got.get(out, {}).get(t)
                if fn in ("sum_over_time", "avg_over_time") and have is not None and want is not None:
                    # Sums are as accurate as Prometheus's compensated ones, but not bit for bit
                    # where values cancel out: allow for rounding at the scale of the values.
                    scale = max(abs(v) for _, v in window)
                    if math.isfinite(have) and math.isfinite(want) and math.isfinite(scale):
                        assert abs(have - want) <= 1e-12 * scale * len(window), (fn, labels, t, window)
                        continue
                assert same(have, want), (fn, labels, t, window)
