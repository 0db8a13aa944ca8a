"""PromQL functions of a range vector: ``rate`` and its kin, ``deriv``, ``*_over_time``...

Each takes the evaluation context, its evaluated arguments and their expressions (see
:data:`shardmon.querier.promql.functions.FunctionImpl`), and returns the value at every step. A function sees, for
each series and step, the samples of the window (see :mod:`shardmon.model.promql.window`); it has a value there
only where the window holds enough samples (one, or two for rates and slopes). The result drops
``__name__``, except for ``last_over_time``, and two series left with the same labels are an error,
as in Prometheus 2.x (over the whole query range, as ``Matrix.ContainsSameLabelset``).

``rate``, ``increase`` and ``delta`` follow Prometheus 2.53's ``extrapolatedRate``: the increase
between the first and the last sample of the window, corrected for counter resets (not for
``delta``), extrapolated towards the window's ends when the samples come close enough to them (else
by half the average interval), and for counters never below the counter's zero point. ``rate`` and
``increase`` of a metric whose name does not end in ``_total``, ``_sum``, ``_count`` or ``_bucket``
add 2.53's info annotation (:func:`possible_non_counter`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import without_names
from shardmon.model.promql.annotations import invalid_quantile
from shardmon.model.promql.value import EvalContext, InstantVector, RangeVector, Scalar, check_unique_labels
from shardmon.model.promql.window import (
    Windows,
    fold,
    kahan_inc,
    longest_first,
    prefix_count,
    window_extreme,
    window_sums,
    windows_of,
)
from shardmon.model.samples import F64

# Up to this many counter resets in one window, their values are added one by one, as Prometheus
# does, so the result rounds exactly as Prometheus's; beyond it (a gauge passed to rate over a long
# window), the rest come from a running sum and may differ in the last bits.
_EXACT_RESETS = 64

# The most cells x window length one chunk of quantile_over_time sorts at once.
_QUANTILE_CHUNK = 1 << 22


def extrapolated_rate(ctx: EvalContext, rv: RangeVector, *, is_counter: bool, is_rate: bool) -> InstantVector:
    """Prometheus's ``extrapolatedRate`` for every series and step (``rate``, ``increase``, ``delta``).

    A window with fewer than two samples gives no value. The result drops ``__name__``.
    """
    n_steps = rv.window_ends.shape[0]
    range_end = rv.window_ends
    range_start = range_end - rv.range_ms
    range_seconds = rv.range_ms / 1000
    w = windows_of(ctx, rv)
    ts, vals = w.timestamps, w.values
    cells = w.cells(2)  # Every (series, step) whose window holds two samples or more, at once.
    steps = cells % n_steps
    first, last = w.lo.ravel()[cells], w.hi.ravel()[cells] - 1
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

    # Extrapolate to a window end only when the samples reach close to it (within 1.1 average
    # intervals); otherwise assume the series starts or ends half an interval beyond its samples.
    # (Go's ``>=`` is false for NaN, so a NaN distance is kept, as in Prometheus.)
    threshold = average_between * 1.1
    half = average_between / 2
    duration_to_start = np.where(duration_to_start >= threshold, half, duration_to_start)
    if is_counter:
        # A counter cannot go below zero: if extrapolating backwards would cross zero, stop at the zero
        # point. As Prometheus 2.53, after the half-interval cut (2.42 cut at the zero point first, then
        # at half an interval only when that was still beyond the threshold). The comparisons are false
        # for NaN, as in Prometheus.
        with np.errstate(divide="ignore", invalid="ignore"):
            to_zero = sampled * (first_v / result)
        use_zero = (result > 0) & (first_v >= 0) & (to_zero < duration_to_start)
        duration_to_start = np.where(use_zero, to_zero, duration_to_start)
    duration_to_end = np.where(duration_to_end >= threshold, half, duration_to_end)
    interval = sampled + duration_to_start + duration_to_end
    factor = interval / sampled
    if is_rate:
        factor = factor / range_seconds
    return _result(rv, cells, result * factor)


def _add_resets(vals: np.ndarray, first: np.ndarray, last: np.ndarray, result: np.ndarray) -> np.ndarray:
    """``result`` plus, per window ``[first, last]``, the values lost to counter resets inside it.

    A reset is a sample lower than the one before it; Prometheus then adds the value before the
    reset, assuming the counter restarted from zero. The comparison is false for NaN, as in Go.
    """
    # Over series laid end to end: a "reset" where one series ends and the next begins lies in no window.
    reset_at = np.flatnonzero(vals[1:] < vals[:-1]) + 1
    if reset_at.shape[0] == 0 or first.shape[0] == 0:
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


def _result(rv: RangeVector, cells: np.ndarray, values: np.ndarray, *, keep_name: bool = False) -> InstantVector:
    """The instant vector with ``values`` at the grid's ``cells`` (flat indices), nothing elsewhere."""
    shape = (len(rv.labels), rv.window_ends.shape[0])
    out = np.zeros(shape, dtype=F64)
    present = np.zeros(shape, dtype=bool)
    out.ravel()[cells] = values
    present.ravel()[cells] = True
    labels = list(rv.labels) if keep_name else without_names(rv.labels)
    if not (keep_name or rv.one_name):  # Distinct series of one name stay distinct without it.
        check_unique_labels(labels, present)
    return InstantVector(labels, out, present)


def _at_cells(scalar: Scalar, cells: np.ndarray, n_steps: int) -> np.ndarray:
    """A scalar argument's value at the step of each cell."""
    return scalar.values[cells % n_steps]


# -- rates and differences -------------------------------------------------------------------------


def _rate(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return extrapolated_rate(ctx, args[0], is_counter=True, is_rate=True)


def _increase(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return extrapolated_rate(ctx, args[0], is_counter=True, is_rate=False)


def _delta(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return extrapolated_rate(ctx, args[0], is_counter=False, is_rate=False)


def _instant_value(ctx: EvalContext, rv: RangeVector, *, is_rate: bool) -> InstantVector:
    """``irate`` / ``idelta``: from the last two samples of each window."""
    w = windows_of(ctx, rv)
    cells = w.cells(2)
    last = w.hi.ravel()[cells] - 1
    v1, v0 = w.values[last], w.values[last - 1]
    if not is_rate:
        return _result(rv, cells, v1 - v0)
    # A drop is a counter reset: the counter restarted from zero, so it rose by the last value.
    increase = np.where(v1 < v0, v1, v1 - v0)
    seconds = (w.timestamps[last] - w.timestamps[last - 1]).astype(F64) / 1000
    return _result(rv, cells, increase / seconds)


def _irate(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _instant_value(ctx, args[0], is_rate=True)


def _idelta(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _instant_value(ctx, args[0], is_rate=False)


def _count_in_windows(w: Windows, cells: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """How many samples of each window, after its first, have their flag set."""
    counts = prefix_count(flags)
    return (counts[w.hi.ravel()[cells]] - counts[w.lo.ravel()[cells] + 1]).astype(F64)


def _resets(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    # flags[i]: sample i is below sample i - 1 (across series ends too, but windows never count those).
    flags = np.concatenate(([False], w.values[1:] < w.values[:-1]))
    return _result(rv, cells, _count_in_windows(w, cells, flags))


def _changes(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    now, before = w.values[1:], w.values[:-1]
    # NaN followed by NaN is no change (in Prometheus, though NaN != NaN).
    changed = (now != before) & ~(np.isnan(now) & np.isnan(before))
    flags = np.concatenate(([False], changed))
    return _result(rv, cells, _count_in_windows(w, cells, flags))


# -- regression and smoothing ----------------------------------------------------------------------


def _linear_regression(
    ctx: EvalContext, w: Windows, cells: np.ndarray, intercept_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus's ``linearRegression`` of each cell's window: (slope, intercept at ``intercept_ms``).

    ``cells`` must be longest first (see :func:`~shardmon.model.promql.window.fold`). Least squares over x, the
    seconds from ``intercept_ms``, with Prometheus's Kahan sums in its order, so the results round
    as Prometheus's. A window of equal values has slope 0 (NaN for an infinite value).
    """
    n_cells = cells.shape[0]
    sums = {name: np.zeros(n_cells, dtype=F64) for name in ("n", "x", "y", "xy", "x2")}
    comps = {name: np.zeros(n_cells, dtype=F64) for name in ("x", "y", "xy", "x2")}
    init_y = np.zeros(n_cells, dtype=F64)
    const_y = np.ones(n_cells, dtype=bool)

    def step(j: int, v: np.ndarray, t: np.ndarray, part: slice) -> None:
        if j == 0:
            init_y[part] = v
        else:
            const_y[part] &= v == init_y[part]
        sums["n"][part] += 1.0
        x = (t - intercept_ms[part]).astype(F64) / 1e3
        for name, inc in (("x", x), ("y", v), ("xy", x * v), ("x2", x * x)):
            sums[name][part], comps[name][part] = kahan_inc(inc, sums[name][part], comps[name][part])

    fold(ctx, w, cells, step)
    n = sums["n"]
    sum_x, sum_y = sums["x"] + comps["x"], sums["y"] + comps["y"]
    sum_xy, sum_x2 = sums["xy"] + comps["xy"], sums["x2"] + comps["x2"]
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x
    intercept = sum_y / n - slope * sum_x / n
    infinite = np.isinf(init_y)
    slope = np.where(const_y, np.where(infinite, np.nan, 0.0), slope)
    intercept = np.where(const_y, np.where(infinite, np.nan, init_y), intercept)
    return slope, intercept


def _deriv(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = longest_first(w, w.cells(2))
    # x is counted from the window's first sample, to keep the sums small (Prometheus issue 2674).
    slope, _ = _linear_regression(ctx, w, cells, w.timestamps[w.lo.ravel()[cells]])
    return _result(rv, cells, slope)


def _predict_linear(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv, duration = args[0], args[1]
    w = windows_of(ctx, rv)
    n_steps = rv.window_ends.shape[0]
    cells = longest_first(w, w.cells(2))
    # The prediction is from the evaluation time, which is the step, not the window's end (that
    # one moves with offset and @).
    slope, intercept = _linear_regression(ctx, w, cells, ctx.steps[cells % n_steps])
    return _result(rv, cells, slope * _at_cells(duration, cells, n_steps) + intercept)


def _go_f(value: float) -> str:
    """``value`` as Go's ``%f`` prints it (``+Inf``, not ``inf``)."""
    if np.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:f}"


def _holt_winters(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    """Double exponential smoothing with smoothing factor ``sf`` and trend factor ``tf``, as Prometheus."""
    rv, sf_arg, tf_arg = args
    w = windows_of(ctx, rv)
    n_steps = rv.window_ends.shape[0]
    # Prometheus checks the factors at each step where a series has a sample in its window.
    checked = np.unique(w.cells(1) % n_steps)
    for what, name, factor in (("smoothing", "sf", sf_arg.values), ("trend", "tf", tf_arg.values)):
        bad = checked[(factor[checked] <= 0) | (factor[checked] >= 1)]
        if bad.shape[0]:
            raise QueryExecutionError(
                f"invalid {what} factor. Expected: 0 < {name} < 1, got: {_go_f(float(factor[bad[0]]))}"
            )
    cells = longest_first(w, w.cells(2))
    sf, tf = _at_cells(sf_arg, cells, n_steps), _at_cells(tf_arg, cells, n_steps)
    n_cells = cells.shape[0]
    s0, s1, trend = (np.zeros(n_cells, dtype=F64) for _ in range(3))

    def step(j: int, v: np.ndarray, t: np.ndarray, part: slice) -> None:
        if j == 0:
            s1[part] = v
            return
        if j == 1:
            # The first trend is the first difference.
            trend[part] = v - s1[part]
        else:
            trend[part] = tf[part] * (s1[part] - s0[part]) + (1 - tf[part]) * trend[part]
        smoothed = sf[part] * v + (1 - sf[part]) * (s1[part] + trend[part])
        s0[part], s1[part] = s1[part], smoothed

    fold(ctx, w, cells, step)
    return _result(rv, cells, s1)


# -- aggregations over time ------------------------------------------------------------------------


def _sum_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    return _result(rv, cells, window_sums(ctx, w, cells))


def _avg_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    # As Prometheus's incremental mean: no overflow where the sum would overflow, and a mean of
    # infinities of one sign is that infinity.
    return _result(rv, cells, window_sums(ctx, w, cells, average=True))


def _count_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    return _result(rv, cells, w.counts.ravel()[cells].astype(F64))


def _extreme_over_time(ctx: EvalContext, rv: RangeVector, *, largest: bool) -> InstantVector:
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    lo, hi = w.lo.ravel()[cells], w.hi.ravel()[cells]
    return _result(rv, cells, window_extreme(w.values, lo, hi, largest=largest))


def _min_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _extreme_over_time(ctx, args[0], largest=False)


def _max_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _extreme_over_time(ctx, args[0], largest=True)


def _variance_over_time(ctx: EvalContext, rv: RangeVector) -> tuple[np.ndarray, np.ndarray]:
    """The population variance of each window (cells, values), by Prometheus's Welford-Kahan loop."""
    w = windows_of(ctx, rv)
    cells = longest_first(w, w.cells(1))
    n_cells = cells.shape[0]
    count, mean, c_mean, aux, c_aux = (np.zeros(n_cells, dtype=F64) for _ in range(5))

    def step(j: int, v: np.ndarray, t: np.ndarray, part: slice) -> None:
        count[part] += 1.0
        delta = v - (mean[part] + c_mean[part])
        mean[part], c_mean[part] = kahan_inc(delta / count[part], mean[part], c_mean[part])
        inc = delta * (v - (mean[part] + c_mean[part]))
        aux[part], c_aux[part] = kahan_inc(inc, aux[part], c_aux[part])

    fold(ctx, w, cells, step)
    return cells, (aux + c_aux) / count


def _stdvar_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    cells, variance = _variance_over_time(ctx, args[0])
    return _result(args[0], cells, variance)


def _stddev_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    cells, variance = _variance_over_time(ctx, args[0])
    return _result(args[0], cells, np.sqrt(variance))


def _last_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    # The one function of a range vector that keeps the metric name: it acts like an offset.
    return _result(rv, cells, w.values[w.hi.ravel()[cells] - 1], keep_name=True)


def _present_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    cells = windows_of(ctx, rv).cells(1)
    return _result(rv, cells, np.ones(cells.shape[0], dtype=F64))


def _quantile_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    """Prometheus's ``quantile``: linear interpolation between the samples ranked around q * (n - 1).

    Prometheus sorts NaN before every number; q < 0 gives -Inf, q > 1 +Inf, q NaN gives NaN, each with
    2.53's warning annotation (for a window that has samples).
    """
    q_arg, rv = args
    w = windows_of(ctx, rv)
    n_steps = rv.window_ends.shape[0]
    cells = w.cells(1)
    q = _at_cells(q_arg, cells, n_steps)
    for value in dict.fromkeys(q[np.isnan(q) | (q < 0) | (q > 1)].tolist()):
        ctx.warn(invalid_quantile(value))
    result = np.empty(cells.shape[0], dtype=F64)
    for part, block, n in _sorted_windows(ctx, w, cells):
        result[part] = _block_quantile(q[part], block, n)
    return _result(rv, cells, result)


def _mad_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    """Prometheus 2.53's experimental ``mad_over_time``: the median of the absolute deviations from the
    median (both as ``quantile(0.5, ...)``)."""
    rv = args[0]
    w = windows_of(ctx, rv)
    cells = w.cells(1)
    result = np.empty(cells.shape[0], dtype=F64)
    for part, block, n in _sorted_windows(ctx, w, cells):
        half = np.full(part.shape[0], 0.5)
        median = _block_quantile(half, block, n)
        inside = np.arange(block.shape[1]) < n[:, None]
        deviations = np.where(inside, np.abs(block - median[:, None]), np.nan)
        deviations.sort(axis=1)
        result[part] = _block_quantile(half, deviations, n)
    return _result(rv, cells, result)


def _sorted_windows(ctx: EvalContext, w: Windows, cells: np.ndarray):
    """The windows of ``cells`` sorted, in chunks of similar length: (positions in ``cells``, a matrix of
    their samples each row sorted with NaN last and padded with NaN, their lengths)."""
    lo, hi = w.lo.ravel()[cells], w.hi.ravel()[cells]
    n = hi - lo
    by_length = np.argsort(n, kind="stable")
    rows = max(1, _QUANTILE_CHUNK // max(1, int(n.max(initial=1))))
    for begin in range(0, by_length.shape[0], rows):
        ctx.check_deadline()
        part = by_length[begin : begin + rows]
        width = int(n[part].max())
        cols = np.arange(width)
        idx = lo[part, None] + cols
        inside = cols < n[part, None]
        block = np.where(inside, w.values[np.where(inside, idx, 0)], np.nan)
        block.sort(axis=1)
        yield part, block, n[part]


def _block_quantile(q: np.ndarray, block: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Prometheus's ``quantile(q, values)`` of each row of ``block`` (its ``n`` values sorted, NaN last,
    then padding). Prometheus sorts NaN first: position p of its order is NaN if p < the row's NaNs,
    else the (p - NaNs)-th number."""
    inside = np.arange(block.shape[1]) < n[:, None]
    nans = (np.isnan(block) & inside).sum(axis=1)
    rank = np.clip(q, 0.0, 1.0) * (n - 1)
    rank = np.where(np.isnan(rank), 0.0, rank)
    lower = np.floor(rank).astype(np.int64)
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    rows = np.arange(block.shape[0])
    low_v, up_v = (np.where(p < nans, np.nan, block[rows, np.maximum(p - nans, 0)]) for p in (lower, upper))
    result = low_v * (1 - weight) + up_v * weight
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    return np.where(np.isnan(q), np.nan, result)


#: The functions of this module, by PromQL name.
RANGE_FUNCTIONS = {
    "avg_over_time": _avg_over_time,
    "changes": _changes,
    "count_over_time": _count_over_time,
    "delta": _delta,
    "deriv": _deriv,
    "holt_winters": _holt_winters,
    "idelta": _idelta,
    "increase": _increase,
    "irate": _irate,
    "last_over_time": _last_over_time,
    "mad_over_time": _mad_over_time,
    "max_over_time": _max_over_time,
    "min_over_time": _min_over_time,
    "predict_linear": _predict_linear,
    "present_over_time": _present_over_time,
    "quantile_over_time": _quantile_over_time,
    "rate": _rate,
    "resets": _resets,
    "stddev_over_time": _stddev_over_time,
    "stdvar_over_time": _stdvar_over_time,
    "sum_over_time": _sum_over_time,
}
