"""Arithmetic and statistics on native histograms, as Prometheus 2.53's ``FloatHistogram`` and ``promql`` compute them.

Pure functions of :class:`~shardmon.model.histogram.Histogram` values (immutable: each returns a new one):

- :func:`add`, :func:`sub`: bucket by bucket, after reducing both to the lower schema and widening the zero
  bucket to the larger threshold (moving the buckets it then covers into it), as ``Add``/``Sub``;
  :func:`scale` and :func:`divide` (``Mul``/``Div``), :func:`negate`; :func:`compact` is
  :func:`shardmon.model.histogram_buckets.compact` (``Compact(0)``), named here too.
- :func:`detect_reset`: Prometheus's ``DetectReset`` (a counter histogram went down between two samples).
- :func:`quantile`, :func:`fraction`, :func:`stdvar` (and ``sqrt`` of it for the deviation): ``histogram_quantile``,
  ``histogram_fraction``, ``histogram_stdvar``/``histogram_stddev`` of one histogram, over :func:`all_buckets`.
- :func:`bound`: a bucket boundary exactly as Prometheus's ``getBound`` (``model.histogram.bucket_bound``).

Inside, a side of a histogram is a ``{bucket index: count}`` dict in index order (``model.histogram.bucket_map``);
a result's spans are the runs of consecutive indices (``spans_of``); schema reduction is
``model.histogram_buckets.reduce_buckets``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from shardmon.model.histogram import (
    COUNTER_RESET,
    GAUGE_TYPE,
    NOT_COUNTER_RESET,
    UNKNOWN_COUNTER_RESET,
    Histogram,
    bucket_bound,
    bucket_map,
    spans_of,
)
from shardmon.model.histogram_buckets import compact, reduce_buckets

Side = dict[int, float]


# -- bounds ----------------------------------------------------------------------------------------


def bound(index: int, schema: int) -> float:
    """The upper bound of positive bucket ``index`` under ``schema``, exactly as Prometheus's ``getBound``
    (:func:`shardmon.model.histogram.bucket_bound`)."""
    return bucket_bound(index, schema)


# -- sides: dicts of index -> count ---------------------------------------------------------------


def _build(h: Histogram, *, schema: int, zero_threshold: float, zero_count: float, count: float, total: float,
           pos: Side, neg: Side, hint: int) -> Histogram:
    ps, pb = spans_of(pos)
    ns, nb = spans_of(neg)
    return Histogram(schema, zero_threshold, zero_count, count, total, ps, pb, ns, nb, hint, False)


def sides(h: Histogram) -> tuple[Side, Side]:
    """The positive and negative buckets of ``h`` as ``{index: count}``."""
    return bucket_map(h.positive_spans, h.positive_buckets), bucket_map(h.negative_spans, h.negative_buckets)


def _zero_count_for_larger_threshold(h: Histogram, pos: Side, neg: Side, larger: float) -> tuple[float, float]:
    """``zeroCountForLargerThreshold``: the zero count ``h`` has with its zero bucket widened to ``larger``,
    and the threshold it ends up with (moved up to a bucket's bound if it fell inside a populated one)."""
    if larger == h.zero_threshold:
        return h.zero_count, larger
    while True:
        count = h.zero_count
        for idx, c in pos.items():
            lower, upper = bound(idx - 1, h.schema), bound(idx, h.schema)
            if lower >= larger:
                break
            count += c
            if upper > larger:
                if c != 0:
                    larger = upper
                break
        again = False
        for idx, c in neg.items():
            upper, lower = -bound(idx - 1, h.schema), -bound(idx, h.schema)
            if upper <= -larger:
                break
            count += c
            if lower < -larger:
                if c != 0:
                    larger = -lower
                    again = True
                break
        if not again:
            return count, larger


def _trim(schema: int, side: Side, threshold: float) -> Side:
    """The buckets of ``side`` not inside a zero bucket of ``threshold`` (``trimBucketsInZeroBucket``)."""
    return {i: c for i, c in side.items() if bound(i - 1, schema) >= threshold}


class _Operand(NamedTuple):
    schema: int
    zero_threshold: float
    zero_count: float
    pos: Side
    neg: Side


def _reconcile(a: Histogram, b: Histogram) -> tuple[_Operand, float]:
    """``reconcileZeroBuckets``: ``a``'s buckets with the zero bucket wide enough for both, and ``b``'s zero count
    with that same zero bucket."""
    apos, aneg = sides(a)
    bpos, bneg = sides(b)
    a_zt, a_zc = a.zero_threshold, a.zero_count
    b_zt, b_zc = b.zero_threshold, b.zero_count
    cur = a
    while b_zt != a_zt:
        if a_zt > b_zt:
            b_zc, b_zt = _zero_count_for_larger_threshold(b, bpos, bneg, a_zt)
        if b_zt > a_zt:
            a_zc, a_zt = _zero_count_for_larger_threshold(cur, apos, aneg, b_zt)
            apos, aneg = _trim(a.schema, apos, a_zt), _trim(a.schema, aneg, a_zt)
            cur = Histogram(a.schema, a_zt, a_zc, a.count, a.sum, *spans_of(apos), *spans_of(aneg))
    return _Operand(a.schema, a_zt, a_zc, apos, aneg), b_zc


def _add_hint(a: int, b: int) -> int:
    if a == b or a == GAUGE_TYPE:
        return a
    if b == GAUGE_TYPE:
        return GAUGE_TYPE
    return UNKNOWN_COUNTER_RESET


def _combine(a: Histogram, b: Histogram, sign: float, hint: int) -> Histogram:
    op, b_zero = _reconcile(a, b)
    schema = min(a.schema, b.schema)
    apos, aneg = reduce_buckets(op.pos, a.schema, schema), reduce_buckets(op.neg, a.schema, schema)
    bpos, bneg = sides(b)
    bpos, bneg = reduce_buckets(bpos, b.schema, schema), reduce_buckets(bneg, b.schema, schema)
    for mine, theirs in ((apos, bpos), (aneg, bneg)):
        for idx, c in theirs.items():
            if bound(idx, schema) <= op.zero_threshold:
                continue  # Inside the (widened) zero bucket: already in b's zero count.
            mine[idx] = mine.get(idx, 0.0) + sign * c
    return _build(a, schema=schema, zero_threshold=op.zero_threshold, zero_count=op.zero_count + sign * b_zero,
                  count=a.count + sign * b.count, total=a.sum + sign * b.sum, pos=apos, neg=aneg, hint=hint)


def add(a: Histogram, b: Histogram) -> Histogram:
    """``a + b`` (``FloatHistogram.Add``): the lower schema, the wider zero bucket; not compacted."""
    return _combine(a, b, 1.0, _add_hint(a.counter_reset_hint, b.counter_reset_hint))


def sub(a: Histogram, b: Histogram) -> Histogram:
    """``a - b`` (``FloatHistogram.Sub``): as :func:`add`; ``a``'s counter reset hint."""
    return _combine(a, b, -1.0, a.counter_reset_hint)


def _map(h: Histogram, f) -> Histogram:
    return Histogram(h.schema, h.zero_threshold, f(h.zero_count), f(h.count), f(h.sum), h.positive_spans,
                     tuple(f(c) for c in h.positive_buckets), h.negative_spans,
                     tuple(f(c) for c in h.negative_buckets), h.counter_reset_hint, False)


def scale(h: Histogram, factor: float) -> Histogram:
    """Every count and the sum times ``factor`` (``Mul``); the bucket layout stays."""
    return _map(h, lambda c: c * factor)


def divide(h: Histogram, divisor: float) -> Histogram:
    """Every count and the sum divided by ``divisor`` (``Div``: by 0, infinities and NaN)."""
    def div(c: float) -> float:
        try:
            return c / divisor
        except ZeroDivisionError:
            return math.nan if c == 0 or math.isnan(c) else math.copysign(math.inf, c) * math.copysign(1.0, divisor)
    return _map(h, div)


def negate(h: Histogram) -> Histogram:
    """Every count and the sum negated."""
    return _map(h, lambda c: -c)


def with_hint(h: Histogram, hint: int) -> Histogram:
    """``h`` with another counter reset hint."""
    return Histogram(h.schema, h.zero_threshold, h.zero_count, h.count, h.sum, h.positive_spans, h.positive_buckets,
                     h.negative_spans, h.negative_buckets, hint, False)


def detect_reset(current: Histogram, previous: Histogram) -> bool:
    """Prometheus's ``DetectReset``: the hint says so, or a count went down (the total, the zero bucket, a
    bucket, or a populated bucket vanished), or the schema went up or the zero threshold down."""
    if current.counter_reset_hint == COUNTER_RESET:
        return True
    if current.counter_reset_hint == NOT_COUNTER_RESET:
        return False
    if current.count < previous.count or current.schema > previous.schema:
        return True
    if current.zero_threshold < previous.zero_threshold:
        return True
    ppos, pneg = sides(previous)
    prev_zero, threshold = _zero_count_for_larger_threshold(previous, ppos, pneg, current.zero_threshold)
    if threshold != current.zero_threshold or current.zero_count < prev_zero:
        return True
    cpos, cneg = sides(current)
    for cur, prev in ((cpos, ppos), (cneg, pneg)):
        cur = _beyond(reduce_buckets(cur, current.schema, current.schema), current.schema, threshold)
        prev = _beyond(reduce_buckets(prev, previous.schema, current.schema), current.schema, threshold)
        for idx, c in prev.items():
            if idx not in cur:
                if c != 0:  # A populated bucket vanished.
                    return True
            elif cur[idx] < c:
                return True
    return False


def _beyond(side: Side, schema: int, threshold: float) -> Side:
    """The buckets whose upper bound is above ``threshold`` (the iterators' ``absoluteStartValue``)."""
    if threshold == 0:
        return side
    return {i: c for i, c in side.items() if bound(i, schema) > threshold}


# -- statistics ------------------------------------------------------------------------------------


class Bucket(NamedTuple):
    lower: float
    upper: float
    count: float


def all_buckets(h: Histogram, *, reverse: bool = False) -> list[Bucket]:
    """The buckets of ``h`` in Prometheus's ``AllBucketIterator`` order (negative from the most negative, the
    zero bucket if populated, positive ascending), bounds clipped at the zero bucket; reversed with ``reverse``."""
    pos, neg = sides(h)
    zt = h.zero_threshold
    out = []
    for idx in sorted(neg, reverse=True):
        lower, upper = -bound(idx, h.schema), -bound(idx - 1, h.schema)
        if -zt < upper < 0:
            upper = -zt
        out.append(Bucket(lower, upper, neg[idx]))
    if h.zero_count > 0:
        out.append(Bucket(-zt, zt, h.zero_count))
    for idx in pos:
        lower, upper = bound(idx - 1, h.schema), bound(idx, h.schema)
        if 0 < lower < zt:
            lower = zt
        out.append(Bucket(lower, upper, pos[idx]))
    if reverse:
        out.reverse()
    return out


def _zero_bucket_bounds(h: Histogram, b: Bucket) -> Bucket:
    if b.lower < 0 < b.upper:
        if not h.negative_buckets and h.positive_buckets:
            return Bucket(0.0, b.upper, b.count)
        if not h.positive_buckets and h.negative_buckets:
            return Bucket(b.lower, 0.0, b.count)
    return b


def quantile(q: float, h: Histogram) -> float:
    """``histogram_quantile`` of a native histogram (2.53: linear interpolation inside the bucket the rank
    falls in; from the upper end for q >= 0.5 unless the sum is NaN)."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if h.count == 0 or math.isnan(q):
        return math.nan
    forward = math.isnan(h.sum) or q < 0.5
    rank = q * h.count if forward else (1 - q) * h.count
    count = 0.0
    bucket = Bucket(0.0, 0.0, 0.0)
    for bucket in all_buckets(h, reverse=not forward):
        count += bucket.count
        if count >= rank:
            break
    bucket = _zero_bucket_bounds(h, bucket)
    count = min(count, h.count)
    if count < rank:
        return bucket.upper
    if forward:
        rank -= count - bucket.count
    else:
        rank = count - rank
    return bucket.lower + (bucket.upper - bucket.lower) * _div(rank, bucket.count)


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def fraction(lower: float, upper: float, h: Histogram) -> float:
    """``histogram_fraction``: the estimated share of observations in ``[lower, upper]`` (linear inside buckets)."""
    if h.count == 0 or math.isnan(lower) or math.isnan(upper):
        return math.nan
    if lower >= upper:
        return 0.0
    rank = lower_rank = upper_rank = 0.0
    lower_set = upper_set = False
    for b in all_buckets(h):
        b = _zero_bucket_bounds(h, b)
        if not lower_set and b.lower >= lower:
            lower_rank, lower_set = rank, True
        if not upper_set and b.lower >= upper:
            upper_rank, upper_set = rank, True
        if lower_set and upper_set:
            break
        if not lower_set and b.lower < lower < b.upper:
            lower_rank, lower_set = rank + b.count * (lower - b.lower) / (b.upper - b.lower), True
        if not upper_set and b.lower < upper < b.upper:
            upper_rank, upper_set = rank + b.count * (upper - b.lower) / (b.upper - b.lower), True
        if lower_set and upper_set:
            break
        rank += b.count
    if not lower_set or lower_rank > h.count:
        lower_rank = h.count
    if not upper_set or upper_rank > h.count:
        upper_rank = h.count
    return (upper_rank - lower_rank) / h.count


def stdvar(h: Histogram) -> float:
    """``histogram_stdvar``: the variance of the observations, each bucket's taken at its geometric middle
    (0 for the zero bucket), Kahan-summed as Prometheus."""
    mean = _div(h.sum, h.count)
    total, comp = 0.0, 0.0
    for b in all_buckets(h):
        if b.count == 0:
            continue
        if b.lower <= 0 <= b.upper:
            val = 0.0
        else:
            val = math.sqrt(b.upper * b.lower)
            if b.upper < 0:
                val = -val
        delta = val - mean
        total, comp = kahan_inc(b.count * delta * delta, total, comp)
    return _div(total + comp, h.count)


def stddev(h: Histogram) -> float:
    """``histogram_stddev``: the square root of :func:`stdvar`."""
    v = stdvar(h)
    return math.sqrt(v) if v >= 0 or math.isnan(v) else math.nan


def kahan_inc(inc: float, total: float, comp: float) -> tuple[float, float]:
    """Prometheus 2.53's ``kahanSumInc`` on Python floats (an infinite term makes the compensation NaN, as there;
    the infinity check came after 2.53)."""
    t = total + inc
    if abs(total) >= abs(inc):
        comp += (total - t) + inc
    else:
        comp += (inc - t) + total
    return t, comp


__all__ = ["add", "all_buckets", "bound", "compact", "detect_reset", "divide", "fraction", "negate", "quantile",
           "scale", "sides", "stddev", "stdvar", "sub", "with_hint"]
