"""The head: the recent samples of a shard, in memory, in columns.

Appends never touch a Python object per sample. A batch's samples are checked against each
series' latest sample with array operations and appended to an unsorted *tail* of column chunks.
Reads merge the tail into a *sorted* part (samples ordered by series, then time, with per-series
offsets), so a read of one series is two ``searchsorted`` calls and a slice.

Samples name their series by ``idx``, the dense number the shard's
:class:`~shardmon.shards.registry.SeriesRegistry` gave it.

Ordering rules (as Prometheus's head): a sample older than the series' latest is rejected
``out_of_order``; one with the latest's timestamp and the same value (bit for bit) is a duplicate and
is dropped silently; with the same timestamp and another value it is rejected ``duplicate_timestamp``;
a sample older than the head's lower bound (everything before it is in blocks) is rejected
``out_of_bounds``. Within one batch a series' samples are ordered by time before these checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from shardmon.model.samples import F64, I64, U64

if TYPE_CHECKING:
    from shardmon.shards.registry import SeriesRegistry

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


def _grow(arr: np.ndarray, size: int, fill) -> np.ndarray:
    if size <= arr.shape[0]:
        return arr
    new = np.full(max(size, 2 * arr.shape[0], 1024), fill, dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


class AppendResult(NamedTuple):
    appended: int
    rejected: dict[str, int]  # reason -> count
    duplicates: int  # samples equal to the latest one: dropped silently, not an error


class Columns(NamedTuple):
    """Samples ordered by series idx then time; ``offsets[i]:offsets[i+1]`` are series i's samples."""

    idx: np.ndarray
    ts: np.ndarray
    vals: np.ndarray
    offsets: np.ndarray


def gather_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + counts[i] - 1`` of every range, concatenated."""
    total = int(counts.sum())
    if not total:
        return np.empty(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


# The tail is folded into the sorted part once it holds this many samples and an eighth of the head.
_TAIL_MERGE_MIN = 1 << 18


class Head:
    """In-memory recent samples of every series, with Prometheus's append rules."""

    def __init__(self, registry: SeriesRegistry, min_valid_ms: int = _INT64_MIN, out_of_order_window_ms: int = 0) -> None:
        self.registry = registry
        #: A sample older than its series' latest is still accepted when it is at most this much older
        #: than the newest sample of the head (Prometheus's ``out_of_order_time_window``; 0: never).
        self.out_of_order_window_ms = out_of_order_window_ms
        #: Samples older than this are in blocks already; appends below it are out of bounds.
        self.min_valid_ms = min_valid_ms
        self.last_ts = np.empty(0, I64)
        self.last_val = np.empty(0, F64)
        self._tail: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._tail_len = 0
        self._sorted = Columns(np.empty(0, np.int64), np.empty(0, I64), np.empty(0, F64), np.zeros(1, np.int64))
        self._key: tuple[np.ndarray, int] | None = None  # (series<<32 | time - base, base) of _sorted
        self.num_samples = 0
        self._min_ts = _INT64_MAX
        self._max_ts = _INT64_MIN

    # -- appending -------------------------------------------------------------------------------

    def append(self, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> AppendResult:
        """Append samples of registered series (``idx`` per sample). Returns what was kept."""
        n_series = len(self.registry)
        self.last_ts = _grow(self.last_ts, n_series, _INT64_MIN)
        self.last_val = _grow(self.last_val, n_series, np.nan)
        if idx.shape[0] == 0:
            return AppendResult(0, {}, 0)
        order = np.lexsort((ts, idx))
        idx, ts, vals = idx[order], ts[order], vals[order]
        bits = vals.view(U64)

        first = np.ones(idx.shape[0], bool)
        first[1:] = idx[1:] != idx[:-1]
        prev_ts = np.where(first, self.last_ts[idx], np.roll(ts, 1))
        prev_bits = np.where(first, self.last_val[idx].view(U64), np.roll(bits, 1))
        # A rejected earlier sample of the batch must not lower the bar: compare with the series'
        # latest as well.
        later_than_latest = ~first & (self.last_ts[idx] > prev_ts)
        prev_ts = np.where(later_than_latest, self.last_ts[idx], prev_ts)
        prev_bits = np.where(later_than_latest, self.last_val[idx].view(U64), prev_bits)

        out_of_bounds = ts < self.min_valid_ms
        out_of_order = ~out_of_bounds & (ts < prev_ts)
        same_ts = ~out_of_bounds & (ts == prev_ts)
        duplicate = same_ts & (bits == prev_bits)
        conflict = same_ts & ~duplicate
        keep = ~(out_of_bounds | out_of_order | same_ts)
        if self.out_of_order_window_ms > 0 and out_of_order.any():
            late = np.flatnonzero(out_of_order & (ts >= self._max_ts - self.out_of_order_window_ms))
            if late.shape[0]:
                ok, dup, clash = self._check_late(idx[late], ts[late], bits[late])
                keep[late[ok]] = True
                out_of_order[late[ok | dup | clash]] = False
                duplicate[late[dup]] = True
                conflict[late[clash]] = True
        rejected = {}
        for reason, mask in (
            ("out_of_bounds", out_of_bounds),
            ("out_of_order", out_of_order),
            ("duplicate_timestamp", conflict),
        ):
            c = int(mask.sum())
            if c:
                rejected[reason] = c
        n_keep = int(keep.sum())
        if n_keep:
            k_idx, k_ts, k_vals = idx[keep], ts[keep], vals[keep]
            # The last kept sample of each series is its new latest (samples are sorted by time).
            last = np.ones(k_idx.shape[0], bool)
            last[:-1] = k_idx[1:] != k_idx[:-1]
            # ...unless it is a late (out-of-order) one, older than the latest.
            last &= k_ts > self.last_ts[k_idx]
            self.last_ts[k_idx[last]] = k_ts[last]
            self.last_val[k_idx[last]] = k_vals[last]
            self._tail.append((k_idx, k_ts, k_vals))
            self._tail_len += n_keep
            self.num_samples += n_keep
            self._min_ts = min(self._min_ts, int(k_ts.min()))
            self._max_ts = max(self._max_ts, int(k_ts.max()))
        return AppendResult(n_keep, rejected, int(duplicate.sum()))

    def _check_late(self, idx: np.ndarray, ts: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, ...]:
        """For late samples (sorted by series, time): ``(new, duplicate, conflict)`` masks against the
        head's samples and each other. A duplicate has the same time and value bits as a sample already
        there (accepted silently, not stored twice); a conflict the same time and another value."""
        n = idx.shape[0]
        series = np.unique(idx)
        counts, old_ts, old_vals = self.read_many(series, int(ts.min()), int(ts.max()))
        old_idx = np.repeat(series, counts)
        # Every sample of those series in the late samples' span, old first, then the late ones.
        all_idx = np.concatenate((old_idx, idx))
        all_ts = np.concatenate((old_ts, ts))
        all_bits = np.concatenate((old_vals.view(U64), bits))
        order = np.lexsort((np.arange(all_idx.shape[0]), all_ts, all_idx))  # stable: old before late
        s_idx, s_ts, s_bits = all_idx[order], all_ts[order], all_bits[order]
        repeat = np.zeros(order.shape[0], bool)
        repeat[1:] = (s_idx[1:] == s_idx[:-1]) & (s_ts[1:] == s_ts[:-1])
        # The first sample at each (series, time) is what a repeat is compared with.
        first_at = np.maximum.accumulate(np.where(~repeat, np.arange(order.shape[0]), 0))
        same_value = s_bits == s_bits[first_at]
        new = np.zeros(n, bool)
        dup = np.zeros(n, bool)
        clash = np.zeros(n, bool)
        is_late = order >= old_idx.shape[0]
        which = order[is_late] - old_idx.shape[0]
        new[which] = ~repeat[is_late]
        dup[which] = repeat[is_late] & same_value[is_late]
        clash[which] = repeat[is_late] & ~same_value[is_late]
        return new, dup, clash

    # -- reading ---------------------------------------------------------------------------------

    def columns(self) -> Columns:
        """All head samples ordered by series then time (merges the tail first)."""
        if self._tail:
            s = self._sorted
            idx = np.concatenate([s.idx] + [t[0] for t in self._tail])
            ts = np.concatenate([s.ts] + [t[1] for t in self._tail])
            vals = np.concatenate([s.vals] + [t[2] for t in self._tail])
            order = _sort_order(idx, ts, self._min_ts, self._max_ts)
            idx, ts, vals = idx[order], ts[order], vals[order]
            offsets = np.searchsorted(idx, np.arange(len(self.registry) + 1))
            self._sorted = Columns(idx, ts, vals, offsets)
            self._key = None
            self._tail = []
            self._tail_len = 0
        elif self._sorted.offsets.shape[0] < len(self.registry) + 1:
            s = self._sorted
            self._sorted = Columns(s.idx, s.ts, s.vals, np.searchsorted(s.idx, np.arange(len(self.registry) + 1)))
        return self._sorted

    def read(self, idx: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples of series ``idx`` with ``start_ms <= t <= end_ms``."""
        _, ts, vals = self.read_many(np.array([idx], np.int64), start_ms, end_ms)
        return ts, vals

    def read_many(self, idx: np.ndarray, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of every series in ``idx`` within ``[start_ms, end_ms]``: ``(count per series,
        timestamps, values)``, the series' samples one after the other, all with array operations.

        The sorted part is searched; the tail (batches appended since it was last sorted) is scanned
        and its few matching samples merged in, so a read costs the tail, not a sort of the head. The
        tail is folded into the sorted part once it grows past an eighth of it.
        """
        if self._tail_len > max(_TAIL_MERGE_MIN, self._sorted.ts.shape[0] // 8):
            self.columns()
        idx = np.asarray(idx, np.int64)
        counts, ts, vals = self._read_sorted(idx, start_ms, end_ms)
        if not self._tail or start_ms > end_ms or idx.shape[0] == 0:
            return counts, ts, vals
        t_idx, t_ts, t_vals = self._tail_columns()
        position = np.full(len(self.registry), -1, np.int64)
        position[idx] = np.arange(idx.shape[0])
        t_pos = position[t_idx]
        hit = (t_pos >= 0) & (t_ts >= start_ms) & (t_ts <= end_ms)
        if not hit.any():
            return counts, ts, vals
        # Tail samples of a series are newer than its sorted ones (the append rules), so sorting by
        # (position, time) is a merge of the two.
        pos = np.concatenate((np.repeat(np.arange(idx.shape[0]), counts), t_pos[hit]))
        ts = np.concatenate((ts, t_ts[hit]))
        vals = np.concatenate((vals, t_vals[hit]))
        order = np.lexsort((ts, pos))
        return np.bincount(pos, minlength=idx.shape[0]).astype(np.int64), ts[order], vals[order]

    def _tail_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._tail) > 1:
            self._tail = [tuple(np.concatenate([t[i] for t in self._tail]) for i in range(3))]
        return self._tail[0]

    def _read_sorted(self, idx: np.ndarray, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self._sorted
        if s.offsets.shape[0] < len(self.registry) + 1:
            self._sorted = s = Columns(s.idx, s.ts, s.vals, np.searchsorted(s.idx, np.arange(len(self.registry) + 1)))
        if self._key is None and s.ts.shape[0] and int(s.ts.max()) - int(s.ts.min()) < 2**32 \
                and len(self.registry) < 2**31:
            base = int(s.ts.min())
            self._key = ((s.idx.astype(np.uint64) << np.uint64(32)) | (s.ts - base).astype(np.uint64), base)
        if self._key is None:  # Empty, or too wide for the composite key: one series at a time.
            parts = []
            for i in idx.tolist():
                lo, hi = int(s.offsets[i]), int(s.offsets[i + 1])
                a = lo + int(np.searchsorted(s.ts[lo:hi], start_ms, "left"))
                b = lo + int(np.searchsorted(s.ts[lo:hi], end_ms, "right"))
                parts.append((s.ts[a:b], s.vals[a:b]))
            counts = np.fromiter((p[0].shape[0] for p in parts), np.int64, len(parts))
            if not parts:
                return counts, np.empty(0, I64), np.empty(0, F64)
            return counts, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        key, base = self._key
        if end_ms < base or start_ms > end_ms:
            return np.zeros(idx.shape[0], np.int64), np.empty(0, I64), np.empty(0, F64)
        # Searched in ascending order (each search starts where the last ended: fewer cache misses), then put back.
        order = np.argsort(idx, kind="stable")
        high = idx[order].astype(np.uint64) << np.uint64(32)
        lo = np.uint64(min(max(start_ms - base, 0), 2**32 - 1))
        hi = np.uint64(min(end_ms - base, 2**32 - 1))
        a = np.empty(idx.shape[0], np.int64)
        b = np.empty(idx.shape[0], np.int64)
        a[order] = np.searchsorted(key, high | lo, "left")
        b[order] = np.searchsorted(key, high | hi, "right")
        counts = (b - a).astype(np.int64)
        pos = gather_ranges(a.astype(np.int64), counts)
        return counts, s.ts[pos], s.vals[pos]

    def time_range(self) -> tuple[int, int] | None:
        """(min, max) timestamp in the head, or None when empty (kept up to date, no sorting)."""
        if self.num_samples == 0:
            return None
        return self._min_ts, self._max_ts

    # -- cutting blocks --------------------------------------------------------------------------

    def split_before(self, boundary_ms: int) -> Columns:
        """Remove and return the samples older than ``boundary_ms``; raise the lower bound to it."""
        c = self.columns()
        old = c.ts < boundary_ms
        cut = Columns(
            c.idx[old], c.ts[old], c.vals[old], np.searchsorted(c.idx[old], np.arange(len(self.registry) + 1))
        )
        keep = ~old
        idx = c.idx[keep]
        self._sorted = Columns(idx, c.ts[keep], c.vals[keep], np.searchsorted(idx, np.arange(len(self.registry) + 1)))
        self._key = None
        self.num_samples = int(idx.shape[0])
        self.min_valid_ms = max(self.min_valid_ms, boundary_ms)
        self._min_ts = int(self._sorted.ts.min()) if self.num_samples else _INT64_MAX
        self._max_ts = int(self._sorted.ts.max()) if self.num_samples else _INT64_MIN
        return cut


def _sort_order(idx: np.ndarray, ts: np.ndarray, min_ts: int, max_ts: int) -> np.ndarray:
    """The order that sorts samples by (series, time).

    The input is a few runs already sorted that way (the sorted part, then each appended batch), so
    a stable sort of one composite uint64 key (series idx in the high 32 bits, time since the head's
    first sample in the low 32) is timsort merging runs, close to linear. When the head spans more
    than 2^32 ms (49 days) or 2^31 series, fall back to a lexsort.
    """
    if max_ts - min_ts < 2**32 and idx.shape[0] and int(idx.max()) < 2**31:
        key = (idx.astype(np.uint64) << np.uint64(32)) | (ts - min_ts).astype(np.uint64)
        return np.argsort(key, kind="stable")
    return np.lexsort((ts, idx))
