"""A shard's blocks: how one is made from samples, when the head's windows are cut into them, and the
list of them the engine keeps in memory.

A block holds the samples of one time window, one chunk per series (FORMAT.md, "Blocks"). The engine
keeps each block's metadata and sorted series ids in a :class:`BlockList`, ordered by (mint, block
id), the order reads merge overlapping blocks in. Blocks leave the list only through
:meth:`BlockList.retire`, around the store's transaction that deletes them (retention, compaction), so
that a read can tell a block deleted under it (read again) from a damaged one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from shardmon.model.histogram import decode
from shardmon.model.samples import U64
from shardmon.shards import chunk, hist_chunk
from shardmon.shards.hist_head import HistSamples
from shardmon.shards.store import BlockMeta


class Block(NamedTuple):
    meta: BlockMeta
    series_ids: np.ndarray  # sorted uint64


def id_field(series_id: int) -> bytes:
    """A series id as the field of the store's hashes: 8 bytes, big-endian."""
    return int(series_id).to_bytes(8, "big")


def backfill_tags(meta: BlockMeta) -> list[str]:
    """The backfill batch tags a block holds: its own (a backfill block's id ends with it) and
    those of the backfill blocks merged into it."""
    last = meta.block_id.rsplit("-", 1)[-1]
    return [*meta.backfill, last] if last.startswith("bf") else list(meta.backfill)


def by_series_and_time(idx: np.ndarray, ts: np.ndarray, vals: np.ndarray):
    """Samples ordered by (series, time), the first of each repeated (series, time) kept."""
    order = np.lexsort((ts, idx))
    idx, ts, vals = idx[order], ts[order], vals[order]
    fresh = np.ones(idx.shape[0], bool)
    fresh[1:] = (idx[1:] != idx[:-1]) | (ts[1:] != ts[:-1])
    return idx[fresh], ts[fresh], vals[fresh]


def encode_block(block_id: str, start: int, end: int, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                 ids_by_idx: np.ndarray, hists: HistSamples | None = None
                 ) -> tuple[BlockMeta, np.ndarray, dict[bytes, bytes]]:
    """A block of the samples ``idx, ts, vals`` (sorted by series idx, then time; ``ids_by_idx``
    maps an idx to its series id) and the histogram samples ``hists`` (sorted alike): its metadata, sorted
    series ids and per-series chunks (format 3 for a series with histograms, FORMAT.md)."""
    chunks: dict[bytes, bytes] = {}
    h_ranges = _runs(hists.idx) if hists is not None and hists.idx.shape[0] else {}
    for i, (a, b) in _runs(idx).items():
        if i in h_ranges:
            continue
        chunks[id_field(int(ids_by_idx[i]))] = chunk.encode(ts[a:b], vals[a:b])
    if h_ranges:
        f_ranges = _runs(idx)
        for i, (ha, hb) in h_ranges.items():
            a, b = f_ranges.get(i, (0, 0))
            decoded = [decode(r) for r in hists.raws[ha:hb]]
            chunks[id_field(int(ids_by_idx[i]))] = hist_chunk.encode_series(ts[a:b], vals[a:b], hists.ts[ha:hb],
                                                                            decoded)
    series_ids = np.frombuffer(b"".join(chunks), ">u8").astype(U64) if chunks else np.empty(0, U64)
    sorted_ids = np.sort(series_ids).astype(U64)
    n_hist = 0 if hists is None else len(hists.raws)
    meta = BlockMeta(block_id=block_id, mint_ms=start, maxt_ms=end, num_series=int(sorted_ids.shape[0]),
                     num_samples=int(ts.shape[0]) + n_hist, size_bytes=sum(len(v) for v in chunks.values()))
    return meta, sorted_ids, chunks


def _runs(idx: np.ndarray) -> dict[int, tuple[int, int]]:
    """Series idx -> (start, end) of its run in ``idx`` (sorted)."""
    if not idx.shape[0]:
        return {}
    bounds = np.flatnonzero(np.diff(idx)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [idx.shape[0]]))
    return {i: (a, b) for i, a, b in zip(idx[starts].tolist(), starts.tolist(), ends.tolist())}


def encode_windows(tag: str, block_ms: int, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                   ids_by_idx: np.ndarray, hists: HistSamples | None = None
                   ) -> list[tuple[BlockMeta, np.ndarray, dict[bytes, bytes]]]:
    """Blocks of their own for samples of any age (sorted by series, then time), one per block window
    they fall in, named ``<mint>-<maxt>-<tag>`` (backfill, and the WAL's samples from the future)."""
    window = ts // block_ms
    h_window = hists.ts // block_ms if hists is not None else np.empty(0, np.int64)
    out = []
    for w in np.union1d(window, h_window).tolist():
        m = window == w
        h = None
        if hists is not None and (hm := np.flatnonzero(h_window == w)).shape[0]:
            h = HistSamples(hists.idx[hm], hists.ts[hm], [hists.raws[j] for j in hm.tolist()])
        out.append(encode_block(f"{w * block_ms}-{(w + 1) * block_ms}-{tag}", w * block_ms, (w + 1) * block_ms,
                                idx[m], ts[m], vals[m], ids_by_idx, h))
    return out


def cut_window(head_range: tuple[int, int] | None, min_valid_ms: int, block_ms: int, now_ms: int
               ) -> tuple[int, int] | None:
    """The block window ``[start, end)`` to cut from the head next, or None: the oldest aligned window
    holding head samples, once the head's newest sample *and* the clock have both passed its end by half
    a block duration (so one sample from the future cannot make the present be cut)."""
    if head_range is None:
        return None
    start = (max(head_range[0], min_valid_ms) // block_ms) * block_ms
    end = start + block_ms
    if min(head_range[1], now_ms) < end + block_ms // 2:
        return None
    return start, end


def flush_bound(head_range: tuple[int, int] | None, now_ms: int) -> int | None:
    """Where ``flush`` ends: every head sample before it goes into blocks and the head's lower bound
    rises to it. Just after the head's newest sample, but never past the clock: samples stamped now
    or later are still accepted after a flush (those few ahead of the clock stay in the head)."""
    if head_range is None:
        return None
    return min(head_range[1] + 1, now_ms)


class BlockList:
    """The blocks of a shard in memory, in read-merge order (mint, block id). Iterating, ``len`` and
    indexing see the blocks as they are now."""

    def __init__(self) -> None:
        self._blocks: list[Block] = []
        self._bf_tags: set[str] = set()  # the backfill batch tags the blocks hold (idempotent backfill)
        #: Blocks whose deletion (retention, compaction) is being committed, and set when there are none.
        self._retiring: set[str] = set()
        self._settled = asyncio.Event()
        self._settled.set()
        #: A deletion's outcome is unknown (its transaction failed): reload the list from the store.
        self.stale = False

    def __iter__(self) -> Iterator[Block]:
        return iter(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def __getitem__(self, i: int) -> Block:
        return self._blocks[i]

    def metas(self) -> list[BlockMeta]:
        return [b.meta for b in self._blocks]

    def load(self, blocks: list[Block]) -> None:
        """The list as the store has it (already in read-merge order)."""
        self._blocks = blocks
        self.stale = False
        self._bf_tags = {t for b in blocks for t in backfill_tags(b.meta)}

    def add(self, meta: BlockMeta, sorted_ids: np.ndarray) -> None:
        """A block the store has just written."""
        self._blocks.append(Block(meta, sorted_ids))
        self._bf_tags.update(backfill_tags(meta))
        self._blocks.sort(key=lambda b: (b.meta.mint_ms, b.meta.block_id))

    def holds_backfill(self, tag: str) -> bool:
        return tag in self._bf_tags

    def overlapping(self, start_ms: int, end_ms: int) -> list[Block]:
        """The blocks with samples that may lie in ``[start_ms, end_ms]``."""
        return [b for b in self._blocks if b.meta.maxt_ms > start_ms and b.meta.mint_ms <= end_ms
                and b.series_ids.shape[0]]

    def gone(self, block: Block) -> bool:
        """Whether ``block`` is (being) deleted, or the list is in doubt: a chunk missing from it is then
        no damage, and the read must list the blocks again."""
        return block.meta.block_id in self._retiring or not any(b is block for b in self._blocks) or self.stale

    async def settled(self) -> None:
        """Wait until no deletion is being committed."""
        await self._settled.wait()

    async def retire(self, block_ids: Sequence[str], commit: Awaitable[None], replacement: Block | None) -> None:
        """Run ``commit`` (the store's transaction deleting ``block_ids``, and writing ``replacement``),
        then swap the blocks in memory at once. While it runs, a read that finds one of these blocks
        gone waits for the swap and reads again. If the outcome is unknown (an error), the list is
        marked ``stale``, to be reloaded from the store before the next read, deletion or compaction."""
        gone = set(block_ids)
        self._retiring |= gone
        self._settled.clear()
        try:
            await commit
        except BaseException:
            self.stale = True
            raise
        else:
            blocks = [b for b in self._blocks if b.meta.block_id not in gone]
            if replacement is not None:
                blocks.append(replacement)
                blocks.sort(key=lambda b: (b.meta.mint_ms, b.meta.block_id))
            self._blocks = blocks
            self._bf_tags = {t for b in blocks for t in backfill_tags(b.meta)}
        finally:
            self._retiring -= gone
            if not self._retiring:
                self._settled.set()
