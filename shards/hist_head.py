"""The head's native histogram samples: per series, in time order, beside the float head (:mod:`shardmon.shards.head`).

A histogram is a Python object's worth of data anyway, so they are kept per series (a list of timestamps and
one of encoded histograms, :func:`shardmon.model.histogram.encode`'s bytes, as the batch brought them), not in
columns; float-only series have no entry and pay nothing.

Append rules, as Prometheus 2.53's head has them for a series holding floats and histograms: a sample newer
than the series' latest (float or histogram) is appended; one at the latest's timestamp is a duplicate
(dropped silently) when the latest is the same histogram bit for bit, else refused (``duplicate_timestamp``);
an older one is refused (``out_of_order``: 2.53 takes no out-of-order histograms, whatever the out-of-order
window), one below the head's lower bound is ``out_of_bounds``. Floats of a series with histograms are
checked against them too (:meth:`HistHead.float_clashes`).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import numpy as np

from shardmon.model.histogram import HistogramColumns
from shardmon.model.samples import I64

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


class HistAppend(NamedTuple):
    appended: int
    rejected: dict[str, int]
    duplicates: int
    #: The series idx and timestamp of each appended sample (to widen the series' time ranges).
    idx: np.ndarray
    ts: np.ndarray


class HistSamples(NamedTuple):
    """Histogram samples of several series, ordered by series idx then time: ``raws[j]`` is sample j's
    encoded histogram."""

    idx: np.ndarray  # int64
    ts: np.ndarray  # int64
    raws: list[bytes]

    @classmethod
    def empty(cls) -> HistSamples:
        return cls(np.empty(0, np.int64), np.empty(0, I64), [])


class _Series:
    __slots__ = ("ts", "raws")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.raws: list[bytes] = []


class HistHead:
    """The histogram samples of the head, per series idx."""

    def __init__(self) -> None:
        self._series: dict[int, _Series] = {}
        #: ``_has[i]``: series idx i has histograms in the head (kept with ``_series``), so that the float paths
        #: find the few series that concern them with one gather instead of a sort and an ``isin``.
        self._has = np.zeros(0, bool)
        self.num_samples = 0

    def __bool__(self) -> bool:
        return bool(self._series)

    def series_idx(self) -> np.ndarray:
        """The series with histograms in the head, sorted."""
        return np.flatnonzero(self._has)

    def having(self, idxs: np.ndarray) -> np.ndarray:
        """The positions in ``idxs`` (series idx) of the series that have histograms in the head."""
        has = self._has
        if not self._series or not idxs.shape[0]:
            return np.empty(0, np.int64)
        inside = (idxs >= 0) & (idxs < has.shape[0])
        return np.flatnonzero(inside & has[np.where(inside, idxs, 0)])

    def _new_series(self, i: int) -> _Series:
        if i >= self._has.shape[0]:
            grown = np.zeros(max(2 * self._has.shape[0], i + 1, 1024), bool)
            grown[:self._has.shape[0]] = self._has
            self._has = grown
        self._has[i] = True
        s = self._series[i] = _Series()
        return s

    def time_range(self) -> tuple[int, int] | None:
        if not self.num_samples:
            return None
        return (min(s.ts[0] for s in self._series.values()), max(s.ts[-1] for s in self._series.values()))

    def append(self, sample_idx: np.ndarray, cols: HistogramColumns, float_last_ts: np.ndarray,
               min_valid_ms: int) -> HistAppend:
        """Append the histogram samples ``cols`` (``sample_idx[j]`` the series idx of sample j), in time order
        per series, under the module's rules; ``float_last_ts`` is the float head's latest per series idx."""
        order = np.lexsort((cols.timestamps_ms, sample_idx))
        rejected: dict[str, int] = {}
        duplicates = 0
        kept_idx: list[int] = []
        kept_ts: list[int] = []
        idxs, tss = sample_idx.tolist(), cols.timestamps_ms.tolist()
        n_float = float_last_ts.shape[0]
        for j in order.tolist():
            i, t = idxs[j], tss[j]
            if t < min_valid_ms:
                rejected["out_of_bounds"] = rejected.get("out_of_bounds", 0) + 1
                continue
            s = self._series.get(i)
            h_last = s.ts[-1] if s else _INT64_MIN
            f_last = int(float_last_ts[i]) if i < n_float else _INT64_MIN
            if t > h_last and t > f_last:
                if s is None:
                    s = self._new_series(i)
                s.ts.append(t)
                s.raws.append(cols.raw(j))
                kept_idx.append(i)
                kept_ts.append(t)
                continue
            if t == h_last and f_last < t and s is not None and s.raws[-1] == cols.raw(j):
                duplicates += 1
            elif t == max(h_last, f_last):
                rejected["duplicate_timestamp"] = rejected.get("duplicate_timestamp", 0) + 1
            else:
                rejected["out_of_order"] = rejected.get("out_of_order", 0) + 1
        self.num_samples += len(kept_ts)
        return HistAppend(len(kept_ts), rejected, duplicates, np.asarray(kept_idx, np.int64),
                          np.asarray(kept_ts, I64))

    def float_clashes(self, sample_idx: np.ndarray, ts: np.ndarray, late_from_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """For float samples: ``(out_of_order, duplicate_timestamp)`` masks against the histograms of their
        series. A float at a histogram's timestamp clashes; one older than the series' latest histogram is out
        of order unless at or after ``late_from_ms`` (the out-of-order window's start; the maximum int64 when
        there is none)."""
        ooo = np.zeros(ts.shape[0], bool)
        dup = np.zeros(ts.shape[0], bool)
        for j in self.having(sample_idx).tolist():
            s = self._series[int(sample_idx[j])]
            t = int(ts[j])
            k = bisect.bisect_left(s.ts, t)
            if k < len(s.ts) and s.ts[k] == t:
                dup[j] = True
            elif t < s.ts[-1] and t < late_from_ms:
                ooo[j] = True
        return ooo, dup

    def read(self, idx: int, start_ms: int, end_ms: int) -> tuple[list[int], list[bytes]]:
        s = self._series.get(idx)
        if s is None:
            return [], []
        a = bisect.bisect_left(s.ts, start_ms)
        b = bisect.bisect_right(s.ts, end_ms)
        return s.ts[a:b], s.raws[a:b]

    def samples(self, before_ms: int = _INT64_MAX) -> HistSamples:
        """Every sample older than ``before_ms``, by series then time."""
        idx: list[int] = []
        ts: list[int] = []
        raws: list[bytes] = []
        for i in sorted(self._series):
            s = self._series[i]
            b = bisect.bisect_left(s.ts, before_ms)
            idx.extend([i] * b)
            ts.extend(s.ts[:b])
            raws.extend(s.raws[:b])
        return HistSamples(np.asarray(idx, np.int64), np.asarray(ts, I64), raws)

    def split_before(self, boundary_ms: int) -> HistSamples:
        """Remove and return the samples older than ``boundary_ms`` (a block was cut)."""
        out = self.samples(boundary_ms)
        for i in list(self._series):
            s = self._series[i]
            b = bisect.bisect_left(s.ts, boundary_ms)
            if b == len(s.ts):
                del self._series[i]
                self._has[i] = False
            elif b:
                del s.ts[:b], s.raws[:b]
        self.num_samples -= len(out.raws)
        return out

    def last_per_series(self, n_series: int) -> np.ndarray:
        """The latest histogram timestamp of each series idx (the minimum int64 where none)."""
        out = np.full(n_series, _INT64_MIN, I64)
        for i, s in self._series.items():
            if i < n_series:
                out[i] = s.ts[-1]
        return out


# -- the engine's uses (kept here so the engine stays about floats) ------------------------------


def add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def without_clashes(hists: HistHead, head, sample_idx: np.ndarray, ts: np.ndarray, vals: np.ndarray):
    """The float samples that do not clash with their series' histograms (:meth:`HistHead.float_clashes`),
    and the clashes' counts by reason (None when there are none)."""
    if not hists.having(sample_idx).shape[0]:  # the usual case: none of these series has histograms
        return sample_idx, ts, vals, None
    window = head.out_of_order_window_ms
    late_from = int(head.time_range()[1]) - window if window > 0 and head.time_range() else _INT64_MAX
    ooo, dup = hists.float_clashes(sample_idx, ts, late_from)
    if not (ooo.any() or dup.any()):
        return sample_idx, ts, vals, None
    keep = ~(ooo | dup)
    counts = {r: int(m.sum()) for r, m in (("out_of_order", ooo), ("duplicate_timestamp", dup)) if m.any()}
    return sample_idx[keep], ts[keep], vals[keep], counts


def apply(hists: HistHead, head, series_idx: np.ndarray, cols: HistogramColumns) -> HistAppend:
    """Append a durable batch's histogram columns (``series_idx`` the batch's series table as registry idx,
    -1 for an unknown series: only a damaged store has those)."""
    sample_idx = series_idx[cols.sample_series.astype(np.int64)]
    known = sample_idx >= 0
    extra: dict[str, int] = {}
    if not known.all():
        extra["unknown_series"] = int((~known).sum())
        cols = cols.take(np.flatnonzero(known))
        sample_idx = sample_idx[known]
    out = hists.append(sample_idx.astype(np.int64), cols, head.last_ts, head.min_valid_ms)
    return out._replace(rejected=add_counts(out.rejected, extra)) if extra else out


def joint_range(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1])


def backfill_samples(series_idx: np.ndarray, cols: HistogramColumns | None) -> HistSamples | None:
    """A backfill batch's histograms by series idx then time, a repeated (series, time) once (the first)."""
    if cols is None or not len(cols):
        return None
    idx = series_idx[cols.sample_series.astype(np.int64)].astype(np.int64)
    order = np.lexsort((np.arange(idx.shape[0]), cols.timestamps_ms, idx))
    idx, ts = idx[order], cols.timestamps_ms[order]
    fresh = np.ones(idx.shape[0], bool)
    fresh[1:] = (idx[1:] != idx[:-1]) | (ts[1:] != ts[:-1])
    return HistSamples(idx[fresh], ts[fresh].astype(I64), [cols.raw(j) for j in order[fresh].tolist()])
