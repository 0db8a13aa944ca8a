"""Unit tests of binary and unary operators and literals: hand-made data with hand-computed answers (the
operators against a naive port of Prometheus's Go code are in ``test_naive_ports.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shardmon.model.errors import BadQueryError, QueryExecutionError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.promql.value import EvalContext, InstantVector, Scalar
from shardmon.model.storage import QueryBudget
from shardmon.querier.promql import Engine
from shardmon.querier.promql.binary import MANY_TO_MANY, ONE_TO_ONE, VectorMatching, binary_op, negate
from tests.unit.querier.conftest import M, S, as_dict, engine_with, lbl, same


def const(labels: Labels, value: float) -> tuple[Labels, list[int], list[float]]:
    """A series with one sample at time 0 (visible up to 5m with the default lookback)."""
    return labels, [0], [value]


@pytest.fixture
def nodes() -> Engine:
    return engine_with(
        const(lbl(__name__="cpu", instance="a", mode="idle"), 3.0),
        const(lbl(__name__="cpu", instance="a", mode="user"), 1.0),
        const(lbl(__name__="cpu", instance="b", mode="idle"), 8.0),
        const(lbl(__name__="cpu", instance="b", mode="user"), 2.0),
        const(lbl(__name__="role", instance="a", role="db"), 1.0),
        const(lbl(__name__="limit", instance="a"), 2.0),
        const(lbl(__name__="limit", instance="b"), 5.0),
        const(lbl(__name__="special", k="nan"), math.nan),
        const(lbl(__name__="special", k="inf"), math.inf),
        const(lbl(__name__="special", k="neg"), -7.0),
    )


# -- scalars and literals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("2 ^ 3 ^ 2", 512.0),  # ^ is right-associative.
        ("-2 ^ 2", -4.0),  # Unary minus binds looser than ^.
        ("7 % -3", 1.0),  # Go's math.Mod: the sign of the dividend.
        ("-7 % 3", -1.0),
        ("5 % Inf", 5.0),
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("NaN ^ 0", 1.0),  # math.Pow's special cases.
        ("1 ^ NaN", 1.0),
        ("(-8) ^ (1/3)", math.nan),
        ("0 ^ -1", math.inf),
        ("10 atan2 20", math.atan2(10, 20)),
        ("1 == bool 1", 1.0),
        ("NaN == bool NaN", 0.0),
        ("NaN != bool NaN", 1.0),
        ("2 >= bool 3", 0.0),
    ],
)
def test_scalar_arithmetic_and_comparisons(nodes: Engine, query: str, expected: float) -> None:
    result = nodes.instant(query, 0)
    assert result.result_type == "scalar"
    assert same(result.scalar, expected)


def test_modulo_of_infinity_or_by_zero_is_nan(nodes: Engine) -> None:
    assert math.isnan(nodes.instant("Inf % 2", 0).scalar)
    assert math.isnan(nodes.instant("1 % 0", 0).scalar)


def test_string_literal_is_a_string_result(nodes: Engine) -> None:
    result = nodes.instant('"hello"', 5 * S)
    assert (result.result_type, result.scalar, result.time_ms, result.series) == ("string", "hello", 5 * S, [])
    assert nodes.instant('("x")', 0).scalar == "x"


def test_range_query_over_a_string_is_prometheus_error(nodes: Engine) -> None:
    with pytest.raises(BadQueryError, match='invalid expression type "string" for range query'):
        nodes.range('"hello"', 0, 60 * S, 10 * S)


# -- vector and scalar -------------------------------------------------------------------------


def test_arithmetic_with_a_scalar_drops_the_metric_name(nodes: Engine) -> None:
    assert as_dict(nodes.instant("limit * 2", M)) == {lbl(instance="a"): 4.0, lbl(instance="b"): 10.0}
    assert as_dict(nodes.instant("10 - limit", M)) == {lbl(instance="a"): 8.0, lbl(instance="b"): 5.0}
    assert as_dict(nodes.instant("2 ^ limit", M)) == {lbl(instance="a"): 4.0, lbl(instance="b"): 32.0}
    assert as_dict(nodes.instant("limit % 3", M)) == {lbl(instance="a"): 2.0, lbl(instance="b"): 2.0}


def test_atan2_drops_the_metric_name_as_prometheus_2_53(nodes: Engine) -> None:
    got = as_dict(nodes.instant("limit atan2 1", M))
    assert got == {
        lbl(instance="a"): math.atan2(2, 1),
        lbl(instance="b"): math.atan2(5, 1),
    }


def test_comparison_with_a_scalar_filters_and_keeps_the_vectors_value_and_name(nodes: Engine) -> None:
    assert as_dict(nodes.instant("limit > 3", M)) == {lbl(__name__="limit", instance="b"): 5.0}
    # With the scalar on the left, the value is still the vector's.
    assert as_dict(nodes.instant("3 > limit", M)) == {lbl(__name__="limit", instance="a"): 2.0}


def test_comparison_with_bool_keeps_every_series_and_drops_the_name(nodes: Engine) -> None:
    assert as_dict(nodes.instant("limit > bool 3", M)) == {lbl(instance="a"): 0.0, lbl(instance="b"): 1.0}
    assert as_dict(nodes.instant("3 >= bool limit", M)) == {lbl(instance="a"): 1.0, lbl(instance="b"): 0.0}


def test_comparisons_with_nan_are_false_except_not_equal(nodes: Engine) -> None:
    nan = lbl(__name__="special", k="nan")
    assert nan not in as_dict(nodes.instant("special == special", M))
    assert nan not in as_dict(nodes.instant("special > -Inf", M))
    assert nan not in as_dict(nodes.instant("special <= Inf", M))
    assert nan in as_dict(nodes.instant("special != 1", M))
    assert as_dict(nodes.instant("special == bool NaN", M)) == {lbl(k="nan"): 0.0, lbl(k="inf"): 0.0, lbl(k="neg"): 0.0}


def test_special_values_follow_go_float64(nodes: Engine) -> None:
    got = as_dict(nodes.instant("special % 2", M))
    assert math.isnan(got[lbl(k="nan")]) and math.isnan(got[lbl(k="inf")]) and got[lbl(k="neg")] == -1.0
    got = as_dict(nodes.instant("special * 0", M))
    assert math.isnan(got[lbl(k="inf")]) and got[lbl(k="neg")] == 0.0
    got = as_dict(nodes.instant("special ^ 0", M))
    assert got == {lbl(k="nan"): 1.0, lbl(k="inf"): 1.0, lbl(k="neg"): 1.0}
    got = as_dict(nodes.instant("special ^ 0.5", M))
    assert math.isnan(got[lbl(k="neg")]) and got[lbl(k="inf")] == math.inf


def test_dropping_the_name_may_not_make_two_series_the_same(nodes: Engine) -> None:
    engine = engine_with(const(lbl(__name__="m1", a="1"), 1.0), const(lbl(__name__="m2", a="1"), 2.0))
    with pytest.raises(QueryExecutionError, match="^vector cannot contain metrics with the same labelset$"):
        engine.instant('{__name__=~"m1|m2"} + 1', M)
    # A filter keeps the names, so nothing clashes.
    assert len(engine.instant('{__name__=~"m1|m2"} > 0', M).series) == 2


# -- unary minus -------------------------------------------------------------------------------


def test_unary_minus_on_a_vector_negates_and_drops_the_name(nodes: Engine) -> None:
    assert as_dict(nodes.instant("-limit", M)) == {lbl(instance="a"): -2.0, lbl(instance="b"): -5.0}
    assert as_dict(nodes.instant("--limit", M)) == {lbl(instance="a"): 2.0, lbl(instance="b"): 5.0}


def test_unary_minus_refuses_series_that_differ_only_in_name_even_at_different_times() -> None:
    # Prometheus checks the whole matrix there, not each step.
    engine = engine_with((lbl(__name__="m1", a="1"), [0], [1.0]), (lbl(__name__="m2", a="1"), [10 * M], [2.0]))
    with pytest.raises(QueryExecutionError, match="vector cannot contain metrics with the same labelset"):
        engine.range('-{__name__=~"m1|m2"}', 0, 12 * M, M)


# -- vector matching ---------------------------------------------------------------------------


def test_one_to_one_matching_on_all_labels_but_the_name() -> None:
    engine = engine_with(
        const(lbl(__name__="a", x="1"), 6.0),
        const(lbl(__name__="a", x="2"), 8.0),
        const(lbl(__name__="b", x="1"), 3.0),
        const(lbl(__name__="b", x="3"), 1.0),
    )
    assert as_dict(engine.instant("a / b", M)) == {lbl(x="1"): 2.0}
    assert as_dict(engine.instant("a > b", M)) == {lbl(__name__="a", x="1"): 6.0}
    assert as_dict(engine.instant("a < bool b", M)) == {lbl(x="1"): 0.0}


def test_on_keeps_only_the_matching_labels_and_ignoring_drops_the_ignored(nodes: Engine) -> None:
    got = as_dict(nodes.instant('cpu{mode="idle"} / on(instance) limit', M))
    assert got == {lbl(instance="a"): 1.5, lbl(instance="b"): 1.6}
    got = as_dict(nodes.instant('cpu{mode="idle"} / ignoring(mode) limit', M))
    assert got == {lbl(instance="a"): 1.5, lbl(instance="b"): 1.6}
    # on() keeps only the on labels even for a filter, and so drops the name.
    got = as_dict(nodes.instant('cpu{mode="idle"} > on(instance) limit', M))
    assert got == {lbl(instance="a"): 3.0, lbl(instance="b"): 8.0}


def test_group_left_copies_labels_from_the_one_side(nodes: Engine) -> None:
    got = as_dict(nodes.instant("cpu * on(instance) group_left(role) role", M))
    assert got == {lbl(instance="a", mode="idle", role="db"): 3.0, lbl(instance="a", mode="user", role="db"): 1.0}
    got = as_dict(nodes.instant("cpu / on(instance) group_left limit", M))
    assert got == {
        lbl(instance="a", mode="idle"): 1.5,
        lbl(instance="a", mode="user"): 0.5,
        lbl(instance="b", mode="idle"): 1.6,
        lbl(instance="b", mode="user"): 0.4,
    }


def test_group_left_label_missing_on_the_one_side_is_removed() -> None:
    engine = engine_with(const(lbl(__name__="m", i="1", extra="x"), 4.0), const(lbl(__name__="o", i="1"), 2.0))
    assert as_dict(engine.instant("m / on(i) group_left(extra) o", M)) == {lbl(i="1"): 2.0}


def test_group_right_keeps_the_operand_order_for_the_value(nodes: Engine) -> None:
    got = as_dict(nodes.instant("limit - on(instance) group_right cpu", M))
    assert got == {
        lbl(instance="a", mode="idle"): -1.0,
        lbl(instance="a", mode="user"): 1.0,
        lbl(instance="b", mode="idle"): -3.0,
        lbl(instance="b", mode="user"): 3.0,
    }
    # A filter gives the left side's value, with the "many" side's labels and name.
    got = as_dict(nodes.instant("limit < on(instance) group_right cpu", M))
    assert got == {
        lbl(__name__="cpu", instance="a", mode="idle"): 2.0,
        lbl(__name__="cpu", instance="b", mode="idle"): 5.0,
    }


def test_duplicate_series_on_the_one_side_is_prometheus_error(nodes: Engine) -> None:
    with pytest.raises(QueryExecutionError) as info:
        nodes.instant("limit / on(instance) cpu", M)
    assert str(info.value) == (
        'found duplicate series for the match group {instance="a"} on the right hand-side of the operation: '
        '[{__name__="cpu", instance="a", mode="user"}, {__name__="cpu", instance="a", mode="idle"}]'
        ";many-to-many matching not allowed: matching labels must be unique on one side"
    )
    with pytest.raises(QueryExecutionError, match='match group {instance="a"} on the left hand-side'):
        nodes.instant("cpu - on(instance) group_right limit", M)


def test_ambiguous_one_to_one_match_is_prometheus_error(nodes: Engine) -> None:
    with pytest.raises(
        QueryExecutionError,
        match=r"^multiple matches for labels: many-to-one matching must be explicit \(group_left/group_right\)$",
    ):
        nodes.instant("cpu / on(instance) limit", M)
    # Only matches that a filter keeps count.
    assert as_dict(nodes.instant("cpu > on(instance) limit", M)) == {lbl(instance="a"): 3.0, lbl(instance="b"): 8.0}


def test_grouping_labels_must_tell_the_many_side_apart(nodes: Engine) -> None:
    # group_left(mode) takes mode from limit, which has none: both modes of an instance end up alike.
    with pytest.raises(
        QueryExecutionError, match="^multiple matches for labels: grouping labels must ensure unique matches$"
    ):
        nodes.instant("cpu / on(instance) group_left(mode) limit", M)
    # A filter that keeps one of them only is fine.
    got = as_dict(nodes.instant("cpu > on(instance) group_left(mode) limit", M))
    assert got == {lbl(__name__="cpu", instance="a"): 3.0, lbl(__name__="cpu", instance="b"): 8.0}


def test_matching_errors_need_duplicates_at_the_same_step() -> None:
    # Two series of b match the same signature, but never at the same step: no error, and a matches
    # the one present at each step.
    engine = engine_with(
        (lbl(__name__="a", i="1"), [0, M, 2 * M, 3 * M], [10.0, 20.0, 30.0, 40.0]),
        (lbl(__name__="b", i="1", v="x"), [0, M], [1.0, 2.0]),
        (lbl(__name__="b", i="1", v="y"), [2 * M, 3 * M], [3.0, 4.0]),
        lookback_delta_ms=S,
    )
    result = engine.range("a / on(i) group_left(v) b", 0, 3 * M, M)
    got = {(s.labels, t): v for s in result.series for t, v in zip(s.timestamps_ms.tolist(), s.values.tolist())}
    assert got == {
        (lbl(i="1", v="x"), 0): 10.0,
        (lbl(i="1", v="x"), M): 10.0,
        (lbl(i="1", v="y"), 2 * M): 10.0,
        (lbl(i="1", v="y"), 3 * M): 10.0,
    }
    result = engine.range("a + ignoring(v) b", 0, 3 * M, M)
    [series] = result.series
    assert series.labels == lbl(i="1") and series.values.tolist() == [11.0, 22.0, 33.0, 44.0]
    # Overlapping at one step, they are an error.
    overlapping = engine_with(
        (lbl(__name__="a", i="1"), [0, M], [1.0, 1.0]),
        (lbl(__name__="b", i="1", v="x"), [0, M], [1.0, 2.0]),
        (lbl(__name__="b", i="1", v="y"), [M], [3.0]),
        lookback_delta_ms=S,
    )
    assert len(overlapping.range("a + ignoring(v) b", 0, 0, M).series) == 1
    with pytest.raises(QueryExecutionError, match="found duplicate series for the match group"):
        overlapping.range("a + ignoring(v) b", 0, M, M)


def test_no_matching_error_when_the_other_side_is_empty(nodes: Engine) -> None:
    # Prometheus returns nothing before it looks at duplicates when a side has no sample.
    assert nodes.instant("nothing / on(instance) cpu", M).series == []
    assert nodes.instant("cpu / on(instance) nothing", M).series == []


def test_on_with_no_labels_matches_everything_to_everything() -> None:
    engine = engine_with(const(lbl(__name__="r", foo="bar"), 2.0), const(lbl(__name__="m", baz="meh"), 3.0))
    assert as_dict(engine.instant("r + on() m", M)) == {lbl(): 5.0}
    assert as_dict(engine.instant("m * on() group_left(foo) r", M)) == {lbl(baz="meh", foo="bar"): 6.0}


def test_matching_on_the_metric_name() -> None:
    engine = engine_with(const(lbl(__name__="m", a="1"), 2.0), const(lbl(__name__="m", a="2"), 3.0))
    # on(__name__) pairs series by name; a one-to-one result keeps just the on labels, after
    # arithmetic has dropped the name.
    with pytest.raises(QueryExecutionError, match='match group {__name__="m"} on the right hand-side'):
        engine.instant("m + on(__name__) m", M)
    assert as_dict(engine.instant('m{a="1"} + on(__name__) m{a="2"}', M)) == {lbl(): 5.0}
    assert as_dict(engine.instant('m{a="1"} < on(__name__) m{a="2"}', M)) == {lbl(__name__="m"): 2.0}


# -- set operators -----------------------------------------------------------------------------


@pytest.fixture
def sets() -> Engine:
    return engine_with(
        const(lbl(__name__="x", g="c", i="0"), 1.0),
        const(lbl(__name__="x", g="c", i="1"), 2.0),
        const(lbl(__name__="x", g="p", i="0"), 3.0),
        const(lbl(__name__="x", g="p", i="1"), 4.0),
        const(lbl(__name__="y", i="0"), 10.0),
        const(lbl(__name__="y", i="5"), 20.0),
    )


def test_and_keeps_left_series_with_a_match(sets: Engine) -> None:
    got = as_dict(sets.instant('x{g="c"} and x{i="0"}', M))
    assert got == {lbl(__name__="x", g="c", i="0"): 1.0}
    got = as_dict(sets.instant("x and on(i) y", M))
    assert got == {lbl(__name__="x", g="c", i="0"): 1.0, lbl(__name__="x", g="p", i="0"): 3.0}
    assert as_dict(sets.instant("x and nothing", M)) == {}


def test_or_adds_right_series_whose_signature_the_left_lacks(sets: Engine) -> None:
    got = as_dict(sets.instant('(x{g="c"} + 1) or x', M))
    assert got == {
        lbl(g="c", i="0"): 2.0,
        lbl(g="c", i="1"): 3.0,
        lbl(__name__="x", g="p", i="0"): 3.0,
        lbl(__name__="x", g="p", i="1"): 4.0,
    }
    got = as_dict(sets.instant('x{g="c"} or on(i) y', M))
    assert got == {
        lbl(__name__="x", g="c", i="0"): 1.0,
        lbl(__name__="x", g="c", i="1"): 2.0,
        lbl(__name__="y", i="5"): 20.0,
    }
    assert as_dict(sets.instant("nothing or y", M)) == {lbl(__name__="y", i="0"): 10.0, lbl(__name__="y", i="5"): 20.0}


def test_unless_keeps_left_series_without_a_match(sets: Engine) -> None:
    got = as_dict(sets.instant("x unless on(i) y", M))
    assert got == {lbl(__name__="x", g="c", i="1"): 2.0, lbl(__name__="x", g="p", i="1"): 4.0}
    assert len(sets.instant("x unless nothing", M).series) == 4
    assert sets.instant("x unless ignoring(g, i) y", M).series == []


def test_set_operators_are_many_to_many(sets: Engine) -> None:
    # Duplicates on either side are fine for and/or/unless.
    assert len(sets.instant("x and on() y", M).series) == 4
    assert len(sets.instant("y or on() x", M).series) == 2


def test_or_in_a_range_query_joins_a_series_present_on_both_sides_at_different_steps() -> None:
    engine = engine_with((lbl(__name__="a", i="1"), [0, M, 2 * M], [1.0, 10.0, 2.0]), lookback_delta_ms=S)
    # The left side has a{i="1"} at steps 0 and 2, the right side adds it at step 1: one series.
    result = engine.range("(a < 5) or a", 0, 2 * M, M)
    [series] = result.series
    assert series.labels == lbl(__name__="a", i="1")
    assert series.timestamps_ms.tolist() == [0, M, 2 * M] and series.values.tolist() == [1.0, 10.0, 2.0]


def test_series_with_equal_labels_at_different_steps_are_one_series_in_a_range_query() -> None:
    engine = engine_with(
        (lbl(__name__="m1", a="1"), [0], [1.0]), (lbl(__name__="m2", a="1"), [2 * M], [2.0]), lookback_delta_ms=S
    )
    result = engine.range('{__name__=~"m1|m2"} * 10', 0, 2 * M, M)
    [series] = result.series
    assert series.labels == lbl(a="1")
    assert series.timestamps_ms.tolist() == [0, 2 * M] and series.values.tolist() == [10.0, 20.0]


def test_operators_that_keep_the_rows_keep_their_presentation_order() -> None:
    labels = [lbl(__name__="x", i=str(i)) for i in range(3)]
    vector = InstantVector(labels, np.array([[3.0], [1.0], [2.0]]), np.ones((3, 1), dtype=bool), np.array([1, 2, 0]))
    ctx = EvalContext(MemoryStorage(), np.array([0], dtype=np.int64), 300_000, QueryBudget())
    scalar = Scalar(np.array([2.0]))
    one_to_one = VectorMatching(ONE_TO_ONE, False, ())
    for result in (
        negate(vector),
        binary_op(ctx, "*", vector, scalar, one_to_one, False),
        binary_op(ctx, ">", scalar, vector, one_to_one, False),
        binary_op(ctx, "and", vector, vector, VectorMatching(MANY_TO_MANY, False, ()), False),
    ):
        assert result.order is not None and result.order.tolist() == [1, 2, 0]


# -- range queries -----------------------------------------------------------------------------


def test_range_query_agrees_with_instant_queries_at_each_step() -> None:
    ts = list(range(0, 10 * M + 1, M))
    engine = engine_with(
        (lbl(__name__="req", job="api", i="0"), ts, [float(v) for v in range(11)]),
        (lbl(__name__="req", job="api", i="1"), ts[:6], [float(2 * v) for v in range(6)]),
        (lbl(__name__="lim", job="api"), ts[3:], [3.0] * 8),
        lookback_delta_ms=S,
    )
    for query in (
        "req / on(job) group_left lim",
        "req > on(job) group_left lim",
        "req >= bool 4",
        "2 * req - 1",
        "req unless on(job) lim",
        "req or on(job) lim",
        "-req",
    ):
        result = engine.range(query, 0, 10 * M, M)
        for t in range(0, 10 * M + 1, M):
            want = as_dict(engine.instant(query, t))
            got = {
                s.labels: v
                for s in result.series
                for x, v in zip(s.timestamps_ms.tolist(), s.values.tolist())
                if x == t
            }
            assert got == want, (query, t)
