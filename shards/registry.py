"""The series registry: which series a shard knows, numbered densely in the order it first saw them.

The :class:`SeriesRegistry` maps a series' ``idx`` to its stable 64-bit series id, its labels (their
name/value pairs interned, so series share them) and its canonical key; a sorted copy of the ids answers
id -> idx lookups for a whole batch at once. A scraper sends the same series table with every scrape of a
target, and the WAL holds it again in every entry, so the answer for a table whose series are all known is
kept (a bounded LRU keyed by the table's bytes): the next lookup of that table is a hash and a compare, not
a binary search per series. :func:`resolve_batch` maps a batch onto it.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence

import numpy as np
import xxhash

from shardmon.model.labels import SEP, Labels
from shardmon.model.samples import U64, SampleBatch


#: Tables of this many series, up to _TABLE_MAX, have their lookups kept.
_TABLE_MIN = 16
_TABLE_MAX = 1 << 16


class SeriesRegistry:
    """Series known to the shard: idx -> id, labels and canonical key; id -> idx for whole arrays."""

    def __init__(self) -> None:
        self.ids = np.empty(0, U64)
        self.labels: list[Labels] = []
        self.keys: list[bytes] = []
        self._sorted_ids = np.empty(0, U64)
        self._sorted_idx = np.empty(0, np.int64)
        # Every distinct (name, value) pair once: series share their pairs (job, instance, mode...),
        # which keeps a series' labels to little more than one tuple of pointers.
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        # Lookups of whole tables whose series were all known: hash of the ids' bytes -> (ids, idx).
        self._tables: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray]] = collections.OrderedDict()
        self._tables_size = 0

    def _labels_of_all(self, keys: Sequence[bytes]) -> list[Labels]:
        """The labels of many canonical keys, their pairs interned: one decode and one split of all the
        keys joined, then a slice per series (recovery registers every series of the shard at once)."""
        if len(keys) < 64 or not all(keys):
            return [self._labels_of(k) for k in keys]
        tokens = SEP.join(keys).decode("utf-8", "surrogateescape").split("\udcff")
        flat = list(zip(tokens[0::2], tokens[1::2]))
        del tokens
        flat = list(map(self._pairs.setdefault, flat, flat))
        ends = np.cumsum(np.fromiter(map(bytes.count, keys, itertools.repeat(SEP)), np.int64, len(keys)) + 1) // 2
        starts = np.concatenate(([0], ends[:-1]))
        return list(map(Labels, map(flat.__getitem__, map(slice, starts.tolist(), ends.tolist()))))

    def _labels_of(self, key: bytes) -> Labels:
        if not key:
            return Labels()
        parts = key.decode("utf-8", "surrogateescape").split("\udcff")
        flat = list(zip(parts[0::2], parts[1::2]))
        return Labels(map(self._pairs.setdefault, flat, flat))

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The idx of each id, or -1 where the series is unknown (vectorised). The answer may be a
        read-only array shared with later calls: copy it before changing it."""
        if self._sorted_ids.shape[0] == 0:
            return np.full(ids.shape[0], -1, np.int64)
        n = ids.shape[0]
        if n < _TABLE_MIN or n > _TABLE_MAX:
            return self._search(ids)
        ids = np.ascontiguousarray(ids, U64)
        key = xxhash.xxh64_intdigest(ids.data)
        hit = self._tables.get(key)
        if hit is not None and np.array_equal(hit[0], ids):
            self._tables.move_to_end(key)
            return hit[1]
        idx = self._search(ids)
        if hit is None and idx.min() >= 0:  # Only all-known answers: they never change (idx only grows).
            idx.flags.writeable = False
            self._tables[key] = (ids.copy(), idx)
            self._tables_size += n
            limit = max(2 * len(self.keys), _TABLE_MAX)
            while self._tables_size > limit:
                old_ids, _ = self._tables.popitem(last=False)[1]
                self._tables_size -= old_ids.shape[0]
        return idx

    def _search(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._sorted_ids, ids)
        pos_c = np.minimum(pos, self._sorted_ids.shape[0] - 1)
        hit = self._sorted_ids[pos_c] == ids
        return np.where(hit, self._sorted_idx[pos_c], -1)

    def add(self, new_ids: Sequence[int], new_keys: Sequence[bytes]) -> None:
        """Register series (ids not known yet, each once)."""
        if not new_keys:
            return
        self.keys.extend(new_keys)
        self.labels.extend(self._labels_of_all(new_keys))
        self.ids = np.concatenate((self.ids, np.asarray(new_ids, dtype=U64)))
        order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[order]
        self._sorted_idx = order.astype(np.int64)


def resolve_batch(registry: SeriesRegistry, batch: SampleBatch) -> tuple[np.ndarray, list[int], list[bytes]]:
    """Map a batch's series table onto the registry.

    Returns ``(idx per series of the batch, -1 where new; new ids; new keys)``, the new series each
    once, in first-seen order. Does not register anything.
    """
    idx = registry.lookup(batch.series_ids)
    missing = np.flatnonzero(idx < 0)
    new_ids: list[int] = []
    new_keys: list[bytes] = []
    if missing.shape[0]:
        seen: set[int] = set()
        for i in missing.tolist():
            sid = int(batch.series_ids[i])
            if sid not in seen:
                seen.add(sid)
                new_ids.append(sid)
                new_keys.append(batch.series.key(i))
    return idx, new_ids, new_keys
