"""Retention and compaction of a shard's blocks, as Prometheus's.

Retention deletes whole blocks once their end is ``retention_time`` older than the newest block's end
(never counted from later than the clock), or, oldest first, while all blocks together exceed
``retention_size`` bytes. Compaction merges overlapping blocks first, then the blocks lying in one
aligned window of a larger range (3, 9, 27... block durations) that the head has left behind. Each
deletion or merge is one store transaction, run through :meth:`BlockList.retire
<shardmon.shards.blocks.BlockList.retire>` so the in-memory list changes right after it commits.

The planning (:func:`blocks_beyond_retention`, :func:`plan_compaction`) and the merging of chunks
(:func:`merge_block_chunks`) are pure; :func:`delete_beyond_retention` and :func:`compact_group` do
the work on a store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import xxhash

from shardmon.model.samples import U64
from shardmon.shards import hist_chunk, metrics
from shardmon.shards.blocks import Block, BlockList, backfill_tags
from shardmon.shards.store import BlockMeta, Store

log = logging.getLogger(__name__)

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_MERGE_SLICE = 500  # series merged by a compaction between two yields to the event loop


def blocks_beyond_retention(
    metas: Sequence[BlockMeta], retention_time_ms: int, retention_size_bytes: int, now_ms: int = _INT64_MAX
) -> list[tuple[BlockMeta, str]]:
    """The blocks retention deletes, each with its reason (``"time"`` or ``"size"``), as Prometheus's
    BeyondTimeRetention and BeyondSizeRetention: by time, every block whose end is at least
    ``retention_time_ms`` older than the newest block's end, or than ``now_ms`` if that is earlier (a
    block from the future cannot make present-day blocks look old); by size, going from the newest block
    to the oldest (by end), every block from the first one that brings the total over the limit on. 0
    turns a rule off. Only block bytes count towards the size (not the head or the WAL)."""
    out: dict[str, tuple[BlockMeta, str]] = {}
    if not metas:
        return []
    if retention_time_ms > 0:
        newest = min(max(m.maxt_ms for m in metas), now_ms)
        for m in metas:
            if newest - m.maxt_ms >= retention_time_ms:
                out[m.block_id] = (m, "time")
    if retention_size_bytes > 0:
        rest = sorted((m for m in metas if m.block_id not in out),
                      key=lambda m: (m.maxt_ms, m.mint_ms, m.block_id), reverse=True)
        total = 0
        for i, m in enumerate(rest):
            total += m.size_bytes
            if total > retention_size_bytes:
                for old in rest[i:]:
                    out[old.block_id] = (old, "size")
                break
    return sorted(out.values(), key=lambda e: (e[0].mint_ms, e[0].block_id))


def plan_compaction(metas: Sequence[BlockMeta], ranges: Sequence[int], head_bound_ms: int) -> list[BlockMeta]:
    """The blocks to merge next into one (empty: nothing to do), as Prometheus's leveled compactor plans:

    1. overlapping blocks first: the first group of blocks (by start) that overlap one another;
    2. else, for each range after the first (3, 9, ... block durations), the first aligned window
       ``[k·range, (k+1)·range)`` holding two blocks or more entirely, if the window ends no later than
       ``head_bound_ms`` (the head will cut no more blocks into it). Gaps are allowed.
    """
    ordered = sorted(metas, key=lambda m: (m.mint_ms, m.block_id))
    group: list[BlockMeta] = []
    group_end = _INT64_MIN
    for m in ordered:
        if group and m.mint_ms < group_end:
            group.append(m)
            group_end = max(group_end, m.maxt_ms)
            continue
        if len(group) > 1:
            return group
        group, group_end = [m], m.maxt_ms
    if len(group) > 1:
        return group
    for rng in ranges[1:]:
        windows: dict[int, list[BlockMeta]] = {}
        for m in ordered:
            start = (m.mint_ms // rng) * rng
            if m.maxt_ms <= start + rng:
                windows.setdefault(start, []).append(m)
        for start in sorted(windows):
            if len(windows[start]) > 1 and start + rng <= head_bound_ms:
                return windows[start]
    return []


def merge_block_chunks(
    sources: Sequence[Mapping[bytes, bytes]], num_samples: int, fields: Sequence[bytes] | None = None
) -> tuple[dict[bytes, bytes], int]:
    """Merge the chunks of blocks (in the order reads merge them) into one block's chunks.

    A series found in one block keeps its chunk byte for byte; one found in several has its samples
    concatenated in block order and, where timestamps repeat, the first kept, exactly as a read merges
    them. ``num_samples`` is the sources' total; returns the chunks (of ``fields`` only, if given) and
    ``num_samples`` less the repeated samples dropped.
    """
    out: dict[bytes, bytes] = {}
    if fields is None:
        fields = list(dict.fromkeys(f for src in sources for f in src))
    for field in fields:
        parts = [src[field] for src in sources if field in src]
        if len(parts) == 1:
            out[field] = parts[0]
            continue
        decoded = [hist_chunk.decode_series(p) for p in parts]
        ts = np.concatenate([t for t, *_ in decoded])
        vals = np.concatenate([v for _, v, *_ in decoded])
        if ts.shape[0] > 1 and (np.diff(ts) <= 0).any():
            n_in = ts.shape[0]
            ts, first = np.unique(ts, return_index=True)
            vals = vals[first]
            num_samples -= n_in - ts.shape[0]
        hts = np.concatenate([d[2] for d in decoded])
        hists = [h for d in decoded for h in d[3]]
        if hts.shape[0] > 1 and (np.diff(hts) <= 0).any():
            n_in = hts.shape[0]
            hts, first = np.unique(hts, return_index=True)
            hists = [hists[j] for j in first.tolist()]
            num_samples -= n_in - hts.shape[0]
        out[field] = hist_chunk.encode_series(ts, vals, hts, hists)
    return out, num_samples


async def delete_beyond_retention(store: Store, blocks: BlockList, retention_time_ms: int,
                                  retention_size_bytes: int, now_ms: int) -> int:
    """Delete the blocks beyond the retention (one transaction); returns how many."""
    doomed = blocks_beyond_retention(blocks.metas(), retention_time_ms, retention_size_bytes, now_ms)
    if not doomed:
        return 0
    ids = [m.block_id for m, _ in doomed]
    await blocks.retire(ids, store.delete_blocks(ids), None)
    for meta, reason in doomed:
        metrics.RETENTION_DELETIONS.labels(reason).inc()
        log.info("retention (%s) deleted block %s: %d series, %d samples, %d bytes", reason, meta.block_id,
                 meta.num_series, meta.num_samples, meta.size_bytes)
    return len(doomed)


async def compact_group(store: Store, blocks: BlockList, group: Sequence[BlockMeta]) -> None:
    """Merge the blocks of ``group`` into one and replace them with it, in one transaction. The new
    block is ``<mint>-<maxt>-c<h>``, ``<h>`` the xxhash64 of its sources' ids (FORMAT.md)."""
    ids = {m.block_id for m in group}
    sources = [b for b in blocks if b.meta.block_id in ids]  # in read-merge order
    datas = [await store.read_block(b.meta.block_id) for b in sources]
    # Merged on the event loop a slice of series at a time, letting writes and reads in between
    # (not in a thread: the chunk codec's zstd contexts are shared and not thread-safe).
    fields = list(dict.fromkeys(f for data in datas for f in data))
    chunks: dict[bytes, bytes] = {}
    num_samples = sum(b.meta.num_samples for b in sources)
    for a in range(0, len(fields), _MERGE_SLICE):
        part, num_samples = merge_block_chunks(datas, num_samples, fields[a:a + _MERGE_SLICE])
        chunks.update(part)
        await asyncio.sleep(0)
    # Big-endian fixed-width fields sort as the numbers they hold.
    sorted_ids = np.frombuffer(b"".join(sorted(chunks)), ">u8").astype(U64)
    mint = min(b.meta.mint_ms for b in sources)
    maxt = max(b.meta.maxt_ms for b in sources)
    tags = sorted({t for b in sources for t in backfill_tags(b.meta)})
    digest = xxhash.xxh64_hexdigest("\n".join(b.meta.block_id for b in sources).encode())
    meta = BlockMeta(block_id=f"{mint}-{maxt}-c{digest}", mint_ms=mint, maxt_ms=maxt,
                     num_series=int(sorted_ids.shape[0]), num_samples=num_samples,
                     size_bytes=sum(len(v) for v in chunks.values()), backfill=tuple(tags))
    old_ids = [b.meta.block_id for b in sources]
    await blocks.retire(old_ids, store.replace_blocks(meta, sorted_ids.tobytes(), chunks, old_ids),
                        Block(meta, sorted_ids))
    log.info("compacted %d blocks (%s) into %s: %d series, %d samples, %d -> %d bytes", len(sources),
             ", ".join(old_ids), meta.block_id, meta.num_series, meta.num_samples,
             sum(b.meta.size_bytes for b in sources), meta.size_bytes)
