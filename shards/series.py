"""The series a shard knows and what the engine keeps per series.

:class:`ShardSeries` holds the :class:`~shardmon.shards.registry.SeriesRegistry` (idx -> id, labels, key) and
adds the label index (postings for matchers), each series' time range over the head and the blocks (a
read skips series without data in its range), its metric name's code (for the per-metric limit) and the
label order reads answer in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from shardmon.model.errors import InvalidWriteError
from shardmon.model.labels import Labels, Matcher, series_id_of
from shardmon.model.samples import I64, SampleBatch
from shardmon.shards.index import LabelIndex
from shardmon.shards.registry import SeriesRegistry, resolve_batch

if TYPE_CHECKING:
    from shardmon.shards.blocks import Block
    from shardmon.shards.head import Head
    from shardmon.shards.hist_head import HistHead

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


class ShardSeries:
    """Every series of the shard, with its index entry, time range and metric code (see the module)."""

    def __init__(self) -> None:
        self.registry = SeriesRegistry()
        self.index = LabelIndex()
        self.metric_codes: dict[str, int] = {}  # metric name -> code
        self.metric_of = np.empty(0, np.int64)  # series idx -> metric code
        #: Series idx -> its first and last sample's time, in the head or in blocks (a superset).
        self.mint = np.empty(0, I64)
        self.maxt = np.empty(0, I64)
        self._rank: np.ndarray | None = None  # series idx -> position in label order (lazily sorted)

    def __len__(self) -> int:
        return len(self.registry)

    def check_new(self, batch: SampleBatch) -> tuple[list[int], list[bytes], list[str]]:
        """The series of ``batch`` new to the shard, each checked (id matches labels, has a name):
        their ids, label bytes and metric names. InvalidWriteError for a series that fails."""
        _, new_ids, new_keys = resolve_batch(self.registry, batch)
        names = []
        for sid, key in zip(new_ids, new_keys):
            if series_id_of(key) != sid:
                raise InvalidWriteError(f"series id {sid:#x} does not match its labels {key!r}")
            try:
                labels = Labels.from_canonical(key)
            except UnicodeDecodeError:
                raise InvalidWriteError(f"series labels are not valid UTF-8: {key!r}") from None
            if not labels.name:
                raise InvalidWriteError(f"series without a metric name: {labels}")
            names.append(labels.name)
        return new_ids, new_keys, names

    def register(self, ids: Sequence[int], keys: Sequence[bytes]) -> None:
        """Add series new to the shard (each once), with an empty time range."""
        self._rank = None
        first = len(self.registry)
        self.registry.add(ids, keys)
        self.index.add(first, self.registry.labels[first:])
        n = len(self.registry)
        codes = self.metric_codes
        self.metric_of = np.concatenate((self.metric_of, np.fromiter(
            (codes.setdefault(lbls.name, len(codes)) for lbls in self.registry.labels[first:]), np.int64, n - first)))
        self.mint = np.concatenate((self.mint, np.full(n - first, _INT64_MAX, I64)))
        self.maxt = np.concatenate((self.maxt, np.full(n - first, _INT64_MIN, I64)))

    def widen_to_block(self, block: Block) -> None:
        """Widen the time range of the block's series to the block's window."""
        idx = self.registry.lookup(block.series_ids)
        idx = idx[idx >= 0]
        self.mint[idx] = np.minimum(self.mint[idx], block.meta.mint_ms)
        self.maxt[idx] = np.maximum(self.maxt[idx], block.meta.maxt_ms - 1)

    def widen_to_samples(self, sample_idx: np.ndarray, ts: np.ndarray) -> None:
        """Widen each series' time range to its samples (``sample_idx`` per sample, at least one)."""
        np.minimum.at(self.mint, sample_idx, ts)  # unbuffered: a series found twice counts both
        np.maximum.at(self.maxt, sample_idx, ts)

    def recompute_ranges(self, blocks: Iterable[Block], head: Head, hists: HistHead | None = None) -> None:
        """Each series' time range from the blocks left and the head (after blocks were deleted)."""
        n = len(self.registry)
        mint = np.full(n, _INT64_MAX, I64)
        maxt = np.full(n, _INT64_MIN, I64)
        for b in blocks:
            idx = self.registry.lookup(b.series_ids)
            idx = idx[idx >= 0]
            mint[idx] = np.minimum(mint[idx], b.meta.mint_ms)
            maxt[idx] = np.maximum(maxt[idx], b.meta.maxt_ms - 1)
        if head.num_samples:
            c = head.columns()
            lo, hi = c.offsets[:-1], c.offsets[1:]
            has = np.flatnonzero(hi > lo)
            mint[has] = np.minimum(mint[has], c.ts[lo[has]])
            maxt[has] = np.maximum(maxt[has], c.ts[hi[has] - 1])
        if hists:
            h = hists.samples()
            np.minimum.at(mint, h.idx, h.ts)
            np.maximum.at(maxt, h.idx, h.ts)
        self.mint, self.maxt = mint, maxt

    def in_head(self, head: Head, hists: HistHead | None = None) -> np.ndarray:
        """Per series: whether it has samples in the head (its latest float or histogram sample is at or
        after the head's lower bound). These are the series the series limits count."""
        n = len(self.registry)
        last = np.full(n, _INT64_MIN, I64)
        m = min(n, head.last_ts.shape[0])
        last[:m] = head.last_ts[:m]
        if hists:
            last = np.maximum(last, hists.last_per_series(n))
        return (last > _INT64_MIN) & (last >= head.min_valid_ms)

    async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> np.ndarray:
        """The idx of the matching series with data around the range, in label order.

        A regex scan over many label values runs in a worker thread (LabelIndex.select_async); the rest
        runs on the event loop after it, in one go."""
        idx = await self.index.select_async(matchers)
        if idx.shape[0]:
            keep = (self.maxt[idx] >= start_ms) & (self.mint[idx] <= end_ms)
            idx = idx[keep]
        if self._rank is None or self._rank.shape[0] < len(self.registry):
            # Sorting every series by labels is paid once per change of the series set, not per read.
            order = sorted(range(len(self.registry)), key=self.registry.labels.__getitem__)
            self._rank = np.empty(len(order), np.int64)
            self._rank[np.asarray(order, np.int64)] = np.arange(len(order))
        return idx[np.argsort(self._rank[idx], kind="stable")]
