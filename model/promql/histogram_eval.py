"""PromQL on values that hold native histograms: the cells and samples that are histograms, as Prometheus 2.53.

Floats stay columnar; a histogram is a Python object in an object array beside them (see
:mod:`shardmon.model.promql.value`), and the operations here loop over the histogram cells only. The rules of
Prometheus 2.53 they follow:

- where an operation reads a float from a histogram sample, it reads 0 (Go's zero ``F`` of a histogram
  ``Sample``): :func:`as_floats` (``clamp``, ``round``, ``scalar``, ``min``/``max``/``topk``/``quantile``,
  comparisons, arithmetic between a float and a histogram other than ``*`` and ``/``);
- the math functions and the ``*_over_time`` that ignore histograms skip them: :func:`skip_histograms`,
  :func:`floats_only`;
- the native ones: :func:`vector_stat` (``histogram_count``... on each histogram cell),
  :func:`range_histograms` (``rate``, ``increase``, ``delta``, ``sum_over_time``, ``avg_over_time``,
  ``last_over_time``, ``resets`` on histogram windows), :func:`aggregate_histograms` (``sum``, ``avg``),
  :func:`elementwise` (``+``, ``-``, ``*``, ``/`` between histograms and floats).

Annotations are 2.53's texts (``util/annotations``), given position-free through ``ctx.warn``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shardmon.model.histogram import GAUGE_TYPE, Histogram
from shardmon.model.labels import METRIC_NAME, Labels
from shardmon.model.promql import histogram_ops as ops
from shardmon.model.promql.value import EvalContext, InstantVector, RangeVector
from shardmon.model.promql.window import windows_of
from shardmon.model.samples import F64

WARNING = "PromQL warning"


def mixed_floats_histograms(metric_name: str) -> str:
    """``NewMixedFloatsHistogramsWarning``."""
    return f'{WARNING}: encountered a mix of histograms and floats for metric name "{_go(metric_name)}"'


MIXED_FLOATS_HISTOGRAMS_AGG = f"{WARNING}: encountered a mix of histograms and floats for aggregation"


def mixed_classic_native(metric_name: str) -> str:
    """``NewMixedClassicNativeHistogramsWarning``."""
    return f'{WARNING}: vector contains a mix of classic and native histograms for metric name "{_go(metric_name)}"'


def not_counter(metric_name: str) -> str:
    """``NewNativeHistogramNotCounterWarning``."""
    return f'{WARNING}: this native histogram metric is not a counter: "{_go(metric_name)}"'


def not_gauge(metric_name: str) -> str:
    """``NewNativeHistogramNotGaugeWarning``."""
    return f'{WARNING}: this native histogram metric is not a gauge: "{_go(metric_name)}"'


def _go(text: str) -> str:
    """The inside of Go's ``%q`` for the common case (quotes and backslashes escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _name(labels: Labels) -> str:
    return labels.get(METRIC_NAME) or ""


# -- cells -------------------------------------------------------------------------------------------


def hist_mask(hists: np.ndarray) -> np.ndarray:
    """Where an object array of histograms holds one."""
    return hists != None  # noqa: E711 - elementwise


def as_floats(vector: InstantVector) -> InstantVector:
    """``vector`` with every histogram cell a float 0 (what 2.53 reads as a histogram sample's float)."""
    if vector.histograms is None:
        return vector
    values = np.where(hist_mask(vector.histograms), 0.0, vector.values)
    return vector._replace(values=values, histograms=None)


def skip_histograms(vector: InstantVector) -> InstantVector:
    """``vector`` without its histogram cells (functions that process only float samples)."""
    if vector.histograms is None:
        return vector
    return vector._replace(present=vector.present & ~hist_mask(vector.histograms), histograms=None)


def floats_only(rv: RangeVector) -> RangeVector:
    """``rv`` without its histogram samples (the ``*_over_time`` functions that ignore histograms)."""
    if rv.histograms is None:
        return rv
    keep = ~hist_mask(rv.histograms)
    kept = np.concatenate(([0], np.cumsum(keep)))
    return rv._replace(timestamps=rv.timestamps[keep], values=rv.values[keep], offsets=kept[rv.offsets],
                       histograms=None)


def with_histograms(vector: InstantVector, hists: np.ndarray) -> InstantVector:
    """``vector`` with ``hists`` as its histograms (None when none is left), values NaN in their cells."""
    mask = hist_mask(hists) & vector.present
    if not mask.any():
        return vector._replace(histograms=None)
    hists = np.where(mask, hists, None)
    return vector._replace(values=np.where(mask, np.nan, vector.values), histograms=hists)


def empty_hists(shape: tuple[int, int]) -> np.ndarray:
    return np.full(shape, None, dtype=object)


def vector_stat(vector: InstantVector, stat: Callable[[Histogram], float]) -> InstantVector:
    """``stat`` of each histogram cell, floats dropped (``histogram_count``, ``histogram_sum``...). The caller
    drops ``__name__``."""
    shape = vector.values.shape
    out = np.zeros(shape, dtype=F64)
    if vector.histograms is None:
        return vector._replace(values=out, present=np.zeros(shape, dtype=bool), histograms=None, order=None)
    mask = hist_mask(vector.histograms) & vector.present
    for i, k in zip(*np.nonzero(mask)):
        out[i, k] = stat(vector.histograms[i, k])
    return vector._replace(values=out, present=mask, histograms=None, order=None)


# -- range vectors ------------------------------------------------------------------------------------


def range_histograms(ctx: EvalContext, rv: RangeVector, name: str, *, floats: InstantVector | None) -> InstantVector:
    """A range function over windows that hold histograms, as 2.53; ``floats`` is the float implementation's
    result (computed on the float samples alone), used where a window holds floats only.

    ``rate``/``increase``/``delta``: a window with floats and histograms gives nothing and a warning; with
    two histograms or more, the extrapolated difference (:func:`_histogram_rate`). ``sum_over_time``,
    ``avg_over_time``: the same mixing rule, then the histograms' sum or running mean. ``last_over_time``: the
    last sample whatever it is. ``resets``: float resets plus histogram resets (``DetectReset``).
    ``count_over_time`` and ``present_over_time`` count every sample and need nothing here.
    """
    w = windows_of(ctx, rv)
    n_series, n_steps = w.lo.shape
    hists = rv.histograms
    is_hist = hist_mask(hists)
    hist_before = np.concatenate(([0], np.cumsum(is_hist)))
    n_hist = hist_before[w.hi] - hist_before[w.lo]
    n_all = w.hi - w.lo
    if floats is None:
        values = np.zeros((n_series, n_steps), dtype=F64)
        present = np.zeros((n_series, n_steps), dtype=bool)
        labels = list(rv.labels)
    else:
        values, present, labels = floats.values.copy(), floats.present.copy(), floats.labels
    out = empty_hists((n_series, n_steps))
    if name == "resets":
        _add_histogram_resets(rv, w, n_hist, values, present)
        return InstantVector(labels, values, present)
    mixed = (n_hist > 0) & (n_hist < n_all)
    if name in ("rate", "increase", "delta", "sum_over_time", "avg_over_time"):
        for i in np.unique(np.nonzero(mixed)[0]).tolist():
            ctx.warn(mixed_floats_histograms(_name(rv.labels[i])))
        present &= ~mixed
    for i, k in zip(*np.nonzero(n_hist > 0)):
        lo, hi = int(w.lo[i, k]), int(w.hi[i, k])
        if name == "last_over_time":
            if is_hist[hi - 1]:
                out[i, k], present[i, k] = hists[hi - 1], True
            continue
        if mixed[i, k]:
            continue
        window = list(hists[lo:hi])
        if name in ("rate", "increase", "delta"):
            if len(window) < 2:
                continue
            h = _histogram_rate(ctx, window, is_counter=name != "delta", metric=_name(rv.labels[i]))
            if h is None:
                continue
            ts = rv.timestamps
            h = ops.scale(h, _extrapolation(int(ts[lo]), int(ts[hi - 1]), len(window) - 1,
                                            int(rv.window_ends[k]), rv.range_ms, is_rate=name == "rate"))
        elif name == "sum_over_time":
            h = window[0]
            for other in window[1:]:
                h = ops.add(h, other)
        elif name == "avg_over_time":
            h = _running_mean(window)
        else:
            raise AssertionError(name)
        out[i, k], present[i, k] = h.to_float(), True
    return with_histograms(InstantVector(labels, values, present), out)


def _add_histogram_resets(rv: RangeVector, w, n_hist, values, present) -> None:
    hists = rv.histograms
    for i, k in zip(*np.nonzero(n_hist > 1)):
        window = [h for h in hists[int(w.lo[i, k]):int(w.hi[i, k])] if h is not None]
        resets = sum(1 for prev, cur in zip(window, window[1:]) if ops.detect_reset(cur, prev))
        values[i, k] = (values[i, k] if present[i, k] else 0.0) + resets
        present[i, k] = True
    # A window of one histogram (and no two floats) still counts: zero resets.
    one = (n_hist == 1) & ~present & (w.hi > w.lo)
    values[one], present[one] = 0.0, True


def _running_mean(window: list[Histogram]) -> Histogram:
    """avg_over_time's and avg's mean: ``mean += h/count - mean/count``, as 2.53."""
    mean = window[0]
    for count, h in enumerate(window[1:], start=2):
        mean = ops.add(mean, ops.sub(ops.divide(h, count), ops.divide(mean, count)))
    return mean


def _histogram_rate(ctx: EvalContext, points: list[Histogram], *, is_counter: bool, metric: str) -> Histogram | None:
    """2.53's ``histogramRate``: last minus first at the lowest schema, counter resets added back, a gauge
    histogram result compacted."""
    prev, last = points[0], points[-1]
    min_schema = min(prev.schema, last.schema)
    for curr in points[1:-1]:
        if not is_counter:
            continue
        if curr.counter_reset_hint == GAUGE_TYPE:
            ctx.warn(not_counter(metric))
        min_schema = min(min_schema, curr.schema)
    h = ops.sub(_to_schema(last, min_schema), prev)
    if is_counter:
        for curr in points[1:]:
            if ops.detect_reset(curr, prev):
                h = ops.add(h, prev)
            prev = curr
    elif points[0].counter_reset_hint != GAUGE_TYPE or points[-1].counter_reset_hint != GAUGE_TYPE:
        ctx.warn(not_gauge(metric))
    return ops.compact(ops.with_hint(h, GAUGE_TYPE))


def _to_schema(h: Histogram, schema: int) -> Histogram:
    if h.schema == schema:
        return h
    # Adding an empty histogram of the lower schema reduces the resolution (CopyToSchema).
    empty = Histogram(schema, h.zero_threshold, 0.0, 0.0, 0.0, counter_reset_hint=h.counter_reset_hint)
    return ops.add(h.to_float(), empty)


def _extrapolation(first_t: int, last_t: int, n_minus_one: int, range_end: int, range_ms: int, *,
                   is_rate: bool) -> float:
    """2.53's ``extrapolatedRate`` factor for a histogram result (no zero-point correction for histograms)."""
    range_start = range_end - range_ms
    to_start = (first_t - range_start) / 1000
    to_end = (range_end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / n_minus_one
    threshold = average * 1.1
    interval = sampled
    interval += average / 2 if to_start >= threshold else to_start
    interval += average / 2 if to_end >= threshold else to_end
    factor = interval / sampled if sampled else float("nan")
    if is_rate:
        factor /= range_ms / 1000
    return factor


# -- aggregations -----------------------------------------------------------------------------------


def aggregate_histograms(ctx: EvalContext, op: str, group: np.ndarray, n_groups: int, vector: InstantVector,
                         floats: InstantVector) -> InstantVector:
    """``sum``/``avg`` over a vector with histograms: ``floats`` is the float result over the float cells; a group
    with histograms only gets their sum or mean (compacted), one mixing both nothing and 2.53's warning."""
    hists = vector.histograms
    is_hist = hist_mask(hists) & vector.present
    n_steps = vector.values.shape[1]
    has_hist = np.zeros((n_groups, n_steps), dtype=bool)
    np.logical_or.at(has_hist, group, is_hist)
    has_float = np.zeros((n_groups, n_steps), dtype=bool)
    np.logical_or.at(has_float, group, vector.present & ~is_hist)
    mixed = has_hist & has_float
    if mixed.any():
        ctx.warn(MIXED_FLOATS_HISTOGRAMS_AGG)
    out = empty_hists((n_groups, n_steps))
    rows_of: list[list[int]] = [[] for _ in range(n_groups)]
    for row, g in enumerate(group.tolist()):
        rows_of[g].append(row)
    for g, k in zip(*np.nonzero(has_hist & ~mixed)):
        window = [hists[r, k] for r in rows_of[g] if is_hist[r, k]]
        if op == "sum":
            h = window[0]
            for other in window[1:]:
                h = ops.add(h, other)
        else:
            h = _running_mean(window)
        out[g, k] = ops.compact(h.to_float())
    present = (floats.present | has_hist) & ~mixed
    return with_histograms(floats._replace(present=present), out)


# -- binary operators --------------------------------------------------------------------------------


def elementwise(op: str, lf: np.ndarray, lh: np.ndarray | None, rf: np.ndarray, rh: np.ndarray | None,
                keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.53's ``vectorElemBinop`` on the cells ``keep`` where a histogram is involved: ``h + h``, ``h - h``
    (compacted), ``h * f``, ``f * h``, ``h / f`` give histograms; the others read a histogram as 0.

    Returns the histograms of the result (None where a float) and the cells whose float the caller computes
    with histograms read as 0 (all others)."""
    shape = keep.shape
    lmask = hist_mask(lh) if lh is not None else np.zeros(shape, dtype=bool)
    rmask = hist_mask(rh) if rh is not None else np.zeros(shape, dtype=bool)
    out = empty_hists(shape)
    if op in ("+", "-"):
        both = keep & lmask & rmask
        for i, k in zip(*np.nonzero(both)):
            h = ops.add(lh[i, k], rh[i, k]) if op == "+" else ops.sub(lh[i, k], rh[i, k])
            out[i, k] = ops.compact(h.to_float())
    elif op == "*":
        for i, k in zip(*np.nonzero(keep & lmask & ~rmask)):
            out[i, k] = ops.scale(lh[i, k], float(rf[i, k]))
        for i, k in zip(*np.nonzero(keep & rmask & ~lmask)):
            out[i, k] = ops.scale(rh[i, k], float(lf[i, k]))
    elif op == "/":
        for i, k in zip(*np.nonzero(keep & lmask & ~rmask)):
            out[i, k] = ops.divide(lh[i, k], float(rf[i, k]))
    return out, ~hist_mask(out)


__all__ = ["aggregate_histograms", "as_floats", "elementwise", "floats_only", "hist_mask", "range_histograms",
           "skip_histograms", "vector_stat", "with_histograms"]
