"""``histogram_quantile`` over classic histograms: one series per bucket, its bound in the ``le`` label.

As Prometheus 2.53: the buckets of one histogram are the series with the same labels apart from
``le`` (and the same metric name, so two histograms of different names never mix, though their
results may then clash: an error). A bucket whose ``le`` does not parse as a Go float is ignored,
with a warning annotation. At each step, among the buckets that have a value there (Prometheus's
``bucketQuantile``):

- q NaN gives NaN, q < 0 gives -Inf, q > 1 gives +Inf (and a warning annotation);
- the highest bucket must be ``+Inf``, else NaN; buckets of equal bounds (``0.2`` and ``2e-1``) are
  added up; counts are made monotonic, going up the buckets: a count within a relative 1e-12 of the
  one below it is set to it (float noise of ``rate``), and a count below it is raised to it, which
  adds the info annotation "needed to be fixed for monotonicity" (2.42 only raised, silently);
  fewer than two buckets, or no observation, give NaN;
- the quantile is interpolated linearly inside the bucket where the rank q * count falls, from 0
  for the lowest bucket if its bound is positive (else its bound is the answer); in the ``+Inf``
  bucket, the answer is the next bound below.

The result drops ``__name__`` and ``le``. Native histograms (and classic and native series in one argument)
are :mod:`shardmon.querier.promql.functions_hist`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from shardmon.model.labels import METRIC_NAME, Labels
from shardmon.model.promql.annotations import bad_bucket_label, forced_monotonicity, invalid_quantile
from shardmon.model.promql.value import EvalContext, InstantVector, Scalar
from shardmon.model.samples import F64
from shardmon.querier.promql.labelset import merge_same_labels

BUCKET_LABEL = "le"

# Go's strconv.ParseFloat syntax: decimal, hexadecimal with a binary exponent, inf/infinity
# (signed or not) and nan (unsigned), case-insensitive for the words.
_GO_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_GO_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+\Z")
_GO_SPECIAL = re.compile(r"(?i:([+-]?)(?:inf|infinity)|nan)\Z")


def parse_go_float(text: str) -> float | None:
    """The value of ``text`` as Go's ``strconv.ParseFloat`` reads it, or None where it fails.

    Go fails on a value out of float64's range, where Python would give an infinity.
    """
    special = _GO_SPECIAL.match(text)
    if special:
        if text.lower() == "nan":
            return math.nan
        return -math.inf if special.group(1) == "-" else math.inf
    if _GO_DECIMAL.match(text):
        value = float(text)
    elif _GO_HEX.match(text):
        value = float.fromhex(text)
    else:
        return None
    return None if math.isinf(value) else value


def _histogram_quantile(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    q, vector = args
    assert isinstance(q, Scalar) and isinstance(vector, InstantVector)
    note_invalid_quantile(ctx, q.values)
    histograms: dict[tuple[Labels, str], list[tuple[int, float]]] = {}
    for row, lbls in enumerate(vector.labels):
        bound = parse_go_float(lbls.get(BUCKET_LABEL))
        if bound is None:
            if vector.present[row].any():
                ctx.warn(bad_bucket_label(lbls.name, lbls.get(BUCKET_LABEL)))
            continue
        key = (lbls.without((METRIC_NAME, BUCKET_LABEL)), lbls.name)
        histograms.setdefault(key, []).append((row, bound))
    labels, values, present = [], [], []
    for i, ((lbls, _), buckets) in enumerate(histograms.items()):
        if i % 256 == 0:
            ctx.check_deadline()
        rows = [row for row, _ in buckets]
        bounds = np.array([bound for _, bound in buckets], dtype=F64)
        labels.append(lbls)
        value, has, forced = classic_quantile(q.values, bounds, vector.values[rows], vector.present[rows])
        if forced:
            # As Prometheus 2.53, whose bucket metric has lost its name by then: "for metric name """.
            ctx.info(forced_monotonicity(""))
        values.append(value)
        present.append(has)
    n_steps = vector.values.shape[1]
    if not labels:
        return InstantVector([], np.zeros((0, n_steps), dtype=F64), np.zeros((0, n_steps), dtype=bool))
    return merge_same_labels(labels, np.stack(values), np.stack(present))


def note_invalid_quantile(ctx: EvalContext, q: np.ndarray) -> None:
    """Prometheus 2.53's warning for each q (a step's) that is NaN or outside [0, 1]."""
    bad = q[np.isnan(q) | (q < 0) | (q > 1)]
    for value in dict.fromkeys(bad.tolist()):
        ctx.warn(invalid_quantile(value))


def _monotonic(c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, bool]:
    """Prometheus 2.53's ``ensureMonotonicAndIgnoreSmallDeltas`` at every step, over the present buckets
    going up: a count equal to the last kept one within a relative 1e-12 becomes it, a lower one is
    raised to it (forced); else it is kept. NaN compares false, so a NaN count is kept (and becomes the
    one the next is compared with). Returns the counts and whether any step was forced."""
    if c.shape[0] > 1 and p.all():
        # The usual case, checked at once: every bucket present and each count equal to the one below or
        # clearly above it: nothing to change.
        below, above = c[:-1], c[1:]
        if ((above == below) | ((above > below) & ~_almost_equal(below, above, 1e-12))).all():
            return c.copy(), False
    c = c.copy()
    prev = np.full(c.shape[1], np.nan)
    started = np.zeros(c.shape[1], dtype=bool)
    forced = False
    for j in range(c.shape[0]):
        here = p[j]
        curr = c[j]
        compare = here & started
        same = compare & (curr == prev)
        near = compare & ~same & _almost_equal(prev, curr, 1e-12)
        lower = compare & ~same & ~near & (curr < prev)
        forced = forced or bool(lower.any())
        c[j] = np.where(near | lower, prev, curr)
        keep = here & ~(same | near | lower)
        prev = np.where(keep, curr, prev)
        started |= here
    return c, forced


def _almost_equal(a: np.ndarray, b: np.ndarray, epsilon: float) -> np.ndarray:
    """Prometheus's ``almost.Equal`` elementwise: both NaN, equal, or a relative difference below epsilon."""
    min_normal = 2.2250738585072014e-308
    abs_sum = np.abs(a) + np.abs(b)
    diff = np.abs(a - b)
    tiny = (a == 0) | (b == 0) | (abs_sum < min_normal)
    relative = diff / np.minimum(abs_sum, np.finfo(F64).max)
    return (np.isnan(a) & np.isnan(b)) | (a == b) | np.where(tiny, diff < epsilon * min_normal, relative < epsilon)


def classic_quantile(
    q: np.ndarray, bounds: np.ndarray, counts: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Prometheus's ``bucketQuantile`` at every step: (quantile per step, where there is one), and whether a
    step's counts had to be forced monotonic (for the info annotation; only where the quantile is computed:
    q in [0, 1], a ``+Inf`` bucket). ``bounds[j]`` is bucket j's upper bound, ``counts[j, k]`` its count at
    step k where ``present[j, k]``; a step has a quantile where some bucket has a count."""
    # Sort the buckets by bound (a NaN bound last) and add up those of equal bounds, in that order.
    order = np.argsort(bounds, kind="stable")
    bounds, counts, present = bounds[order], counts[order], present[order]
    new_bound = np.concatenate(([True], bounds[1:] != bounds[:-1]))
    group = np.cumsum(new_bound) - 1
    upper = bounds[new_bound]
    n_buckets, n_steps = upper.shape[0], counts.shape[1]
    c = np.zeros((n_buckets, n_steps), dtype=F64)
    np.add.at(c, group, np.where(present, counts, 0.0))
    p = np.zeros((n_buckets, n_steps), dtype=bool)
    np.logical_or.at(p, group, present)
    has = p.any(axis=0)
    steps = np.arange(n_steps)
    j = np.arange(n_buckets)[:, None]

    # The last bucket that has a count, and for each bucket the one below it that has.
    last = np.max(np.where(p, j, -1), axis=0)
    below = np.maximum.accumulate(np.where(p, j, -1), axis=0)
    below = np.concatenate((np.full((1, n_steps), -1), below[:-1]), axis=0)

    # Monotonic counts, as Prometheus 2.53, only at the steps it gets that far.
    computed = ~np.isnan(q) & (q >= 0) & (q <= 1) & (upper[np.maximum(last, 0)] == np.inf) & has
    c, forced = _monotonic(c, p & computed[None, :])

    observations = c[last, steps]
    rank = q * observations
    # The first bucket (not the +Inf one) whose count reaches the rank; the +Inf one if none does.
    reaches = p & (j < last) & (c >= rank)
    b = np.where(reaches.any(axis=0), np.argmax(reaches, axis=0), last)
    prev = below[b, steps]
    prev_bound = np.where(prev >= 0, upper[np.maximum(prev, 0)], 0.0)
    prev_count = np.where(prev >= 0, c[np.maximum(prev, 0), steps], 0.0)
    end = upper[b]
    count = c[b, steps] - prev_count
    result = prev_bound + (end - prev_bound) * ((rank - prev_count) / count)
    result = np.where((prev < 0) & (end <= 0), end, result)
    # In the +Inf bucket: the bound of the bucket below it.
    result = np.where(b == last, upper[np.maximum(below[last, steps], 0)], result)

    invalid = (upper[np.maximum(last, 0)] != np.inf) | (p.sum(axis=0) < 2) | (observations == 0)
    result = np.where(invalid, np.nan, result)
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    result = np.where(np.isnan(q), np.nan, result)
    return result, has, forced


#: The functions of this module, by PromQL name.
HISTOGRAM_FUNCTIONS = {
    "histogram_quantile": _histogram_quantile,
}
