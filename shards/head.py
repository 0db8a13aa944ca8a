"""The head: the recent samples of a shard, in memory, in columns.

Appends never touch a Python object per sample. A batch's samples are checked against each
series' latest sample with array operations and appended to an unsorted *tail* of column chunks.
Reads merge the tail into a *sorted* part (samples ordered by series, then time, with per-series
offsets), so a read of one series is two ``searchsorted`` calls and a slice. The sorted part holds
16 bytes a sample: one uint64 key (series idx in the high 32 bits, time since the part's base in the
low 32) and the float64 value; the idx and time columns are derived from the key when asked for. Only
a head spanning 2^32 ms (49 days) or more than 2^31 series keeps them as columns of their own. The
sorted part is in pieces of 131,072 series, so merging the tail into it needs room for one piece more,
not for a second copy of the head.

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


_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class _SortedPart(NamedTuple):
    """One piece of the head's sorted part: the samples of the series ``lo .. lo + _PART_SERIES - 1``,
    as ``key`` and ``base`` (compact), or ``idx`` and ``ts`` (wide), and values.

    Compact: ``key = idx << 32 | (ts - base)``, sorted, unique (the append rules allow one sample per
    series and time). Wide (the head spans 2^32 ms or more, or has 2^31 series): explicit columns.
    ``offsets[i - lo]:offsets[i - lo + 1]`` are series i's samples either way.
    """

    lo: int
    key: np.ndarray | None
    base: int
    idx_col: np.ndarray | None
    ts_col: np.ndarray | None
    vals: np.ndarray
    offsets: np.ndarray

    @property
    def size(self) -> int:
        return int(self.vals.shape[0])

    def idx(self, pos=slice(None)) -> np.ndarray:
        """The series idx of the samples at ``pos`` (int64)."""
        if self.key is None:
            return self.idx_col[pos]
        return (self.key[pos] >> _SHIFT).astype(np.int64)

    def ts(self, pos=slice(None)) -> np.ndarray:
        """The timestamps of the samples at ``pos`` (int64)."""
        if self.key is None:
            return self.ts_col[pos]
        return (self.key[pos] & _LOW).astype(np.int64) + self.base

    def with_offsets(self, n_series: int) -> _SortedPart:
        """With the offsets of its series up to ``n_series`` (the registry's size) computed."""
        series = np.arange(self.lo, min(n_series, self.lo + _PART_SERIES) + 1)
        if self.key is None:
            offsets = np.searchsorted(self.idx_col, series)
        else:
            offsets = np.searchsorted(self.key, series.astype(np.uint64) << _SHIFT)
        return self._replace(offsets=offsets.astype(np.int64))

    def covers(self, n_series: int) -> bool:
        """Whether its offsets are computed for every series of a registry of ``n_series``."""
        return self.offsets.shape[0] >= min(n_series - self.lo, _PART_SERIES) + 1


#: Series per piece of the sorted part. A merge of the tail rewrites one piece at a time, so what the
#: head needs besides its samples while merging is one piece, not a copy of the whole head. A read of
#: series from several pieces costs a little more (about a millisecond for 5,000 series in 4 pieces),
#: so pieces are large: a shard of up to 131,072 series has one.
_PART_SERIES = 1 << 17


def _empty_part(lo: int) -> _SortedPart:
    return _SortedPart(lo, np.empty(0, np.uint64), 0, None, None, np.empty(0, F64), np.zeros(1, np.int64))


def _fits_key(min_ts: int, max_ts: int, n_series: int) -> bool:
    """Whether samples in ``[min_ts, max_ts]`` of ``n_series`` series fit the compact key."""
    return max_ts - min_ts < 2**32 and n_series < 2**31


def gather_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + counts[i] - 1`` of every range, concatenated."""
    total = int(counts.sum())
    if not total:
        return np.empty(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


# The tail is folded into the sorted part once it holds this many samples and an eighth of the head
# on read (half of it in the shard's maintenance: fold_tail).
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
        self._parts: list[_SortedPart] = []  # the sorted part, by series range
        self.num_samples = 0
        self._min_ts = _INT64_MAX
        self._max_ts = _INT64_MIN
        self._slot = np.empty(0, np.int32)  # scratch, per series: tells a batch holding each series once

    # -- appending -------------------------------------------------------------------------------

    def append(self, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray, *, each_once: bool = False) -> AppendResult:
        """Append samples of registered series (``idx`` per sample). Returns what was kept.
        ``each_once``: the caller knows ``idx`` names each series once (a check is saved)."""
        n_series = len(self.registry)
        self.last_ts = _grow(self.last_ts, n_series, _INT64_MIN)
        self.last_val = _grow(self.last_val, n_series, np.nan)
        if idx.shape[0] == 0:
            return AppendResult(0, {}, 0)
        fresh = self._append_fresh(idx, ts, vals, n_series, each_once)
        if fresh is not None:
            return fresh
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
            # The tail names series by uint32 (4 bytes a sample less while it waits to be merged).
            self._tail.append((k_idx.astype(np.uint32) if n_series < 2**32 else k_idx, k_ts, k_vals))
            self._tail_len += n_keep
            self.num_samples += n_keep
            self._min_ts = min(self._min_ts, int(k_ts.min()))
            self._max_ts = max(self._max_ts, int(k_ts.max()))
        return AppendResult(n_keep, rejected, int(duplicate.sum()))

    def _append_fresh(self, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray, n_series: int,
                      each_once: bool = False) -> AppendResult | None:
        """The usual batch (a scrape, a WAL entry of one): each series once, every sample newer than its
        series' latest and within bounds, so every sample is kept. Appended with a few array operations
        and no sort by time; None (nothing done) for any other batch, which :meth:`append` then checks in full."""
        if not (ts > self.last_ts[idx]).all() or int(ts.min()) < self.min_valid_ms:
            return None
        n = idx.shape[0]
        if not each_once:
            self._slot = slot = _grow(self._slot, n_series, -1)
            pos = np.arange(n, dtype=np.int32)
            slot[idx] = pos  # With a series twice, one of its positions is overwritten by the other.
            if not (slot[idx] == pos).all():
                return None
        # Kept in the batch's order (the tail's merge sorts it); the tail owns its columns (the caller's
        # may be views of a larger buffer), series numbers as uint32 as the full path keeps them.
        ts, vals = ts.astype(I64), vals.astype(F64)
        self.last_ts[idx] = ts
        self.last_val[idx] = vals
        self._tail.append((idx.astype(np.uint32) if n_series < 2**32 else idx.astype(np.int64), ts, vals))
        self._tail_len += n
        self.num_samples += n
        self._min_ts = min(self._min_ts, int(ts.min()))
        self._max_ts = max(self._max_ts, int(ts.max()))
        return AppendResult(n, {}, 0)

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
        """All head samples ordered by series then time (merges the tail first), as columns of their own
        (made for the caller: cutting blocks and recomputing ranges, not the read path)."""
        parts = self._merge_tail()
        idx = np.concatenate([p.idx() for p in parts]) if parts else np.empty(0, np.int64)
        ts = np.concatenate([p.ts() for p in parts]) if parts else np.empty(0, I64)
        vals = np.concatenate([p.vals for p in parts]) if parts else np.empty(0, F64)
        return Columns(idx, ts, vals, np.searchsorted(idx, np.arange(len(self.registry) + 1)))

    def _pieces(self, n_series: int) -> list[_SortedPart]:
        """The pieces of the sorted part, one for every ``_PART_SERIES`` series of the registry."""
        parts = self._parts
        while len(parts) * _PART_SERIES < n_series:
            parts.append(_empty_part(len(parts) * _PART_SERIES))
        return parts

    def _sorted_size(self) -> int:
        return sum(p.size for p in self._parts)

    def _merge_tail(self) -> list[_SortedPart]:
        """Fold the tail into the sorted part, one piece at a time; returns the pieces, their offsets
        up to date."""
        n_series = len(self.registry)
        parts = self._pieces(n_series)
        if self._tail:
            t_idx, t_ts, t_vals = self._tail_columns()
            self._tail = []
            self._tail_len = 0
            fits = _fits_key(self._min_ts, self._max_ts, n_series)
            if fits:
                # The head holds a (series, time) once (the append rules drop a repeated timestamp), so
                # the sort need not be stable: a quicksort of one key, measured faster than a stable sort
                # both on runs already sorted this way and on batches in scrape order (the short path
                # of append keeps those as they come).
                order = np.argsort((t_idx.astype(np.uint64) << _SHIFT) | (t_ts - self._min_ts).astype(np.uint64))
            else:
                order = np.lexsort((t_ts, t_idx))
            t_idx, t_ts, t_vals = t_idx[order], t_ts[order], t_vals[order]
            bounds = np.searchsorted(t_idx, np.arange(len(parts) + 1) * _PART_SERIES)
            for i, s in enumerate(parts):
                a, b = int(bounds[i]), int(bounds[i + 1])
                if a == b:
                    continue
                if fits and (s.key is not None or not s.size):
                    s = self._merge_keyed(s, t_idx[a:b], t_ts[a:b], t_vals[a:b])
                else:
                    idx = np.concatenate((s.idx(), t_idx[a:b]))
                    ts = np.concatenate((s.ts(), t_ts[a:b]))
                    vals = np.concatenate((s.vals, t_vals[a:b]))
                    o = np.lexsort((ts, idx))
                    s = _SortedPart(s.lo, None, 0, idx[o], ts[o], vals[o], s.offsets)
                parts[i] = s.with_offsets(n_series)
        for i, s in enumerate(parts):
            if not s.covers(n_series):
                parts[i] = s.with_offsets(n_series)
        return parts

    def _merge_keyed(self, s: _SortedPart, t_idx: np.ndarray, t_ts: np.ndarray, t_vals: np.ndarray) -> _SortedPart:
        """A compact piece with the tail's samples of its series inserted (sorted by series and time), where
        ``searchsorted`` puts them: no sort of the piece."""
        base = s.base if s.size and self._min_ts >= s.base and self._max_ts - s.base < 2**32 else self._min_ts
        key = s.key
        if s.size and base != s.base:  # Re-based: base only goes down here, and the span fits.
            key = key + np.uint64(s.base - base)
        t_key = (t_idx.astype(np.uint64) << _SHIFT) | (t_ts - base).astype(np.uint64)
        at = np.searchsorted(key, t_key)
        return _SortedPart(s.lo, np.insert(key, at, t_key), base, None, None, np.insert(s.vals, at, t_vals), s.offsets)

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
        if self._tail_len > max(_TAIL_MERGE_MIN, self._sorted_size() // 8):
            self._merge_tail()
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

    def fold_tail(self) -> bool:
        """Merge the tail into the sorted part if it holds more than half as many samples (and at least
        ``_TAIL_MERGE_MIN``); True if it did. The shard calls this from its maintenance: without reads
        the tail (20 B a sample, never merged) would only grow. Not on append, so a WAL replay (appends
        only) sorts nothing."""
        if self._tail_len > max(_TAIL_MERGE_MIN, self._sorted_size() // 2):
            self._merge_tail()
            return True
        return False

    def _tail_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._tail) > 1:
            self._tail = [tuple(np.concatenate([t[i] for t in self._tail]) for i in range(3))]
        return self._tail[0]

    def _read_sorted(self, idx: np.ndarray, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_series = len(self.registry)
        parts = self._pieces(n_series)
        for i, s in enumerate(parts):
            if not s.covers(n_series):
                parts[i] = s.with_offsets(n_series)
        if not parts or start_ms > end_ms:
            return np.zeros(idx.shape[0], np.int64), np.empty(0, I64), np.empty(0, F64)
        piece = idx // _PART_SERIES
        if len(parts) == 1 or not idx.shape[0] or int(piece.min()) == int(piece.max()):
            return _read_part(parts[int(piece[0]) if idx.shape[0] else 0], idx, start_ms, end_ms)
        # Series from several pieces: find each piece's samples, then copy them to where ``idx`` puts them.
        counts = np.zeros(idx.shape[0], np.int64)
        found = []
        for p in np.unique(piece).tolist():
            sel = np.flatnonzero(piece == p)
            a, c = _find_in_part(parts[p], idx[sel], start_ms, end_ms)
            counts[sel] = c
            found.append((parts[p], sel, a, c))
        first = np.cumsum(counts) - counts  # where each series' samples go in the answer
        ts = np.empty(int(counts.sum()), I64)
        vals = np.empty(ts.shape[0], F64)
        for s, sel, a, c in found:
            src, dst = gather_ranges(a, c), gather_ranges(first[sel], c)
            ts[dst] = s.ts(src)
            vals[dst] = s.vals[src]
        return counts, ts, vals

    def time_range(self) -> tuple[int, int] | None:
        """(min, max) timestamp in the head, or None when empty (kept up to date, no sorting)."""
        if self.num_samples == 0:
            return None
        return self._min_ts, self._max_ts

    # -- cutting blocks --------------------------------------------------------------------------

    def split_before(self, boundary_ms: int) -> Columns:
        """Remove and return the samples older than ``boundary_ms``; raise the lower bound to it."""
        parts = self._merge_tail()
        n_series = len(self.registry)
        cut_parts = []
        for i, s in enumerate(parts):
            old = s.ts_col < boundary_ms if s.key is None else (s.key & _LOW).astype(np.int64) < boundary_ms - s.base
            cut_parts.append((s.idx(old), s.ts(old), s.vals[old]))
            keep = ~old
            if s.key is None:
                parts[i] = _SortedPart(s.lo, None, 0, s.idx_col[keep], s.ts_col[keep], s.vals[keep], s.offsets)
            else:
                parts[i] = _SortedPart(s.lo, s.key[keep], s.base, None, None, s.vals[keep], s.offsets)
        cut_idx = np.concatenate([c[0] for c in cut_parts]) if cut_parts else np.empty(0, np.int64)
        cut = Columns(cut_idx, np.concatenate([c[1] for c in cut_parts]) if cut_parts else np.empty(0, I64),
                      np.concatenate([c[2] for c in cut_parts]) if cut_parts else np.empty(0, F64),
                      np.searchsorted(cut_idx, np.arange(n_series + 1)))
        self.num_samples = self._sorted_size()
        self.min_valid_ms = max(self.min_valid_ms, boundary_ms)
        ranges = [(int(t.min()), int(t.max())) for t in (p.ts() for p in parts) if t.shape[0]]
        self._min_ts = min(r[0] for r in ranges) if ranges else _INT64_MAX
        self._max_ts = max(r[1] for r in ranges) if ranges else _INT64_MIN
        fits = self.num_samples and _fits_key(self._min_ts, self._max_ts, n_series)
        for i, s in enumerate(parts):
            if s.key is None and fits:
                # Narrow again: back to the compact key.
                base = self._min_ts
                key = (s.idx_col.astype(np.uint64) << _SHIFT) | (s.ts_col - base).astype(np.uint64)
                s = _SortedPart(s.lo, key, base, None, None, s.vals, s.offsets)
            parts[i] = s.with_offsets(n_series)
        return cut


def _read_part(s: _SortedPart, idx: np.ndarray, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The samples of series ``idx`` (all in piece ``s``) within ``[start_ms, end_ms]``."""
    a, counts = _find_in_part(s, idx, start_ms, end_ms)
    pos = gather_ranges(a, counts)
    return counts, s.ts(pos), s.vals[pos]


def _find_in_part(s: _SortedPart, idx: np.ndarray, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the samples of series ``idx`` within ``[start_ms, end_ms]`` start in piece ``s``, and how
    many there are (the piece's samples of a series are contiguous)."""
    if s.key is None:  # Wide: one series at a time.
        starts, counts = [], []
        for i in (idx - s.lo).tolist():
            lo, hi = int(s.offsets[i]), int(s.offsets[i + 1])
            a = lo + int(np.searchsorted(s.ts_col[lo:hi], start_ms, "left"))
            b = lo + int(np.searchsorted(s.ts_col[lo:hi], end_ms, "right"))
            starts.append(a)
            counts.append(b - a)
        return np.array(starts, np.int64), np.array(counts, np.int64)
    base = s.base
    if not s.size or end_ms < base:
        return np.zeros(idx.shape[0], np.int64), np.zeros(idx.shape[0], np.int64)
    # Searched in ascending order (each search starts near where the last ended: fewer cache misses),
    # then put back in the order asked.
    order = np.argsort(idx, kind="stable")
    high = idx[order].astype(np.uint64) << _SHIFT
    lo = np.uint64(min(max(start_ms - base, 0), 2**32 - 1))
    hi = np.uint64(min(end_ms - base, 2**32 - 1))
    a = np.empty(idx.shape[0], np.int64)
    b = np.empty(idx.shape[0], np.int64)
    a[order] = np.searchsorted(s.key, high | lo, "left")
    b[order] = np.searchsorted(s.key, high | hi, "right")
    return a, b - a
