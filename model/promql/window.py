"""The windows of a range vector, and reductions over every window at once.

A range-vector function looks, for each series and step, at the samples of one window. Here all the
series' samples are laid end to end in flat arrays, and each window is a slice ``[lo, hi)`` of them,
so a reduction runs over every (series, step) cell of the grid in one numpy pass. The cells a
function computes (those whose window holds enough samples) are picked as flat indices into the
``[n_series, n_steps]`` grid.

Three kinds of reductions, by what they need:

- running sums (``cumsum``) for what can be subtracted: counts, sums, averages. A sum window costs
  O(1) whatever its length, and stays accurate (see :func:`window_sums`, which falls back to
  Prometheus's loop for the rare windows where it could not be sure);
- ``reduceat`` over the windows for ``min`` and ``max``, in C;
- a fold (:func:`fold`) for what Prometheus computes sample by sample with rounding that matters
  (Welford's variance, the linear regression, Holt-Winters): one numpy step per sample position,
  over all the cells whose window is at least that long, so each cell sees its samples in order
  and rounds as Prometheus does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from shardmon.model.promql.value import EvalContext, RangeVector
from shardmon.model.samples import F64, I64


class Windows(NamedTuple):
    """Every window of a range vector, as slices of its samples laid end to end.

    Series i's samples are ``timestamps[offsets[i]:offsets[i+1]]`` (and ``values``); the window of
    series i at step k is ``[lo[i, k], hi[i, k])``, empty where ``lo == hi``.
    """

    timestamps: np.ndarray  # int64 [n_samples]
    values: np.ndarray  # float64 [n_samples]
    offsets: np.ndarray  # int64 [n_series + 1]
    lo: np.ndarray  # int64 [n_series, n_steps]
    hi: np.ndarray  # int64 [n_series, n_steps]

    @property
    def counts(self) -> np.ndarray:
        """The number of samples in each window, int64 [n_series, n_steps]."""
        return self.hi - self.lo

    def cells(self, min_samples: int) -> np.ndarray:
        """Flat indices (into the grid, row-major) of the windows with at least ``min_samples``."""
        return np.flatnonzero(self.counts.ravel() >= min_samples)


def searchsorted_rows(timestamps: np.ndarray, offsets: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """``np.searchsorted`` of ``queries`` in every series of samples laid end to end, in one call.

    Series i is ``timestamps[offsets[i]:offsets[i+1]]`` (sorted). Returns int64 [n_series, n_queries]
    of indices into the flat array: what ``searchsorted(series_i, q, side) + offsets[i]`` gives. Each
    sample is keyed by ``row * span + (t - base)`` with span wider than every time involved, so the
    keys of all series are sorted together and one search answers every (series, query) pair.
    """
    n_series = offsets.shape[0] - 1
    queries = np.asarray(queries, dtype=I64)
    if n_series == 0 or queries.shape[0] == 0:
        return np.zeros((n_series, queries.shape[0]), dtype=I64)
    n = timestamps.shape[0]
    base = int(queries.min()) if n == 0 else min(int(timestamps.min()), int(queries.min()))
    top = int(queries.max()) if n == 0 else max(int(timestamps.max()), int(queries.max()))
    span = top - base + 1
    if span * (n_series + 1) >= 2**62:  # Times too far apart to key together: one search per series.
        return np.stack([np.searchsorted(timestamps[offsets[i]:offsets[i + 1]], queries, side=side) + offsets[i]
                         for i in range(n_series)]).astype(I64, copy=False)
    rows = np.repeat(np.arange(n_series, dtype=I64), np.diff(offsets))
    keys = rows * span + (timestamps - base)
    wanted = np.arange(n_series, dtype=I64)[:, None] * span + (queries - base)[None, :]
    return np.searchsorted(keys, wanted, side=side).astype(I64, copy=False)


def windows_of(ctx: EvalContext, rv: RangeVector) -> Windows:
    """Find each step's window in each series of ``rv``."""
    ends = rv.window_ends
    starts = ends - rv.range_ms
    timestamps, values, offsets = rv.timestamps, rv.values, rv.offsets
    ctx.check_deadline()
    lo = searchsorted_rows(timestamps, offsets, starts, "left")
    hi = searchsorted_rows(timestamps, offsets, ends, "right")
    return Windows(timestamps, values, offsets, lo, hi)


def prefix_count(flags: np.ndarray) -> np.ndarray:
    """``out[i]`` is how many of ``flags[:i]`` are true (one longer than ``flags``), for window counts."""
    out = np.zeros(flags.shape[0] + 1, dtype=I64)
    np.cumsum(flags, out=out[1:])
    return out


def window_sums(ctx: EvalContext, w: Windows, cells: np.ndarray, *, average: bool = False) -> np.ndarray:
    """The sum (or with ``average`` the mean) of each cell's window, as Prometheus computes it.

    Differences of running sums: every series' running sum, with the rounding error of each of its
    additions recovered exactly (Knuth's TwoSum) and summed on the side. A window's sum is then
    exact but for the rounding of those error sums, whose bound is computed too; the few windows
    where it is not below 1e-12 of the result (values of very different sizes that cancel out) are
    summed again by Prometheus's own loop (Kahan's sum, or its incremental mean). Infinities and NaN
    are counted apart, with Prometheus's outcome: NaN if there is a NaN or both infinities, else
    the infinity. Large values are scaled down by a power of two (exactly) so that no running sum
    overflows, and the results scaled back: a sum that overflows is infinite, as in Prometheus, but
    a mean is not.
    """
    n_steps = w.lo.shape[1]
    rows = cells // n_steps
    lo, hi = w.lo.ravel()[cells], w.hi.ravel()[cells]
    finite = np.isfinite(w.values)
    x = np.where(finite, w.values, 0.0)
    # Per series, its running sums with a leading 0: sample g of series r is at g + r + 1.
    size = x.shape[0] + rows.max(initial=-1) + 1
    running, errors, error_mass = (np.zeros(size, dtype=F64) for _ in range(3))
    scale = np.ones(w.offsets.shape[0] - 1, dtype=F64)
    _running_sums(ctx, x, w.offsets, np.unique(rows), scale, running, errors, error_mass)
    lo_at, hi_at = lo + rows, hi + rows
    result = (running[hi_at] - running[lo_at]) + (errors[hi_at] - errors[lo_at])
    # Summing n error terms rounds by at most n * 2**-53 times their total magnitude (doubled here).
    first = w.offsets[rows]
    bound = 2.0**-52 * ((hi - first) * error_mass[hi_at] + (lo - first) * error_mass[lo_at])
    unsure = bound > 1e-12 * np.abs(result)
    if average:
        result = result / (hi - lo)
    result = result / scale[rows]
    if not finite.all():
        nan, pos, neg = (prefix_count(f) for f in (np.isnan(w.values), w.values == np.inf, w.values == -np.inf))
        has_nan, has_pos, has_neg = (c[hi] > c[lo] for c in (nan, pos, neg))
        result = np.where(has_pos, np.inf, np.where(has_neg, -np.inf, result))
        result[has_nan | (has_pos & has_neg)] = np.nan
        unsure &= ~(has_nan | has_pos | has_neg)
    if unsure.any():
        doubtful = cells[unsure]
        again = longest_first(w, doubtful)
        redone = (_prometheus_mean if average else _prometheus_sum)(ctx, w, again)
        # again holds the same (distinct) cells as doubtful, in another order: match them up.
        by_cell = np.argsort(again)
        result[unsure] = redone[by_cell[np.searchsorted(again[by_cell], doubtful)]]
    return result


def _running_sums(ctx: EvalContext, x: np.ndarray, offsets: np.ndarray, rows: np.ndarray, scale: np.ndarray,
                  running: np.ndarray, errors: np.ndarray, error_mass: np.ndarray) -> None:
    """Fill, for each series in ``rows``, its scaled running sums and TwoSum error sums (see window_sums).

    Series of similar lengths are stacked as rows of a zero-padded matrix and summed along its rows
    at once (numpy's cumsum adds in order, so each row rounds exactly as its own cumsum would); very
    uneven lengths, where the padding would cost too much, go one series at a time.
    """
    if rows.shape[0] == 0:
        return
    starts, lens = offsets[rows], offsets[rows + 1] - offsets[rows]
    width = int(lens.max())
    if rows.shape[0] * width > 4 * int(lens.sum()) + 4096:
        for i, row in enumerate(rows.tolist()):
            if i % 256 == 0:
                ctx.check_deadline()
            one = np.array([row])
            _running_sums_stacked(x, starts[i:i + 1], lens[i:i + 1], one, int(lens[i]), scale, running, errors,
                                  error_mass)
        return
    _running_sums_stacked(x, starts, lens, rows, width, scale, running, errors, error_mass)


def _running_sums_stacked(x, starts, lens, rows, width, scale, running, errors, error_mass) -> None:
    col = np.arange(width)
    valid = col[None, :] < lens[:, None]
    at = np.where(valid, starts[:, None] + col[None, :], 0)
    m = np.where(valid, x[at], 0.0)
    biggest = np.abs(m).max(axis=1, initial=0.0)
    exponent = np.frexp(biggest)[1] + np.frexp(lens.astype(F64))[1]  # frexp's exponent of n is n.bit_length()
    row_scale = np.where((biggest == 0.0) | (exponent < 1020), 1.0, np.ldexp(1.0, np.minimum(1020 - exponent, 0)))
    scale[rows] = row_scale
    xs = m * row_scale[:, None]
    sums = np.cumsum(xs, axis=1)
    before = np.zeros_like(sums)
    before[:, 1:] = sums[:, :-1]
    # TwoSum: sums[i] = before[i] + xs[i] - err[i], exactly.
    virtual = sums - before
    err = (before - (sums - virtual)) + (xs - virtual)
    # Series r's sample g goes to g + r + 1 (a leading 0 per series).
    dest = (at + rows[:, None] + 1)[valid]
    running[dest] = sums[valid]
    errors[dest] = np.cumsum(err, axis=1)[valid]
    error_mass[dest] = np.cumsum(np.abs(err), axis=1)[valid]


def _prometheus_sum(ctx: EvalContext, w: Windows, cells: np.ndarray) -> np.ndarray:
    """Prometheus's ``sum_over_time`` loop (Kahan's sum) for each cell (longest first)."""
    total, comp = np.zeros(cells.shape[0], dtype=F64), np.zeros(cells.shape[0], dtype=F64)

    def step(j: int, v: np.ndarray, t: np.ndarray, part: slice) -> None:
        total[part], comp[part] = kahan_inc(v, total[part], comp[part])

    fold(ctx, w, cells, step)
    return np.where(np.isinf(total), total, total + comp)


def _prometheus_mean(ctx: EvalContext, w: Windows, cells: np.ndarray) -> np.ndarray:
    """Prometheus's ``avg_over_time`` loop (an incremental mean, Kahan-summed) for finite windows."""
    mean, comp, count = (np.zeros(cells.shape[0], dtype=F64) for _ in range(3))

    def step(j: int, v: np.ndarray, t: np.ndarray, part: slice) -> None:
        count[part] += 1.0
        # A mean gone infinite by overflow stays so, as in Prometheus (whose loop skips finite
        # values once the mean is infinite).
        go = ~np.isinf(mean[part])
        new_mean, new_comp = kahan_inc(v / count[part] - mean[part] / count[part], mean[part], comp[part])
        mean[part] = np.where(go, new_mean, mean[part])
        comp[part] = np.where(go, new_comp, comp[part])

    fold(ctx, w, cells, step)
    return np.where(np.isinf(mean), mean, mean + comp)


def window_extreme(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, largest: bool) -> np.ndarray:
    """The min (or max) of each non-empty window; NaN only if all its values are NaN, as Prometheus."""
    if lo.shape[0] == 0:
        return np.zeros(0, dtype=F64)
    # reduceat reduces values[idx[j]:idx[j+1]]; with idx = lo0, hi0, lo1, hi1, ... the even results
    # are the windows. A sentinel keeps every hi a valid index.
    padded = np.concatenate((values, [np.nan]))
    idx = np.stack((lo, hi), axis=1).ravel()
    ufunc = np.fmax if largest else np.fmin
    return ufunc.reduceat(padded, idx)[::2]


def kahan_inc(inc: np.ndarray, total: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of Prometheus's ``kahanSumInc`` (Neumaier's variant), element-wise."""
    t = total + inc
    # The comparison is false for NaN, which takes the second branch, as in Go.
    comp = comp + np.where(np.abs(total) >= np.abs(inc), (total - t) + inc, (inc - t) + total)
    return t, comp


def longest_first(windows: Windows, cells: np.ndarray) -> np.ndarray:
    """``cells`` reordered by window length, longest first, as :func:`fold` wants them."""
    counts = windows.hi.ravel()[cells] - windows.lo.ravel()[cells]
    return cells[np.argsort(-counts, kind="stable")]


#: A fold step: (j, the j-th value and timestamp of the windows taking part, which cells take part
#: as a slice of the state) -> None, updating the state in place.
FoldStep = Callable[[int, np.ndarray, np.ndarray, slice], None]


def fold(ctx: EvalContext, windows: Windows, cells: np.ndarray, step: FoldStep) -> None:
    """Visit the samples of each cell's window in order, all cells at once, sample position by position.

    ``cells`` must come from :func:`longest_first`, and the caller's state be in the same order:
    then the cells whose window has more than j samples, those that take part in ``step(j, ...)``,
    are always a prefix of the state.
    """
    first = windows.lo.ravel()[cells]
    counts = windows.hi.ravel()[cells] - first
    if counts.shape[0] == 0:
        return
    # taking[j]: how many cells have a window longer than j (counts are in descending order).
    taking = np.searchsorted(-counts, -np.arange(int(counts[0])), side="left")
    for j, m in enumerate(taking.tolist()):
        if j % 1024 == 1023:
            ctx.check_deadline()
        idx = first[:m] + j
        step(j, windows.values[idx], windows.timestamps[idx], slice(0, m))
