"""Reading a shard: the matching series' samples from the blocks and the head, in pieces, within the
query's budget.

The series are found through the label index (:meth:`ShardSeries.select
<shardmon.shards.series.ShardSeries.select>`, in label order) and read in pieces that double in size, from at
most 1,024 series (fewer when the budget affords fewer) up to 65,536; the event loop gets a turn
between pieces. For each piece, the blocks overlapping the range are read first, in (mint, block id)
order, chunk by chunk (only the piece's series), then the head; where blocks overlap one another (a
backfill) a timestamp is kept once, the first one's. A block deleted under a read (retention,
compaction) makes the piece wait for the deletion to commit and read the blocks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from shardmon.model.errors import QueryLimitError, ShardUnavailableError
from shardmon.model.histogram import HistogramColumns, encode
from shardmon.model.labels import Matcher
from shardmon.model.samples import I64
from shardmon.shards import hist_chunk
from shardmon.shards.blocks import Block, BlockList, id_field
from shardmon.shards.head import Head
from shardmon.shards.hist_head import HistHead
from shardmon.shards.registry import SeriesRegistry
from shardmon.shards.series import ShardSeries
from shardmon.shards.store import Store


class ShardDB(Protocol):
    """What a read needs of the shard's database (:class:`shardmon.shards.engine.ShardDB`, which imports this
    module: a Protocol here keeps the imports one way)."""

    series: ShardSeries
    head: Head
    hists: HistHead
    blocks: BlockList
    store: Store

    @property
    def registry(self) -> SeriesRegistry: ...

    async def resync_blocks(self) -> None: ...

#: No limit on the series or samples of an answer.
NO_LIMIT = 2**63 - 1
# A select reads its series in pieces that double from the first (at most _PIECE_FIRST, fewer when the
# limits allow fewer) up to _PIECE_MAX: a select over its limits stops after little reading, a large one
# costs few pieces, and the event loop gets a turn between pieces.
_PIECE_FIRST = 1024
_PIECE_MAX = 65_536


class Selection(NamedTuple):
    """Series sorted by labels (registry idx) and their float samples one series after the other; their
    histogram samples (None: none) by series then time, ``sample_series`` the series' position in ``idx``."""

    idx: np.ndarray
    counts: np.ndarray  # float samples per series
    ts: np.ndarray
    vals: np.ndarray
    hists: HistogramColumns | None = None

    @property
    def num_samples(self) -> int:
        return int(self.ts.shape[0]) + (len(self.hists) if self.hists is not None else 0)


def concat(pieces: Sequence[Selection]) -> Selection:
    """Pieces of one selection (disjoint series, in order) as one."""
    if len(pieces) == 1:
        return pieces[0]
    if not pieces:
        return Selection(np.empty(0, np.int64), np.zeros(0, np.int64), np.empty(0, I64), np.empty(0, np.float64))
    hist = [(p.hists, n) for p, n in zip(pieces, np.cumsum([0] + [p.idx.shape[0] for p in pieces[:-1]]).tolist())
            if p.hists is not None]
    return Selection(*(np.concatenate(parts) for parts in zip(*(p[:4] for p in pieces))),
                     HistogramColumns.concat([h for h, _ in hist], [n for _, n in hist]) if hist else None)


class _BlocksChanged(Exception):
    """A read met a block deleted (retention, compaction) after it listed the blocks: read again."""


async def select_pieces(
    db: ShardDB, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
    max_series: int = NO_LIMIT, max_samples: int = NO_LIMIT, points_per_series: int = 0,
) -> AsyncIterator[Selection]:
    """The matching series of ``db`` with their samples in ``[start_ms, end_ms]``, in pieces, in label
    order (at least one piece); series without samples there are left out (with ``skip_samples``, every
    matching series, no samples).

    With limits, reading stops as soon as the answer would hold more than ``max_series`` series or
    more than ``max_samples`` samples (each series counting ``points_per_series`` on top of its
    own samples): :class:`~shardmon.model.errors.QueryLimitError` is raised before the piece that would
    exceed a limit is yielded, and blocks stop being read as soon as their samples alone would.
    """
    idxs = await db.series.select(matchers, start_ms, end_ms)
    # The most series the limits could allow: reading one more is enough to know they are exceeded.
    affordable = min(max_series, max_samples // points_per_series if points_per_series else NO_LIMIT)
    size = max(1, min(_PIECE_FIRST, affordable + 1))
    n_series = n_samples = 0
    at = 0
    while True:
        part = idxs[at:at + size]
        at += part.shape[0]
        if skip_samples:
            piece = Selection(part, np.zeros(part.shape[0], np.int64), np.empty(0, I64), np.empty(0, np.float64))
        else:
            room = max_samples - n_samples - n_series * points_per_series
            piece = await _read_piece(db, part, start_ms, end_ms, room)
        n_series += piece.idx.shape[0]
        n_samples += piece.num_samples
        if n_series > max_series:
            raise QueryLimitError(f"the answer holds more than {max_series:,} series", "max_series")
        if n_samples + n_series * points_per_series > max_samples:
            raise QueryLimitError(f"the answer holds more than {max_samples:,} samples", "max_samples")
        yield piece
        if at >= idxs.shape[0]:
            return
        size = min(2 * size, _PIECE_MAX)
        await asyncio.sleep(0)  # Let writes in between pieces.


async def _read_piece(db: ShardDB, idxs: np.ndarray, start_ms: int, end_ms: int, room: int) -> Selection:
    """The samples of series ``idxs`` (head and blocks), leaving out series without any;
    :class:`QueryLimitError` as soon as they add up to more than ``room``."""
    counts, ts, vals = db.head.read_many(idxs, start_ms, end_ms)
    h_parts: dict[int, list[tuple[list[int], list]]] = {}
    if db.hists:
        for p in db.hists.having(idxs).tolist():
            h_ts, h_raws = db.hists.read(int(idxs[p]), start_ms, end_ms)
            if h_ts:
                h_parts[p] = [(h_ts, h_raws)]
    if ts.shape[0] + sum(len(t) for parts in h_parts.values() for t, _ in parts) > room:
        raise QueryLimitError(f"the answer holds more than {room:,} samples", "max_samples")
    h_from_blocks: dict[int, list[tuple[list[int], list]]] = {}
    if idxs.shape[0]:
        for _ in range(100):
            if db.blocks.stale:
                await db.resync_blocks()
            overlapping = db.blocks.overlapping(start_ms, end_ms)
            if not overlapping:
                break
            try:
                counts, ts, vals, h_from_blocks = await _with_blocks(db, overlapping, idxs, start_ms, end_ms, counts,
                                                                   ts, vals, room=room)
                break
            except _BlocksChanged:
                await db.blocks.settled()  # the deletion has committed: list the blocks again
        else:
            raise ShardUnavailableError("blocks kept changing under a read")
    for p, parts in h_from_blocks.items():
        h_parts[p] = parts + h_parts.get(p, [])
    hists = _merge_histograms(h_parts, idxs.shape[0]) if h_parts else None
    keep = counts > 0
    if hists is not None:
        keep |= np.bincount(hists.sample_series, minlength=idxs.shape[0]) > 0
    if not keep.all():
        idxs, counts = idxs[keep], counts[keep]
        if hists is not None:
            hists = hists.with_series((np.cumsum(keep) - 1)[hists.sample_series])
    return Selection(idxs, counts, ts, vals, hists)


def _merge_histograms(parts: dict[int, list[tuple[list[int], list]]], n: int) -> HistogramColumns:
    """Per series position, its histogram parts (blocks in read order, then the head: timestamps and encoded
    histograms, or :class:`~shardmon.model.histogram.Histogram` from a chunk) merged by time, a timestamp once
    (the first part's)."""
    series: list[int] = []
    stamps: list[int] = []
    raws: list[bytes] = []
    for p in sorted(parts):
        seen: dict[int, bytes] = {}
        for ts, hs in parts[p]:
            for t, h in zip(ts, hs):
                if t not in seen:
                    seen[t] = h if isinstance(h, bytes) else encode(h)
        for t in sorted(seen):
            series.append(p)
            stamps.append(t)
            raws.append(seen[t])
    ends = np.cumsum([len(r) for r in raws], dtype=np.int64)
    return HistogramColumns(np.asarray(series, np.uint32), np.asarray(stamps, I64), b"".join(raws),
                            ends.astype(np.uint32))


async def _with_blocks(db: ShardDB, blocks: list[Block], idxs, start_ms, end_ms, counts, ts, vals, *,
                       room: int = NO_LIMIT):
    """Add the samples in blocks to the head's, series by series (only series found in blocks);
    :class:`QueryLimitError` once the samples read add up to more than ``room``."""
    ids = db.registry.ids[idxs]
    from_blocks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    h_blocks: dict[int, list[tuple[list[int], list]]] = {}
    total = ts.shape[0]  # An upper bound (a block may repeat a sample of the head); exact enough to stop at.
    for block in blocks:
        pos = np.minimum(np.searchsorted(block.series_ids, ids), block.series_ids.shape[0] - 1)
        present = np.flatnonzero(block.series_ids[pos] == ids)
        if not present.shape[0]:
            continue
        fields = [id_field(int(ids[p])) for p in present.tolist()]
        for p, data in zip(present.tolist(), await db.store.read_chunks(block.meta.block_id, fields)):
            if data is None:
                if db.blocks.gone(block):
                    raise _BlocksChanged(block.meta.block_id)
                continue  # Only a damaged store (a block without one of its chunks) gets here.
            bts, bvals, hts, hs = hist_chunk.decode_series(data)
            a = int(np.searchsorted(bts, start_ms, "left"))
            b = int(np.searchsorted(bts, end_ms, "right"))
            if b > a:
                from_blocks.setdefault(p, []).append((bts[a:b], bvals[a:b]))
                total += b - a
            if hs:
                a = int(np.searchsorted(hts, start_ms, "left"))
                b = int(np.searchsorted(hts, end_ms, "right"))
                if b > a:
                    h_blocks.setdefault(p, []).append((hts[a:b].tolist(), hs[a:b]))
                    total += b - a
        if total > room:
            raise QueryLimitError(f"the answer holds more than {room:,} samples", "max_samples")
    if not from_blocks:
        return counts, ts, vals, h_blocks
    ends = np.cumsum(counts)
    starts = ends - counts
    out_ts, out_vals, out_counts = [], [], counts.copy()
    for p in range(idxs.shape[0]):
        hts, hvals = ts[starts[p]:ends[p]], vals[starts[p]:ends[p]]
        parts = from_blocks.get(p)
        if parts:
            hts = np.concatenate([t for t, _ in parts] + [hts])
            hvals = np.concatenate([v for _, v in parts] + [hvals])
            if hts.shape[0] > 1 and (np.diff(hts) <= 0).any():
                # Backfilled blocks overlap others: merge by time, a timestamp once.
                hts, first = np.unique(hts, return_index=True)
                hvals = hvals[first]
            out_counts[p] = hts.shape[0]
        out_ts.append(hts)
        out_vals.append(hvals)
    return out_counts, np.concatenate(out_ts), np.concatenate(out_vals), h_blocks
