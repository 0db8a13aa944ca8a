"""``histogram_quantile`` over classic histograms: one series per bucket, its bound in the ``le`` label.

As Prometheus 2.x: the buckets of one histogram are the series with the same labels apart from
``le`` (and the same metric name, so two histograms of different names never mix, though their
results may then clash: an error). A bucket whose ``le`` does not parse as a Go float is ignored. At
each step, among the buckets that have a value there (Prometheus's ``bucketQuantile``):

- q NaN gives NaN, q < 0 gives -Inf, q > 1 gives +Inf;
- the highest bucket must be ``+Inf``, else NaN; buckets of equal bounds (``0.2`` and ``2e-1``) are
  added up; counts are made monotonic (a count below the one of a lower bucket is raised to it);
  fewer than two buckets, or no observation, give NaN;
- the quantile is interpolated linearly inside the bucket where the rank q * count falls, from 0
  for the lowest bucket if its bound is positive (else its bound is the answer); in the ``+Inf``
  bucket, the answer is the next bound below.

The result drops ``__name__`` and ``le``. Native histograms are not supported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from shardmon.model.labels import METRIC_NAME, Labels
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
    histograms: dict[tuple[Labels, str], list[tuple[int, float]]] = {}
    for row, lbls in enumerate(vector.labels):
        bound = parse_go_float(lbls.get(BUCKET_LABEL))
        if bound is None:
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
        value, has = bucket_quantile(q.values, bounds, vector.values[rows], vector.present[rows])
        values.append(value)
        present.append(has)
    n_steps = vector.values.shape[1]
    if not labels:
        return InstantVector([], np.zeros((0, n_steps), dtype=F64), np.zeros((0, n_steps), dtype=bool))
    return merge_same_labels(labels, np.stack(values), np.stack(present))


def bucket_quantile(
    q: np.ndarray, bounds: np.ndarray, counts: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus's ``bucketQuantile`` at every step: (quantile per step, where there is one).

    ``bounds[j]`` is bucket j's upper bound, ``counts[j, k]`` its count at step k where
    ``present[j, k]``. A step has a quantile where some bucket has a count.
    """
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

    # The last and the first bucket that has a count, and for each bucket the one below it that has.
    last = np.max(np.where(p, j, -1), axis=0)
    first = np.argmax(p, axis=0)
    below = np.maximum.accumulate(np.where(p, j, -1), axis=0)
    below = np.concatenate((np.full((1, n_steps), -1), below[:-1]), axis=0)

    # Monotonic counts: each count raised to the highest count below it. As in Prometheus, a NaN
    # count is left as it is and changes nothing, and a NaN lowest count turns the fix off.
    real = p & ~np.isnan(c)
    highest = np.maximum.accumulate(np.where(real, c, -np.inf), axis=0)
    fix = real & ~np.isnan(c[first, steps])
    c = np.where(fix, highest, c)

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
    return result, has


#: The functions of this module, by PromQL name.
HISTOGRAM_FUNCTIONS = {
    "histogram_quantile": _histogram_quantile,
}
