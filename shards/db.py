"""A shard's database: head, label index and blocks over one Redis, with recovery.

Write path: check the batch, make it durable (new series' labels and the WAL record in one Redis
transaction), apply it to the head, then return, so the caller acknowledges only durable writes.
Writes are idempotent by batch id: the ids of the batches in the WAL are remembered (and rebuilt by
replay), and a batch seen before is acknowledged without appending anything.

Blocks: when the head spans more than 1.5 block durations, the oldest aligned window is encoded into
per-series chunks and stored with the checkpoint (the head's new lower bound and the trim of the WAL
entries now wholly in blocks) in one transaction.

Recovery: load the series labels, the blocks' series lists and the checkpoint, then replay the WAL
entries still in the stream, dropping samples below the checkpoint (they are in blocks).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import xxhash

from model.errors import InvalidWriteError
from model.labels import Labels, Matcher, series_id_of
from model.samples import I64, U64, SampleBatch
from shards import chunk, metrics
from shards.head import Head, SeriesRegistry, resolve_batch
from shards.index import LabelIndex
from shards.store import BlockMeta, RedisStore
from shards.wal import decode_record, encode_record, next_stream_id

log = logging.getLogger(__name__)

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_SEEN_BATCHES = 200_000


class WriteOutcome(NamedTuple):
    appended: int
    rejected: dict[str, int]
    duplicate_batch: bool


class Selection(NamedTuple):
    """Series sorted by labels (registry idx) and their samples one series after the other."""

    idx: np.ndarray
    counts: np.ndarray  # samples per series
    ts: np.ndarray
    vals: np.ndarray


class _Block(NamedTuple):
    meta: BlockMeta
    series_ids: np.ndarray  # sorted uint64


def _id_field(series_id: int) -> bytes:
    return int(series_id).to_bytes(8, "big")


class ShardDB:
    """One shard's storage. All mutations run under one asyncio lock, in WAL order."""

    def __init__(self, store: RedisStore, *, block_duration_ms: int) -> None:
        self.store = store
        self.block_duration_ms = block_duration_ms
        self._lock = asyncio.Lock()
        self._init_state()

    def _init_state(self) -> None:
        self.registry = SeriesRegistry()
        self.index = LabelIndex()
        self.head = Head(self.registry)
        self.blocks: list[_Block] = []
        self._rank: np.ndarray | None = None  # series idx -> position in label order (lazily sorted)
        self._series_mint = np.empty(0, I64)
        self._series_maxt = np.empty(0, I64)
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wal: collections.deque[tuple[str, int]] = collections.deque()  # (entry id, max ts)
        #: Metric family -> the distinct (type, help, unit) seen for it, as /api/v1/metadata lists them.
        self.metadata: dict[str, list[tuple[str, str, str]]] = {}

    # -- recovery --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Recover blocks, index and head from Redis."""
        t0 = time.monotonic()
        await self.store.ping()
        series = await self.store.load_series()
        if series:
            self._register([int.from_bytes(i, "big") for i, _ in series], [k for _, k in series])
        for meta, blob in await self.store.load_blocks():
            ids = np.frombuffer(blob, U64)
            self.blocks.append(_Block(meta, ids))
            idx = self.registry.lookup(ids)
            idx = idx[idx >= 0]
            self._series_mint[idx] = np.minimum(self._series_mint[idx], meta.mint_ms)
            self._series_maxt[idx] = np.maximum(self._series_maxt[idx], meta.maxt_ms - 1)
        for name, raw in (await self.store.load_metadata()).items():
            self.metadata[name] = [tuple(e) for e in json.loads(raw)]
        head_mint = await self.store.head_mint()
        if head_mint is not None:
            self.head.min_valid_ms = head_mint
        replayed = 0
        async for entry_id, batch_id, record in self.store.replay():
            ids, refs, ts, vals = decode_record(record)
            self._apply(batch_id, entry_id, ids, refs, ts, vals)
            replayed += int(ts.shape[0])
        elapsed = time.monotonic() - t0
        metrics.REPLAY_SECONDS.set(elapsed)
        self._update_gauges()
        log.info(
            "recovered %d series, %d blocks, %d WAL entries (%d samples) in %.2fs",
            len(self.registry), len(self.blocks), len(self._wal), replayed, elapsed,
        )

    async def reset(self) -> None:
        """Delete everything: the shard's Redis keys and its memory (tests only)."""
        async with self._lock:
            await self.store.delete_all()
            self._init_state()
        self._update_gauges()

    # -- writing ---------------------------------------------------------------------------------

    async def write(self, batch_id: str, batch: SampleBatch) -> WriteOutcome:
        """Make ``batch`` durable and apply it. Raises InvalidWriteError or ShardUnavailableError."""
        async with self._lock:
            if batch_id in self._seen:
                return WriteOutcome(0, {}, True)
            new_ids, new_keys = self._check_new_series(batch)
            record = encode_record(batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values)
            entry_id = await self.store.append(batch_id, record, {_id_field(i): k for i, k in zip(new_ids, new_keys)})
            return self._apply(
                batch_id, entry_id, batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values,
                new_ids, new_keys,
            )

    async def backfill(self, batch_id: str, batch: SampleBatch) -> WriteOutcome:
        """Write historical samples straight into blocks of their own (one per block window).

        Any age is accepted; the head and its ordering rules are not involved. Within the batch a
        series' samples are sorted and a repeated timestamp keeps its first value. Blocks may
        overlap others in time; reads merge them. Idempotent: a batch id names its blocks.
        """
        async with self._lock:
            tag = f"bf{xxhash.xxh64_hexdigest(batch_id.encode())}"
            if any(b.meta.block_id.endswith(tag) for b in self.blocks):
                return WriteOutcome(0, {}, True)
            new_ids, new_keys = self._check_new_series(batch)
            # Series new to the shard get the idx they will have once registered (after the write).
            ids_by_idx = np.concatenate((self.registry.ids, np.asarray(new_ids, dtype=U64)))
            series_idx = self.registry.lookup(batch.series_ids)
            missing = series_idx < 0
            if missing.any():
                provisional = {sid: len(self.registry) + k for k, sid in enumerate(new_ids)}
                series_idx[missing] = [provisional[int(sid)] for sid in batch.series_ids[missing].tolist()]
            idx = series_idx[batch.sample_series]
            ts, vals = batch.timestamps_ms, batch.values
            order = np.lexsort((ts, idx))
            idx, ts, vals = idx[order], ts[order], vals[order]
            fresh = np.ones(idx.shape[0], bool)
            fresh[1:] = (idx[1:] != idx[:-1]) | (ts[1:] != ts[:-1])
            idx, ts, vals = idx[fresh], ts[fresh], vals[fresh]
            d = self.block_duration_ms
            window = ts // d
            blocks = []
            for w in np.unique(window).tolist():
                m = window == w
                blocks.append(self._encode_block(f"{w * d}-{(w + 1) * d}-{tag}", w * d, (w + 1) * d,
                                                 idx[m], ts[m], vals[m], ids_by_idx))
            await self.store.write_blocks(
                [(meta, ids.tobytes(), chunks) for meta, ids, chunks in blocks],
                {_id_field(i): k for i, k in zip(new_ids, new_keys)},
            )
            if new_keys:
                self._register(new_ids, new_keys)
            for meta, ids, _ in blocks:
                self._add_block(meta, ids)
                pos = self.registry.lookup(ids)
                self._series_mint[pos] = np.minimum(self._series_mint[pos], meta.mint_ms)
                self._series_maxt[pos] = np.maximum(self._series_maxt[pos], meta.maxt_ms - 1)
            metrics.SAMPLES_BACKFILLED.inc(int(ts.shape[0]))
        self._update_gauges()
        return WriteOutcome(int(ts.shape[0]), {}, False)

    def _check_new_series(self, batch: SampleBatch) -> tuple[list[int], list[bytes]]:
        """The series of ``batch`` new to the shard, each checked (id matches labels, has a name)."""
        _, new_ids, new_keys = resolve_batch(self.registry, batch)
        for sid, key in zip(new_ids, new_keys):
            if series_id_of(key) != sid:
                raise InvalidWriteError(f"series id {sid:#x} does not match its labels {key!r}")
            try:
                labels = Labels.from_canonical(key)
            except UnicodeDecodeError:
                raise InvalidWriteError(f"series labels are not valid UTF-8: {key!r}") from None
            if not labels.name:
                raise InvalidWriteError(f"series without a metric name: {labels}")
        return new_ids, new_keys

    def _register(self, ids: Sequence[int], keys: Sequence[bytes]) -> None:
        self._rank = None
        first = len(self.registry)
        self.registry.add(ids, keys)
        self.index.add(first, self.registry.labels[first:])
        n = len(self.registry)
        self._series_mint = np.concatenate((self._series_mint, np.full(n - first, _INT64_MAX, I64)))
        self._series_maxt = np.concatenate((self._series_maxt, np.full(n - first, _INT64_MIN, I64)))

    def _apply(self, batch_id, entry_id, ids, refs, ts, vals, new_ids=(), new_keys=()) -> WriteOutcome:
        if new_keys:
            self._register(new_ids, new_keys)
        series_idx = self.registry.lookup(ids)
        sample_idx = series_idx[refs]
        known = sample_idx >= 0
        if not known.all():
            # Only a damaged Redis (a WAL record whose series labels are gone) gets here.
            metrics.SAMPLES_REJECTED.labels("unknown_series").inc(int((~known).sum()))
            sample_idx, ts, vals = sample_idx[known], ts[known], vals[known]
        res = self.head.append(sample_idx, ts, vals)
        if res.appended:
            metrics.SAMPLES_APPENDED.inc(res.appended)
        if res.duplicates:
            metrics.SAMPLES_DUPLICATE.inc(res.duplicates)
        for reason, count in res.rejected.items():
            metrics.SAMPLES_REJECTED.labels(reason).inc(count)
        if ts.shape[0]:
            np.minimum.at(self._series_mint, sample_idx, ts)
            np.maximum.at(self._series_maxt, sample_idx, ts)
            self._wal.append((entry_id, int(ts.max())))
        else:
            self._wal.append((entry_id, _INT64_MIN))
        self._seen[batch_id] = None
        if len(self._seen) > _SEEN_BATCHES:
            self._seen.popitem(last=False)
        return WriteOutcome(res.appended, res.rejected, False)

    # -- blocks ----------------------------------------------------------------------------------

    async def cut_blocks(self) -> int:
        """Move every block window the head has outgrown into Redis. Returns blocks written."""
        written = 0
        d = self.block_duration_ms
        async with self._lock:
            while True:
                rng = self.head.time_range()
                if rng is None:
                    break
                start = (max(rng[0], self.head.min_valid_ms) // d) * d
                end = start + d
                if rng[1] < end + d // 2:
                    break
                await self._write_block(start, end)
                written += 1
        if written:
            self._update_gauges()
        return written

    async def flush(self) -> int:
        """Move every sample of the head into blocks, the last (partial) window included."""
        written = 0
        d = self.block_duration_ms
        async with self._lock:
            while (rng := self.head.time_range()) is not None:
                start = (max(rng[0], self.head.min_valid_ms) // d) * d
                await self._write_block(start, start + d)
                written += 1
        self._update_gauges()
        return written

    @staticmethod
    def _encode_block(block_id: str, start: int, end: int, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                      ids_by_idx: np.ndarray) -> tuple[BlockMeta, np.ndarray, dict[bytes, bytes]]:
        """A block of the samples ``idx, ts, vals`` (sorted by series idx, then time; ``ids_by_idx``
        maps an idx to its series id): its metadata, sorted series ids and per-series chunks."""
        bounds = np.flatnonzero(np.diff(idx)) + 1
        starts = np.concatenate(([0], bounds)) if idx.shape[0] else np.empty(0, np.int64)
        ends = np.concatenate((bounds, [idx.shape[0]])) if idx.shape[0] else np.empty(0, np.int64)
        chunks: dict[bytes, bytes] = {}
        series_ids = ids_by_idx[idx[starts]] if idx.shape[0] else np.empty(0, U64)
        for sid, a, b in zip(series_ids.tolist(), starts.tolist(), ends.tolist()):
            chunks[_id_field(sid)] = chunk.encode(ts[a:b], vals[a:b])
        sorted_ids = np.sort(series_ids).astype(U64)
        meta = BlockMeta(block_id=block_id, mint_ms=start, maxt_ms=end, num_series=int(sorted_ids.shape[0]),
                         num_samples=int(ts.shape[0]), size_bytes=sum(len(v) for v in chunks.values()))
        return meta, sorted_ids, chunks

    def _add_block(self, meta: BlockMeta, sorted_ids: np.ndarray) -> None:
        self.blocks.append(_Block(meta, sorted_ids))
        self.blocks.sort(key=lambda b: (b.meta.mint_ms, b.meta.block_id))

    async def _write_block(self, start: int, end: int) -> None:
        c = self.head.columns()
        old = c.ts < end
        meta, sorted_ids, chunks = self._encode_block(f"{start}-{end}", start, end, c.idx[old], c.ts[old], c.vals[old],
                                                      self.registry.ids)
        # WAL entries whose samples all lie before the block's end are covered; trim a prefix of them.
        trim_upto = None
        n_trim = 0
        for entry_id, max_ts in self._wal:
            if max_ts >= end:
                break
            trim_upto = entry_id
            n_trim += 1
        trim_minid = next_stream_id(trim_upto) if trim_upto else None
        await self.store.write_block(meta, sorted_ids.tobytes(), chunks, end, trim_minid)
        for _ in range(n_trim):
            self._wal.popleft()
        self.head.split_before(end)
        self._add_block(meta, sorted_ids)
        log.info("cut block %s: %d series, %d samples, %d bytes", meta.block_id, meta.num_series,
                 meta.num_samples, meta.size_bytes)

    # -- reading ---------------------------------------------------------------------------------

    def _select_idx(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> np.ndarray:
        """The idx of the matching series with data around the range, in label order."""
        idx = self.index.select(matchers)
        if idx.shape[0]:
            keep = (self._series_maxt[idx] >= start_ms) & (self._series_mint[idx] <= end_ms)
            idx = idx[keep]
        if self._rank is None or self._rank.shape[0] < len(self.registry):
            # Sorting every series by labels is paid once per change of the series set, not per read.
            order = sorted(range(len(self.registry)), key=self.registry.labels.__getitem__)
            self._rank = np.empty(len(order), np.int64)
            self._rank[np.asarray(order, np.int64)] = np.arange(len(order))
        return idx[np.argsort(self._rank[idx], kind="stable")]

    async def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False
    ) -> Selection:
        """Matching series with their samples in ``[start_ms, end_ms]``, sorted by labels; series
        without samples there are left out (with ``skip_samples``, every matching series, no samples)."""
        idxs = self._select_idx(matchers, start_ms, end_ms)
        if skip_samples:
            return Selection(idxs, np.zeros(idxs.shape[0], np.int64), np.empty(0, I64), np.empty(0, np.float64))
        counts, ts, vals = self.head.read_many(idxs, start_ms, end_ms)
        overlapping = [b for b in self.blocks if b.meta.maxt_ms > start_ms and b.meta.mint_ms <= end_ms
                       and b.series_ids.shape[0]]
        if overlapping and idxs.shape[0]:
            counts, ts, vals = await self._with_blocks(overlapping, idxs, start_ms, end_ms, counts, ts, vals)
        keep = counts > 0
        if not keep.all():
            idxs, counts = idxs[keep], counts[keep]
        return Selection(idxs, counts, ts, vals)

    async def _with_blocks(self, blocks, idxs, start_ms, end_ms, counts, ts, vals):
        """Add the samples in blocks to the head's, series by series (only series found in blocks)."""
        ids = self.registry.ids[idxs]
        from_blocks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for block in blocks:
            pos = np.minimum(np.searchsorted(block.series_ids, ids), block.series_ids.shape[0] - 1)
            present = np.flatnonzero(block.series_ids[pos] == ids)
            if not present.shape[0]:
                continue
            fields = [_id_field(int(ids[p])) for p in present.tolist()]
            for p, data in zip(present.tolist(), await self.store.read_chunks(block.meta.block_id, fields)):
                if data is None:
                    continue
                bts, bvals = chunk.decode(data)
                a = int(np.searchsorted(bts, start_ms, "left"))
                b = int(np.searchsorted(bts, end_ms, "right"))
                if b > a:
                    from_blocks.setdefault(p, []).append((bts[a:b], bvals[a:b]))
        if not from_blocks:
            return counts, ts, vals
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
        return out_counts, np.concatenate(out_ts), np.concatenate(out_vals)

    async def record_metadata(self, entries: Sequence[tuple[str, str, str, str]]) -> None:
        """Remember metric metadata (family, type, help, unit); only what is new is written."""
        changed: dict[str, bytes] = {}
        for name, typ, help_, unit in entries:
            known = self.metadata.setdefault(name, [])
            if (typ, help_, unit) not in known:
                known.append((typ, help_, unit))
                changed[name] = json.dumps(known).encode()
        if changed:
            await self.store.put_metadata(changed)

    def metadata_of(self, metric: str = "", limit: int = 0) -> list[tuple[str, str, str, str]]:
        names = [metric] if metric else sorted(self.metadata)
        if limit:
            names = names[:limit]
        return [(n, *e) for n, es in ((n, self.metadata.get(n, [])) for n in names) for e in es]

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.index.label_names()
        names: set[str] = set()
        for i in self._select_idx(matchers, start_ms, end_ms).tolist():
            names.update(n for n, _ in self.registry.labels[i])
        return sorted(names)

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.index.label_values(name)
        values = {self.registry.labels[i].get(name) for i in self._select_idx(matchers, start_ms, end_ms).tolist()}
        values.discard("")
        return sorted(values)

    # -- observability ---------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        metrics.SERIES.set(len(self.registry))
        metrics.HEAD_SAMPLES.set(self.head.num_samples)
        metrics.BLOCKS.set(len(self.blocks))
        metrics.BLOCK_BYTES.set(sum(b.meta.size_bytes for b in self.blocks))
        metrics.BLOCK_SAMPLES.set(sum(b.meta.num_samples for b in self.blocks))
        metrics.WAL_ENTRIES.set(len(self._wal))

    def update_gauges(self) -> None:
        """Refresh the gauges (cheap; called periodically by the server)."""
        self._update_gauges()
