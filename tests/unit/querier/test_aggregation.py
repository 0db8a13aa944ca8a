"""Unit tests of the aggregation operators, subqueries and the ``@`` modifier, on hand-made data
with hand-computed answers (Prometheus 2.42's semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.model.errors import BadQueryError, QueryExecutionError
from shardmon.model.labels import Labels
from shardmon.model.promql.aggregation import aggregate, format_value
from shardmon.model.promql.gosort import heap_pop, heap_push, sort_sort
from shardmon.model.promql.ranking import _replay_heap, go_float, select_k
from shardmon.model.promql.value import EvalContext, InstantVector
from shardmon.model.storage import QueryBudget
from shardmon.querier.promql import Engine, QueryResult, UnsupportedQueryError
from tests.unit.querier.conftest import M, S, as_dict, engine_with, lbl, matrix, same


def constant(labels: Labels, value: float) -> tuple[Labels, list[int], list[float]]:
    """A series holding ``value`` every 10s from 0 to 10m."""
    ts = list(range(0, 10 * M + 1, 10 * S))
    return labels, ts, [value] * len(ts)


def as_list(result: QueryResult) -> list[tuple[Labels, float]]:
    """An instant vector in the order the engine presents it."""
    assert result.result_type == "vector", result.result_type
    return [(s.labels, float(s.values[0])) for s in result.series]


@pytest.fixture
def jobs() -> Engine:
    """``req`` for two jobs and two instances (values 1, 2, 4, 8), and ``other`` (16)."""
    return engine_with(
        constant(lbl(__name__="req", job="api", instance="0"), 1.0),
        constant(lbl(__name__="req", job="api", instance="1"), 2.0),
        constant(lbl(__name__="req", job="web", instance="0"), 4.0),
        constant(lbl(__name__="req", job="web", instance="1"), 8.0),
        constant(lbl(__name__="other", job="api"), 16.0),
    )


# -- the reducing aggregations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum by (job) (req)", {lbl(job="api"): 3.0, lbl(job="web"): 12.0}),
        ("min by (job) (req)", {lbl(job="api"): 1.0, lbl(job="web"): 4.0}),
        ("max by (job) (req)", {lbl(job="api"): 2.0, lbl(job="web"): 8.0}),
        ("avg by (job) (req)", {lbl(job="api"): 1.5, lbl(job="web"): 6.0}),
        ("count by (job) (req)", {lbl(job="api"): 2.0, lbl(job="web"): 2.0}),
        ("group by (job) (req)", {lbl(job="api"): 1.0, lbl(job="web"): 1.0}),
        # Population variance of 1 and 2: mean 1.5, squares 0.25 + 0.25, over 2.
        ("stdvar by (job) (req)", {lbl(job="api"): 0.25, lbl(job="web"): 4.0}),
        ("stddev by (job) (req)", {lbl(job="api"): 0.5, lbl(job="web"): 2.0}),
        # 1, 2, 4, 8: mean 3.75; squared deviations 7.5625 + 3.0625 + 0.0625 + 18.0625 = 28.75.
        ("stdvar(req)", {lbl(): 28.75 / 4}),
        ("stddev(req)", {lbl(): math.sqrt(28.75 / 4)}),
        # without drops __name__ too; by keeps it only when asked.
        ("sum without (instance) ({job=\"api\"})", {lbl(job="api"): 19.0}),
        ("sum by (__name__) ({job=\"api\"})", {lbl(__name__="req"): 3.0, lbl(__name__="other"): 16.0}),
        ("group without (instance, job) ({job=\"api\"})", {lbl(): 1.0}),
    ],
)
def test_reducing_aggregations(jobs: Engine, query: str, expected: dict[Labels, float]) -> None:
    assert as_dict(jobs.instant(query, 5 * M)) == pytest.approx(expected)
    # A range query gives the same at every step.
    got = matrix(jobs.range(query, 0, 2 * M, M))
    assert {(k, t): v for k, pts in got.items() for t, v in pts} == pytest.approx(
        {(k, t): v for k, v in expected.items() for t in (0, M, 2 * M)}
    )


def test_stddev_is_welford_in_input_order() -> None:
    # Welford's running mean and sum of squares, as Prometheus folds them, from the first series on.
    values = [1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16]
    engine = engine_with(*(constant(lbl(__name__="x", i=str(i)), v) for i, v in enumerate(values)))
    count, mean, m2 = 1, values[0], 0.0
    for v in values[1:]:
        count += 1
        delta = v - mean
        mean += delta / count
        m2 += delta * (v - mean)
    assert as_dict(engine.instant("stdvar(x)", M)) == {lbl(): m2 / count}
    assert as_dict(engine.instant("stddev(x)", M)) == {lbl(): math.sqrt(m2 / count)}


def test_a_group_has_a_value_at_the_steps_where_one_of_its_series_has_one() -> None:
    engine = engine_with(
        (lbl(__name__="x", a="1"), [0, 60 * S], [1.0, 2.0]),
        (lbl(__name__="x", a="2"), [6 * M], [5.0]),
    )
    got = matrix(engine.range("stddev(x)", 0, 12 * M, 3 * M))
    # x{a="1"} (2 from 1m) is seen up to its lookback's end, 6m included; x{a="2"} (5) starts at 6m.
    assert got == {lbl(): [(0, 0.0), (3 * M, 0.0), (6 * M, 1.5), (9 * M, 0.0)]}


# -- count_values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6.0, "6"),
        (0.1, "0.1"),
        (1.5e-7, "0.00000015"),
        (1e21, "1000000000000000000000"),
        (123456789.125, "123456789.125"),
        (-0.0, "-0"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_count_values_formats_values_as_go_strconv_f(value: float, text: str) -> None:
    assert format_value(value) == text


def test_count_values_counts_series_per_value() -> None:
    engine = engine_with(
        constant(lbl(__name__="version", job="api", i="0"), 6.0),
        constant(lbl(__name__="version", job="api", i="1"), 6.0),
        constant(lbl(__name__="version", job="web", i="0"), 7.5),
        constant(lbl(__name__="version", job="web", i="1"), math.nan),
        constant(lbl(__name__="version", job="web", i="2"), math.nan),
    )
    assert as_dict(engine.instant('count_values("v", version)', M)) == {
        lbl(v="6"): 2.0, lbl(v="7.5"): 1.0, lbl(v="NaN"): 2.0,
    }
    assert as_dict(engine.instant('count_values by (job) (("v"), version)', M)) == {
        lbl(job="api", v="6"): 2.0, lbl(job="web", v="7.5"): 1.0, lbl(job="web", v="NaN"): 2.0,
    }
    # The value overwrites a label of the same name, before the grouping.
    assert as_dict(engine.instant('count_values without (i) ("job", version)', M)) == {
        lbl(job="6"): 2.0, lbl(job="7.5"): 1.0, lbl(job="NaN"): 2.0,
    }
    assert as_dict(engine.instant('count_values by (job) ("job", version)', M)) == {
        lbl(job="6"): 2.0, lbl(job="7.5"): 1.0, lbl(job="NaN"): 2.0,
    }
    # Listed in without, the value label goes again: the values of a group are counted together.
    assert as_dict(engine.instant('count_values without (v, i) ("v", version)', M)) == {
        lbl(job="api"): 2.0, lbl(job="web"): 3.0,
    }


def test_count_values_over_a_range_follows_the_values() -> None:
    engine = engine_with((lbl(__name__="x", a="1"), [0, M, 2 * M], [1.0, 2.0, 1.0]),
                         (lbl(__name__="x", a="2"), [0, M, 2 * M], [1.0, 1.0, 1.0]))
    assert matrix(engine.range('count_values("v", x)', 0, 2 * M, M)) == {
        lbl(v="1"): [(0, 2.0), (M, 1.0), (2 * M, 2.0)],
        lbl(v="2"): [(M, 1.0)],
    }


def test_count_values_rejects_an_invalid_label_name(jobs: Engine) -> None:
    with pytest.raises(QueryExecutionError, match='invalid label name "1x"'):
        jobs.instant('count_values("1x", req)', M)


# -- topk and bottomk -------------------------------------------------------------------------


def test_topk_and_bottomk_keep_the_series_labels_in_prometheus_order(jobs: Engine) -> None:
    assert as_list(jobs.instant("topk(3, req)", M)) == [
        (lbl(__name__="req", job="web", instance="1"), 8.0),
        (lbl(__name__="req", job="web", instance="0"), 4.0),
        (lbl(__name__="req", job="api", instance="1"), 2.0),
    ]
    assert as_list(jobs.instant("bottomk(2, req)", M)) == [
        (lbl(__name__="req", job="api", instance="0"), 1.0),
        (lbl(__name__="req", job="api", instance="1"), 2.0),
    ]
    # Groups in the order their first series comes (api before web), each sorted.
    assert as_list(jobs.instant("topk by (job) (1, {job=~'.+'})", M)) == [
        (lbl(__name__="other", job="api"), 16.0),
        (lbl(__name__="req", job="web", instance="1"), 8.0),
    ]
    assert as_list(jobs.instant("bottomk without (instance) (5, req)", M)) == [
        (lbl(__name__="req", job="api", instance="0"), 1.0),
        (lbl(__name__="req", job="api", instance="1"), 2.0),
        (lbl(__name__="req", job="web", instance="0"), 4.0),
        (lbl(__name__="req", job="web", instance="1"), 8.0),
    ]


def test_topk_below_one_selects_nothing_and_truncates_k(jobs: Engine) -> None:
    assert as_list(jobs.instant("topk(0.9, req)", M)) == []
    assert as_list(jobs.instant("bottomk(-3, req)", M)) == []
    assert [v for _, v in as_list(jobs.instant("topk(2.99, req)", M))] == [8.0, 4.0]


@pytest.mark.parametrize(("k", "shown"), [("NaN", "NaN"), ("1e20", "1e+20"), ("Inf", "+Inf")])
def test_topk_with_a_k_beyond_int64_is_an_error(jobs: Engine, k: str, shown: str) -> None:
    with pytest.raises(QueryExecutionError, match=f"Scalar value {re_escape(shown)} overflows int64"):
        jobs.instant(f"topk({k}, req)", M)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_go_float_prints_as_go_percent_v() -> None:
    assert [go_float(v) for v in (1e20, 123456.0, 1234567.0, 0.0001, 0.00001, -2.5, math.nan)] == [
        "1e+20", "123456", "1.234567e+06", "0.0001", "1e-05", "-2.5", "NaN",
    ]


def test_topk_k_is_taken_per_step() -> None:
    vector = InstantVector(
        [lbl(a=str(i)) for i in range(3)],
        np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]),
        np.ones((3, 3), dtype=bool),
    )
    out = aggregate(context(3), "topk", vector, [], False, np.array([1.0, 0.0, 2.0]))
    assert out.present.tolist() == [[False, False, False], [False, False, True], [True, False, True]]
    assert out.order is None  # Only a one-step grid has a presentation order.


def context(n_steps: int) -> EvalContext:
    return EvalContext(None, np.arange(n_steps, dtype=np.int64) * M, 300_000, QueryBudget(timeout_s=60))  # type: ignore[arg-type]


def tied_engine(*values: float) -> Engine:
    """``x`` series named a, b, c, ... (so in that order) with the given values."""
    return engine_with(*(constant(lbl(__name__="x", i="abcdefghij"[n]), v) for n, v in enumerate(values)))


def names(result: QueryResult) -> list[str]:
    return [s.labels.get("i") for s in result.series]


def test_ties_are_settled_by_prometheus_heap_not_by_input_order() -> None:
    # Prometheus's heap for topk(2) of a=3, b=5, c=5, d=7: c pushes out a (the root), d then pops
    # the root, which by the heap's swaps is b. So c survives, not the first 5.
    assert names(tied_engine(3, 5, 5, 7).instant("topk(2, x)", M)) == ["d", "c"]
    assert names(tied_engine(7, 5, 5, 3).instant("bottomk(2, x)", M)) == ["d", "c"]
    # Equal values that all fit keep the heap's order: a, b (no swap in the final insertion sort).
    assert names(tied_engine(5, 5, 5).instant("topk(2, x)", M)) == ["a", "b"]
    # The same choice at every step of a range query.
    got = matrix(tied_engine(3, 5, 5, 7).range("topk(2, x)", 0, 2 * M, M))
    assert sorted(k.get("i") for k in got) == ["c", "d"]


def test_nan_ranks_below_every_number_for_topk_and_bottomk() -> None:
    engine = tied_engine(1, math.nan, math.nan, 2)
    assert names(engine.instant("topk(2, x)", M)) == ["d", "a"]
    assert names(engine.instant("bottomk(2, x)", M)) == ["a", "d"]
    result = engine.instant("topk(3, x)", M)
    # A NaN root gives way to any newcomer: c, pushed last, rose to the root and d replaced it.
    assert names(result) == ["d", "a", "b"] and math.isnan(result.series[2].values[0])
    # Here c replaced b, the root when it came.
    assert names(tied_engine(1, math.nan, math.nan).instant("topk(2, x)", M)) == ["a", "c"]


_tie_values = st.sampled_from([1.0, 2.0, 3.0, math.nan, math.inf, -math.inf, 0.0, -0.0])


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(st.lists(st.one_of(st.none(), _tie_values), min_size=3, max_size=3), min_size=1, max_size=30),
    groups=st.integers(1, 3),
    k=st.lists(st.integers(-1, 8), min_size=3, max_size=3),
    bottom=st.booleans(),
    one_step=st.booleans(),
)
def test_topk_sorting_with_replayed_ties_matches_a_full_replay_of_prometheus(cells, groups, k, bottom, one_step):
    n_steps = 1 if one_step else 3
    values = np.array([[math.nan if v is None else v for v in row[:n_steps]] for row in cells])
    present = np.array([[v is not None for v in row[:n_steps]] for row in cells])
    group = np.arange(len(cells)) % groups
    kk = np.array(k[:n_steps], dtype=np.int64)
    keep, order = select_k(context(n_steps), group, groups, values, present, kk, bottom=bottom)
    expected_order = []
    for step in range(n_steps):
        firsts = []
        for g in range(groups):
            rows = [r for r in range(len(cells)) if group[r] == g and present[r, step]]
            if rows:
                firsts.append((rows[0], g))
            chosen = _replay_heap([values[r, step] for r in rows], rows, int(kk[step]), bottom, True) if rows else []
            assert sorted(np.flatnonzero(keep[:, step] & (group == g)).tolist()) == sorted(chosen), (step, g)
            if one_step:
                expected_order.append((rows[0] if rows else -1, chosen))
        if one_step:
            flat = [r for _, chosen in sorted(expected_order) for r in chosen]
            assert order.tolist() == flat


# -- quantile ---------------------------------------------------------------------------------


def test_quantile_interpolates_between_ranks() -> None:
    engine = engine_with(*(constant(lbl(__name__="x", i=str(n)), v) for n, v in enumerate([4.0, 0.0, 1.0])))
    cases = {"0.8": 2.8, "0.5": 1.0, "0": 0.0, "1": 4.0, "-0.1": -math.inf, "1.1": math.inf, "NaN": math.nan}
    for phi, want in cases.items():
        (got,) = as_dict(engine.instant(f"quantile({phi}, x)", M)).values()
        assert same(got, want, rel_tol=1e-12), phi  # 0.8 interpolates to 2.8000000000000003.


def test_quantile_sorts_nan_first_and_weights_infinities_as_prometheus() -> None:
    engine = engine_with(*(constant(lbl(__name__="x", i=str(n)), v) for n, v in enumerate([2.0, math.nan, 1.0])))
    for phi, want in {"0": math.nan, "0.75": 1.5, "1": 2.0}.items():
        (got,) = as_dict(engine.instant(f"quantile({phi}, x)", M)).values()
        assert same(got, want), phi
    # 1 * (1 - 0) + Inf * 0 is NaN: Prometheus computes the weighted sum even at weight 0.
    infinite = engine_with(constant(lbl(__name__="y", i="0"), 1.0), constant(lbl(__name__="y", i="1"), math.inf))
    (got,) = as_dict(infinite.instant("quantile(0, y)", M)).values()
    assert math.isnan(got)


def test_quantile_by_group_over_a_range() -> None:
    engine = engine_with(
        (lbl(__name__="x", g="a", i="0"), [0, M], [1.0, 10.0]),
        (lbl(__name__="x", g="a", i="1"), [0, M], [3.0, 20.0]),
        (lbl(__name__="x", g="b", i="0"), [0, M], [5.0, 5.0]),
    )
    assert matrix(engine.range("quantile by (g) (0.25, x)", 0, M, M)) == {
        lbl(g="a"): [(0, 1.5), (M, 12.5)],
        lbl(g="b"): [(0, 5.0), (M, 5.0)],
    }


# -- Go's heap and sort -----------------------------------------------------------------------


def _less(x: float, y: float) -> bool:
    return x != x or x < y


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, math.nan, -math.inf]) | st.floats(-1e3, 1e3), max_size=300))
def test_go_sort_orders_by_its_less_with_nan_first(values: list[float]) -> None:
    items = [(v, n) for n, v in enumerate(values)]
    sort_sort(items, _less)
    got = [v for v, _ in items]
    nans = sum(1 for v in values if v != v)
    assert all(v != v for v in got[:nans])
    assert got[nans:] == sorted(v for v in values if v == v)
    assert sorted(n for _, n in items) == list(range(len(values)))


def test_go_sort_is_an_insertion_sort_up_to_twelve_elements() -> None:
    # Stable for short slices: equal values keep their order.
    items = [(1.0, "a"), (0.0, "b"), (1.0, "c"), (0.0, "d")]
    sort_sort(items, _less)
    assert [p for _, p in items] == ["b", "d", "a", "c"]


def test_go_heap_keeps_the_smallest_on_top() -> None:
    heap: list = []
    for n, v in enumerate([5.0, 3.0, 8.0, 1.0, 9.0, 2.0]):
        heap_push(heap, (v, n), _less)
    assert [heap_pop(heap, _less)[0] for _ in range(6)] == [1.0, 2.0, 3.0, 5.0, 8.0, 9.0]


# -- subqueries -------------------------------------------------------------------------------


@pytest.fixture
def ramp() -> Engine:
    """``x{a="1"}`` equal to its time in seconds, a sample every 10s from -2m to 10m; ``x{a="2"}`` 5."""
    ts = list(range(-2 * M, 10 * M + 1, 10 * S))
    return engine_with(
        (lbl(__name__="x", a="1"), ts, [t / 1000 for t in ts]),
        (lbl(__name__="x", a="2"), ts, [5.0] * len(ts)),
    )


def test_subquery_points_are_the_multiples_of_its_step_in_the_closed_window(ramp: Engine) -> None:
    # [40s, 100s] holds 40, 60, 80 and 100: both ends included (Prometheus 2.x).
    assert matrix(ramp.instant("x[1m:20s]", 100 * S))[lbl(__name__="x", a="1")] == [
        (40 * S, 40.0), (60 * S, 60.0), (80 * S, 80.0), (100 * S, 100.0)]
    # Not aligned: [35s, 95s] holds 40, 60 and 80; the selector looks back from each point.
    assert matrix(ramp.instant("x[1m:20s]", 95 * S))[lbl(__name__="x", a="1")] == [
        (40 * S, 40.0), (60 * S, 60.0), (80 * S, 80.0)]
    # Before time 0 the multiples are still of the step: -40, -20, 0.
    assert [t for t, _ in matrix(ramp.instant("x[1m:20s]", 10 * S))[lbl(__name__="x", a="2")]] == [
        -40 * S, -20 * S, 0]


def test_subquery_offset_and_at(ramp: Engine) -> None:
    assert [t for t, _ in matrix(ramp.instant("x[1m:20s] offset 30s", 100 * S))[lbl(__name__="x", a="1")]] == [
        20 * S, 40 * S, 60 * S]
    assert [t for t, _ in matrix(ramp.instant("x[1m:20s] @ 200", 100 * S))[lbl(__name__="x", a="1")]] == [
        140 * S, 160 * S, 180 * S, 200 * S]
    assert [t for t, _ in matrix(ramp.instant("x[1m:20s] @ 200 offset -20s", 100 * S))[lbl(__name__="x", a="1")]] == [
        160 * S, 180 * S, 200 * S, 220 * S]


def test_subquery_without_step_uses_the_engine_default() -> None:
    ts = list(range(0, 10 * M + 1, 10 * S))
    series = (lbl(__name__="x"), ts, [t / 1000 for t in ts])
    assert [t for t, _ in matrix(engine_with(series).instant("x[2m:]", 200 * S))[lbl(__name__="x")]] == [
        120 * S, 180 * S]
    short = engine_with(series, subquery_step_ms=25 * S)
    assert matrix(short.instant("x[1m:]", 200 * S))[lbl(__name__="x")] == [
        (150 * S, 150.0), (175 * S, 170.0), (200 * S, 200.0)]


def test_functions_and_aggregations_of_subqueries(ramp: Engine) -> None:
    # x{a="1"} grows 1 per second: its points at 40s, 60s, 80s and 100s span the window, rate 1.
    assert as_dict(ramp.instant("rate(x[1m:20s])", 100 * S)) == {lbl(a="1"): 1.0, lbl(a="2"): 0.0}
    assert as_dict(ramp.instant("rate(sum(x)[1m:20s])", 100 * S)) == {lbl(): 1.0}
    # Points at 45s, 60s, 75s, 90s see the samples of 40s, 60s, 70s, 90s: 50 in 45s, extrapolated
    # by 5s and 10s to the window's ends.
    assert as_dict(ramp.instant("increase(x[1m:15s])", 100 * S)) == pytest.approx({lbl(a="1"): 50 * 60 / 45,
                                                                                lbl(a="2"): 0.0})
    # A range query gives at each step what an instant query gives.
    got = matrix(ramp.range("increase(x[1m:20s])", 100 * S, 160 * S, 30 * S))
    for t, v in got[lbl(a="1")]:
        assert as_dict(ramp.instant("increase(x[1m:20s])", t))[lbl(a="1")] == v
    assert [t for t, _ in got[lbl(a="1")]] == [100 * S, 130 * S, 160 * S]


def test_nested_subqueries_align_each_grid_to_its_own_step(ramp: Engine) -> None:
    got = matrix(ramp.instant("increase(x[1m:15s])[1m:30s]", 100 * S))
    assert got == {lbl(a="1"): [(60 * S, 60.0), (90 * S, 60.0)], lbl(a="2"): [(60 * S, 0.0), (90 * S, 0.0)]}


def test_a_subquery_is_a_range_vector(ramp: Engine) -> None:
    with pytest.raises(BadQueryError, match='invalid expression type "range vector" for range query'):
        ramp.range("x[1m:10s]", 0, M, 10 * S)
    with pytest.raises(BadQueryError, match='invalid expression type "range vector" for range query'):
        ramp.range("(x[1m:10s])", 0, M, 10 * S)
    assert ramp.instant("(x[1m:30s])", M).result_type == "matrix"


def test_a_subquery_whose_window_holds_no_step_is_empty(ramp: Engine) -> None:
    assert ramp.instant("x[5s:20s]", 95 * S).series == []
    assert as_dict(ramp.instant("rate(x[5s:20s])", 95 * S)) == {}


# -- the @ modifier ---------------------------------------------------------------------------


def test_at_pins_a_selector_to_one_time(ramp: Engine) -> None:
    got = matrix(ramp.range('x{a="1"} @ 200', 0, 2 * M, M))
    assert got == {lbl(__name__="x", a="1"): [(0, 200.0), (M, 200.0), (2 * M, 200.0)]}
    assert as_dict(ramp.instant('x{a="1"} @ 200 offset 1m', 0)) == {lbl(__name__="x", a="1"): 140.0}
    assert as_dict(ramp.instant('x{a="1"} @ 95.5', 0)) == {lbl(__name__="x", a="1"): 90.0}


def test_at_start_and_end_are_the_query_range(ramp: Engine) -> None:
    # 130s is not on the grid (100s, 120s): end() is the query's end all the same.
    assert matrix(ramp.range('x{a="1"} @ start()', 100 * S, 130 * S, 20 * S)) == {
        lbl(__name__="x", a="1"): [(100 * S, 100.0), (120 * S, 100.0)]}
    assert matrix(ramp.range('x{a="1"} @ end()', 100 * S, 130 * S, 20 * S)) == {
        lbl(__name__="x", a="1"): [(100 * S, 130.0), (120 * S, 130.0)]}
    # Inside a subquery, end() is still the whole query's end.
    assert matrix(ramp.instant('(x{a="1"} @ end())[1m:30s]', 200 * S)) == {
        lbl(__name__="x", a="1"): [(150 * S, 200.0), (180 * S, 200.0)]}


def test_at_on_range_selectors(ramp: Engine) -> None:
    assert matrix(ramp.instant('x{a="1"}[30s] @ 200 offset 10s', 0)) == {
        lbl(__name__="x", a="1"): [(160 * S, 160.0), (170 * S, 170.0), (180 * S, 180.0), (190 * S, 190.0)]}
    got = matrix(ramp.range('increase(x{a="1"}[1m] @ 100)', 0, 2 * M, M))
    assert got == {lbl(a="1"): [(0, 60.0), (M, 60.0), (2 * M, 60.0)]}


def test_an_at_time_before_1970_is_not_supported_yet(ramp: Engine) -> None:
    with pytest.raises(UnsupportedQueryError, match="before 1970"):
        ramp.instant("x @ -5", 0)
