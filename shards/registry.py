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
from collections.abc import Sequence

import numpy as np
import xxhash

from shardmon.model.labels import Labels
from shardmon.model.samples import U64, SampleBatch

_KEY_END = b"\xfe"

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
        # Lookups of whole tables whose series were all known: hash of the ids' bytes -> (idx, whether the
        # ids are distinct).
        self._tables: collections.OrderedDict[int, tuple[np.ndarray, bool]] = collections.OrderedDict()
        self._tables_size = 0

    def _labels_of_all(self, keys: Sequence[bytes]) -> list[Labels]:
        """The labels of many canonical keys, their pairs interned, as :meth:`_labels_of` gives them one by
        one, with a Python object per pair made only once per distinct pair (recovery registers every
        series of the shard at once). The keys are joined by ``0xfe`` (no more in UTF-8 than ``0xff``);
        in each key every second ``0xff`` ends a pair and becomes ``0xfe`` too, so one split gives each
        pair's bytes, which a dict maps to its interned pair."""
        n = len(keys)
        if n < 64:
            return [self._labels_of(k) for k in keys]
        arr = np.frombuffer(_KEY_END.join(keys), np.uint8)
        seps = np.flatnonzero(arr >= 0xFE)
        key_end = arr[seps] == 0xFE
        sep_key = np.cumsum(key_end)[~key_end]  # for each 0xff: its key
        per_key = np.bincount(sep_key, minlength=n)
        if int(key_end.sum()) != n - 1 or (per_key % 2 == 0).any():  # a 0xfe in a key, an empty key...
            return [self._labels_of(k) for k in keys]
        nth = np.arange(sep_key.shape[0]) - np.repeat(np.cumsum(per_key) - per_key, per_key)
        marked = arr.copy()
        marked[seps[~key_end][nth % 2 == 1]] = 0xFE
        pair_bytes = marked.tobytes().split(_KEY_END)
        del arr, marked
        interned: dict[bytes, tuple[str, str]] = {}
        for pb in set(pair_bytes):
            name, value = pb.decode("utf-8", "surrogateescape").split("\udcff")
            pair = (name, value)
            interned[pb] = self._pairs.setdefault(pair, pair)
        flat = list(map(interned.__getitem__, pair_bytes))
        del pair_bytes
        ends = np.cumsum((per_key + 1) // 2)
        starts = ends - (per_key + 1) // 2
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
        return self.lookup_table(ids)[0]

    def lookup_table(self, ids: np.ndarray) -> tuple[np.ndarray, bool]:
        """:meth:`lookup`, and whether the ids are known to be distinct and all registered (False: not
        known)."""
        n = ids.shape[0]
        if self._sorted_ids.shape[0] == 0:
            return np.full(n, -1, np.int64), False
        if n < _TABLE_MIN or n > _TABLE_MAX:
            return self._search(ids), False
        ids = np.ascontiguousarray(ids, U64)
        key = xxhash.xxh64_intdigest(ids.data)
        hit = self._tables.get(key)
        # The ids a kept answer stands for are the registry's own at those idx: no copy of them is kept.
        if hit is not None and np.array_equal(self.ids[hit[0]], ids):
            self._tables.move_to_end(key)
            return hit
        idx = self._search(ids)
        if hit is None and idx.min() >= 0:  # Only all-known answers: they never change (idx only grows).
            idx.flags.writeable = False
            distinct = np.unique(idx).shape[0] == n
            self._tables[key] = (idx, distinct)
            self._tables_size += n
            limit = max(2 * len(self.keys), _TABLE_MAX)
            while self._tables_size > limit:
                self._tables_size -= self._tables.popitem(last=False)[1][0].shape[0]
            return idx, distinct
        return idx, False

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
