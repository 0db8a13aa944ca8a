"""PromQL functions, as a table from name to implementation.

An implementation receives the evaluation context and its evaluated arguments (a
:class:`~querier.value.RangeVector` for a range-vector argument) and returns a value over the whole
grid. A function missing from :data:`FUNCTIONS` is rejected as not supported yet, so adding one is
adding an entry.

``rate`` and ``increase`` follow Prometheus 2.x's ``extrapolatedRate``: the increase between the
first and the last sample of the window, corrected for counter resets, extrapolated towards the
window's ends when the samples come close enough to them, and never below a counter's zero point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model.labels import METRIC_NAME
from model.samples import F64
from querier.value import EvalContext, InstantVector, RangeVector, Value, check_unique_labels

FunctionImpl = Callable[[EvalContext, Sequence[Value]], Value]


# Up to this many counter resets in one window, their values are added one by one, as Prometheus
# does, so the result rounds exactly as Prometheus's; beyond it (a gauge passed to rate over a long
# window), the rest come from a running sum and may differ in the last bits.
_EXACT_RESETS = 64


def extrapolated_rate(
    ctx: EvalContext, rv: RangeVector, *, is_counter: bool, is_rate: bool
) -> InstantVector:
    """Prometheus's ``extrapolatedRate`` for every series and step (``rate``, ``increase``; ``delta`` later).

    A window with fewer than two samples gives no value. The result drops ``__name__``.
    """
    n_series, n_steps = len(rv.labels), rv.window_ends.shape[0]
    out = np.zeros((n_series, n_steps), dtype=F64)
    present = np.zeros((n_series, n_steps), dtype=bool)
    range_end = rv.window_ends
    range_start = range_end - rv.range_ms
    range_seconds = rv.range_ms / 1000
    for row in range(n_series):
        if row % 256 == 0:
            ctx.check_deadline()
        ts, vals = rv.timestamps[row], rv.values[row]
        if ts.shape[0] < 2:
            continue
        lo = np.searchsorted(ts, range_start, side="left")
        hi = np.searchsorted(ts, range_end, side="right")
        steps = np.flatnonzero(hi - lo >= 2)
        if steps.shape[0] == 0:
            continue
        first, last = lo[steps], hi[steps] - 1
        first_v = vals[first]
        result = vals[last] - first_v
        if is_counter:
            result = _add_resets(vals, first, last, result)

        t_first = ts[first]
        t_last = ts[last]
        duration_to_start = (t_first - range_start[steps]).astype(F64) / 1000
        duration_to_end = (range_end[steps] - t_last).astype(F64) / 1000
        sampled = (t_last - t_first).astype(F64) / 1000
        average_between = sampled / (last - first).astype(F64)

        if is_counter:
            # A counter cannot go below zero: if extrapolating backwards would cross zero, stop at
            # the zero point. The comparisons are false for NaN, as in Prometheus.
            to_zero = sampled * (first_v / result)
            use_zero = (result > 0) & (first_v >= 0) & (to_zero < duration_to_start)
            duration_to_start = np.where(use_zero, to_zero, duration_to_start)

        # Extrapolate to a window end only when the samples reach close to it (within 1.1 average
        # intervals); otherwise assume the series starts or ends half an interval beyond its samples.
        threshold = average_between * 1.1
        half = average_between / 2
        interval = sampled + np.where(duration_to_start < threshold, duration_to_start, half)
        interval = interval + np.where(duration_to_end < threshold, duration_to_end, half)
        factor = interval / sampled
        if is_rate:
            factor = factor / range_seconds
        out[row, steps] = result * factor
        present[row, steps] = True
    labels = [lbls.without((METRIC_NAME,)) for lbls in rv.labels]
    check_unique_labels(labels, present)
    return InstantVector(labels, out, present)


def _add_resets(vals: np.ndarray, first: np.ndarray, last: np.ndarray, result: np.ndarray) -> np.ndarray:
    """``result`` plus, per window ``[first, last]``, the values lost to counter resets inside it.

    A reset is a sample lower than the one before it; Prometheus then adds the value before the
    reset, assuming the counter restarted from zero. The comparison is false for NaN, as in Go.
    """
    reset_at = np.flatnonzero(vals[1:] < vals[:-1]) + 1
    if reset_at.shape[0] == 0:
        return result
    # The resets of window k are reset_at[lo[k] : lo[k] + count[k]] (those after its first sample).
    lo = np.searchsorted(reset_at, first, side="right")
    count = np.searchsorted(reset_at, last, side="right") - lo
    result = result.copy()
    # One pass per reset rank, across all windows at once: the j-th reset of every window that has
    # one. This is Prometheus's left-to-right sum, so even sums of huge values round identically.
    for j in range(min(int(count.max()), _EXACT_RESETS)):
        has = count > j
        result[has] += vals[reset_at[lo[has] + j] - 1]
    many = np.flatnonzero(count > _EXACT_RESETS)
    if many.shape[0]:
        lost = np.concatenate(([0.0], np.cumsum(vals[reset_at - 1])))  # lost[i]: the first i resets
        begin, end = lo[many] + _EXACT_RESETS, lo[many] + count[many]
        rest = lost[end] - lost[begin]
        # An infinite value before a reset makes the running sum infinite and the difference NaN:
        # those windows are summed one reset at a time.
        for k in np.flatnonzero(~np.isfinite(rest)).tolist():
            rest[k] = 0.0
            for i in range(int(begin[k]), int(end[k])):
                rest[k] += vals[reset_at[i] - 1]
        result[many] += rest
    return result


def _rate(ctx: EvalContext, args: Sequence[Value]) -> Value:
    return extrapolated_rate(ctx, _range_arg(args), is_counter=True, is_rate=True)


def _increase(ctx: EvalContext, args: Sequence[Value]) -> Value:
    return extrapolated_rate(ctx, _range_arg(args), is_counter=True, is_rate=False)


def _range_arg(args: Sequence[Value]) -> RangeVector:
    # The parser has checked the argument types, so anything else here is a bug of the engine.
    arg = args[0]
    assert isinstance(arg, RangeVector), type(arg)
    return arg


#: The implemented functions, by PromQL name.
FUNCTIONS: dict[str, FunctionImpl] = {
    "increase": _increase,
    "rate": _rate,
}
