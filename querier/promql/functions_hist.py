"""Function calls whose arguments hold native histograms, and the native-histogram functions.

:func:`call_with_histograms` is what the engine calls instead of a function's float implementation when an
argument holds histograms: each function gets its 2.53 treatment of them (see
:mod:`shardmon.model.promql.histogram_eval`), its float samples still going through the float implementation.
:data:`NATIVE_FUNCTIONS` are ``histogram_count``, ``histogram_sum``, ``histogram_avg``, ``histogram_stddev``,
``histogram_stdvar`` and ``histogram_fraction`` (nothing from floats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shardmon.model.labels import without_names
from shardmon.model.promql import histogram_ops as ops
from shardmon.model.promql.histogram_eval import (
    as_floats,
    floats_only,
    hist_mask,
    mixed_classic_native,
    range_histograms,
    skip_histograms,
    vector_stat,
    with_histograms,
)
from shardmon.model.promql.value import EvalContext, InstantVector, RangeVector, Value
from shardmon.querier.promql.labelset import merge_same_labels

#: Range functions with a histogram form in 2.53 (count_over_time, present_over_time and absent_over_time count
#: every sample as they are).
_RANGE_NATIVE = frozenset({"rate", "increase", "delta", "sum_over_time", "avg_over_time", "last_over_time", "resets"})
_COUNTING = frozenset({"count_over_time", "present_over_time", "absent_over_time"})
#: Functions that keep each sample as it is (histograms too).
_KEEPING = frozenset({"sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "label_replace", "label_join"})
#: 2.53's ``simpleFunc``: float samples only.
_SIMPLE = frozenset({"abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos", "cosh", "deg", "exp",
                     "floor", "ln", "log10", "log2", "rad", "sgn", "sin", "sinh", "sqrt", "tan", "tanh"})


def _stat(stat) -> callable:
    def impl(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
        vector = vector_stat(args[0], stat)
        return merge_same_labels(without_names(vector.labels), vector.values, vector.present)
    return impl


def _histogram_fraction(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    lower, upper, vector = args
    shape = vector.values.shape
    out = np.zeros(shape, dtype=np.float64)
    mask = np.zeros(shape, dtype=bool)
    if vector.histograms is not None:
        mask = hist_mask(vector.histograms) & vector.present
        for i, k in zip(*np.nonzero(mask)):
            out[i, k] = ops.fraction(float(lower.values[k]), float(upper.values[k]), vector.histograms[i, k])
    return merge_same_labels(without_names(vector.labels), out, mask)


def _avg(h) -> float:
    try:
        return h.sum / h.count
    except ZeroDivisionError:
        return math.nan if h.sum == 0 or math.isnan(h.sum) else math.copysign(math.inf, h.sum)


#: The functions of native histograms only.
NATIVE_FUNCTIONS = {
    "histogram_count": _stat(lambda h: h.count),
    "histogram_sum": _stat(lambda h: h.sum),
    "histogram_avg": _stat(_avg),
    "histogram_stddev": _stat(ops.stddev),
    "histogram_stdvar": _stat(ops.stdvar),
    "histogram_fraction": _histogram_fraction,
}


def has_histograms(args: Sequence[Value | str]) -> bool:
    """Whether any argument holds a histogram."""
    return any(getattr(a, "histograms", None) is not None for a in args)


def call_with_histograms(ctx: EvalContext, name: str, impl, args: list, exprs: Sequence) -> Value:
    """Call function ``name`` (float implementation ``impl``) on arguments of which some hold histograms."""
    if name in NATIVE_FUNCTIONS:
        return impl(ctx, args, exprs)
    if name == "histogram_quantile":
        return _histogram_quantile(ctx, impl, args, exprs)
    rv_at = next((i for i, a in enumerate(args) if isinstance(a, RangeVector)), None)
    if rv_at is not None:
        rv = args[rv_at]
        if name in _COUNTING:
            return impl(ctx, args, exprs)
        float_args = list(args)
        float_args[rv_at] = floats_only(rv)
        floats = impl(ctx, float_args, exprs)
        if name in _RANGE_NATIVE:
            return range_histograms(ctx, rv, name, floats=floats)
        return floats  # The others ignore histograms (a window of histograms only gives nothing).
    vector = next(a for a in args if isinstance(a, InstantVector) and a.histograms is not None)
    at = args.index(vector)
    if name in _SIMPLE:
        args[at] = skip_histograms(vector)
        return impl(ctx, args, exprs)
    if name in _KEEPING:
        return _keeping(ctx, impl, args, at, exprs)
    if name == "timestamp":
        args[at] = vector._replace(histograms=None)
        return impl(ctx, args, exprs)
    args[at] = as_floats(vector)  # clamp, round, scalar, the date functions...: a histogram reads as 0
    return impl(ctx, args, exprs)


def _keeping(ctx: EvalContext, impl, args: list, at: int, exprs: Sequence) -> InstantVector:
    """A function that keeps samples (sort, label_*): run on the floats (histograms as 0), then the histograms
    put back in their cells, found by a row index carried as the values."""
    vector = args[at]
    result = impl(ctx, [*args[:at], as_floats(vector), *args[at + 1:]], exprs)
    rows = np.broadcast_to(np.arange(len(vector.labels), dtype=np.float64)[:, None], vector.values.shape)
    # The same call on the row numbers tells which input row each output cell came from.
    located = impl(ctx, [*args[:at], vector._replace(values=np.ascontiguousarray(rows), histograms=None),
                         *args[at + 1:]], exprs)
    src = located.values.astype(np.int64)
    hists = vector.histograms[src, np.arange(src.shape[1])[None, :]] if src.size else None
    if hists is None:
        return result
    return with_histograms(result, np.where(result.present, hists, None))


def _histogram_quantile(ctx: EvalContext, impl, args: list, exprs: Sequence) -> InstantVector:
    """Classic buckets by the float implementation, native histograms here; a native histogram whose labels are
    those of a classic one's buckets (``le`` aside) at a step: neither answered, 2.53's warning."""
    q, vector = args
    shape = vector.values.shape
    is_hist = hist_mask(vector.histograms) & vector.present
    classic = impl(ctx, [q, skip_histograms(vector)], exprs)
    native = np.zeros(shape, dtype=np.float64)
    for i, k in zip(*np.nonzero(is_hist)):
        native[i, k] = ops.quantile(float(q.values[k]), vector.histograms[i, k])
    labels = list(classic.labels)
    index = {lbls: r for r, lbls in enumerate(labels)}
    values, present = classic.values, classic.present
    extra_labels, extra_values, extra_present = [], [], []
    for i, lbls in enumerate(vector.labels):
        if not is_hist[i].any():
            continue
        out = without_names([lbls])[0]
        r = index.get(out)
        clash = present[r] & is_hist[i] if r is not None else np.zeros(shape[1], dtype=bool)
        if clash.any():
            ctx.warn(mixed_classic_native(lbls.get("__name__") or ""))
            present[r] &= ~clash
        extra_labels.append(out)
        extra_values.append(native[i])
        extra_present.append(is_hist[i] & ~clash)
    if not extra_labels:
        return classic
    return merge_same_labels(labels + extra_labels, np.vstack([values, np.array(extra_values)]),
                             np.vstack([present, np.array(extra_present)]))


__all__ = ["NATIVE_FUNCTIONS", "call_with_histograms", "has_histograms"]
