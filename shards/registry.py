"""The series registry: which series a shard knows, numbered densely in the order it first saw them.

The :class:`SeriesRegistry` maps a series' ``idx`` to its stable 64-bit series id, its labels (their
name/value pairs interned, so series share them) and its canonical key; a sorted copy of the ids answers
id -> idx lookups for a whole batch at once. :func:`resolve_batch` maps a batch onto it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.labels import Labels
from shardmon.model.samples import U64, SampleBatch


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

    def _labels_of(self, key: bytes) -> Labels:
        if not key:
            return Labels()
        parts = key.decode("utf-8", "surrogateescape").split("\udcff")
        pairs = self._pairs
        return Labels(pairs.setdefault(p, p) for p in zip(parts[0::2], parts[1::2]))

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The idx of each id, or -1 where the series is unknown (vectorised)."""
        if self._sorted_ids.shape[0] == 0:
            return np.full(ids.shape[0], -1, np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos_c = np.minimum(pos, self._sorted_ids.shape[0] - 1)
        hit = self._sorted_ids[pos_c] == ids
        return np.where(hit, self._sorted_idx[pos_c], -1)

    def add(self, new_ids: Sequence[int], new_keys: Sequence[bytes]) -> None:
        """Register series (ids not known yet, each once)."""
        if not new_keys:
            return
        self.keys.extend(new_keys)
        self.labels.extend(self._labels_of(k) for k in new_keys)
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
