"""histogram_ops against hand-computed cases (Prometheus 2.53's FloatHistogram semantics)."""

from __future__ import annotations

import math

from shardmon.model.histogram import COUNTER_RESET, GAUGE_TYPE, Histogram
from shardmon.model.promql import histogram_ops as ops


def h(schema=0, zt=0.0, zc=0.0, count=0.0, total=0.0, pos=(), pb=(), neg=(), nb=(), hint=0):
    return Histogram(schema, zt, zc, count, total, tuple(pos), tuple(float(x) for x in pb), tuple(neg),
                     tuple(float(x) for x in nb), hint)


def test_bounds_are_exact() -> None:
    assert ops.bound(2, 1) == 2.0 and ops.bound(1, 0) == 2.0 and ops.bound(0, 3) == 1.0
    assert ops.bound(1, 1) == 0.7071067811865475 * 2  # Prometheus's table entry for 2**0.5 / 2 (one ulp below the true value)
    assert math.isclose(ops.bound(-1, 2), 0.8408964152537144, rel_tol=1e-15)  # within an ulp of Go's table
    assert ops.bound(1024, 0) == 1.7976931348623157e308 and ops.bound(1025, 0) == math.inf
    assert ops.bound(1, -2) == 16.0


def test_add_reduces_to_the_lower_schema() -> None:
    a = h(1, 0.001, 1, 10, 20, [(0, 2), (1, 2)], [1, 2, 3, 3])
    b = h(0, 0.001, 2, 5, 5, [(0, 2)], [1, 2])
    out = ops.add(a, b)
    # Schema-1 buckets 0,1,3,4 fold into schema-0 buckets 0,1,2,2.
    assert (out.schema, out.zero_count, out.count, out.sum) == (0, 3, 15, 25)
    assert out.positive_spans == ((0, 3),) and out.positive_buckets == (2, 4, 6)


def test_zero_bucket_widens_to_the_larger_threshold() -> None:
    a = h(0, 1.0, 1, 4, 0, [(1, 2)], [1, 2])  # buckets (1,2] (2,4]
    b = h(0, 0.5, 1, 3, 0, [(0, 2)], [1, 1])  # buckets (0.5,1] (1,2]
    out = ops.add(a, b)
    # b's (0.5,1] goes into the zero bucket of threshold 1.
    assert out.zero_threshold == 1.0 and out.zero_count == 3
    assert out.positive_spans == ((1, 2),) and out.positive_buckets == (2, 2)


def test_sub_then_compact_drops_empty_buckets() -> None:
    a = h(0, 0, 0, 3, 3, [(0, 2)], [1, 2])
    b = h(0, 0, 0, 1, 1, [(0, 1)], [1])
    out = ops.sub(a, b)
    assert out.positive_buckets == (0, 2) and out.count == 2
    assert ops.compact(out).positive_spans == ((1, 1),)


def test_scale_divide_negate() -> None:
    a = h(0, 0, 1, 3, 6, [(0, 2)], [1, 1])
    assert ops.scale(a, 2).positive_buckets == (2, 2) and ops.scale(a, 2).sum == 12
    assert ops.divide(a, 2).count == 1.5
    assert ops.divide(a, 0).count == math.inf
    assert ops.negate(a).zero_count == -1


def test_detect_reset() -> None:
    prev = h(0, 0, 0, 3, 3, [(0, 2)], [1, 2])
    assert not ops.detect_reset(h(0, 0, 0, 5, 5, [(0, 2)], [2, 3]), prev)
    assert ops.detect_reset(h(0, 0, 0, 4, 5, [(0, 2)], [0, 4]), prev)  # a bucket went down
    assert ops.detect_reset(h(0, 0, 0, 4, 4, [(1, 1)], [4]), prev)  # a populated bucket vanished
    assert ops.detect_reset(h(1, 0, 0, 5, 5), prev)  # schema went up
    assert ops.detect_reset(h(0, 0, 0, 5, 5, [(0, 2)], [2, 3], hint=COUNTER_RESET), prev)


def test_quantile_interpolates_linearly_in_the_bucket() -> None:
    a = h(0, 0, 0, 4, 6, [(1, 2)], [2, 2])  # (1,2]: 2, (2,4]: 2
    assert ops.quantile(0.25, a) == 1.5  # forward: rank 1 of 2 in (1,2]
    assert ops.quantile(0.75, a) == 3.0  # backward: rank 1 from the top in (2,4]
    assert ops.quantile(1.5, a) == math.inf and math.isnan(ops.quantile(0.5, h()))


def test_quantile_in_the_zero_bucket_of_a_positive_histogram() -> None:
    a = h(0, 1.0, 2, 4, 3, [(1, 1)], [2])
    assert ops.quantile(0.25, a) == 0.5  # the zero bucket counts from 0


def test_fraction_and_stdvar() -> None:
    a = h(0, 0, 0, 4, 6, [(1, 2)], [2, 2])
    assert ops.fraction(0, 2, a) == 0.5
    assert ops.fraction(1.5, 3, a) == (1 + 1) / 4
    assert ops.fraction(3, 1, a) == 0.0
    # Buckets at sqrt(2) and sqrt(8), mean 1.5.
    expected = (2 * (math.sqrt(2) - 1.5) ** 2 + 2 * (math.sqrt(8) - 1.5) ** 2) / 4
    assert math.isclose(ops.stdvar(a), expected) and math.isclose(ops.stddev(a), math.sqrt(expected))


def test_gauge_hint_wins_in_add() -> None:
    assert ops.add(h(hint=GAUGE_TYPE), h()).counter_reset_hint == GAUGE_TYPE
