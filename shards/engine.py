"""The shard's storage engine, :class:`ShardDB`: the head, the series and the blocks, over a
:class:`~shardmon.shards.store.Store` (the shard's Redis; an in-memory store in unit tests).

Write path: check the batch (:mod:`shardmon.shards.limits`: the series limits and the time guard), make it
durable (new series' labels and the WAL record in one store transaction), apply it to the head, then
return, so the caller acknowledges only durable writes. Writes are idempotent by batch id: the ids of
the batches in the WAL are remembered (and rebuilt by replay), and a batch seen before is acknowledged
without appending anything. Backfill writes blocks of their own instead (idempotent by the batch's tag).

Blocks (:mod:`shardmon.shards.blocks`): once the head's newest sample and the clock are both 1.5 block
durations past the oldest window, that window is encoded into per-series chunks and stored with the
checkpoint (the head's new lower bound and the trim of the WAL entries now wholly in blocks) in one
transaction. ``flush`` cuts everything up to now. Retention and compaction: :mod:`shardmon.shards.compact`.

Recovery (:meth:`ShardDB.open`): check the store's identity, load the series labels, the blocks'
series lists and the checkpoint, then replay the WAL entries still in the stream, dropping samples
below the checkpoint (they are in blocks).

Time guards: cuts, ``flush`` and retention never look past the clock, and recovery brings a lower
bound found ahead of the clock back to now and moves the WAL's samples from too far ahead into blocks
of their own, so no timestamp, however odd, can make present-day writes out of bounds or delete
present-day blocks.

Reads (:mod:`shardmon.shards.reads`) merge the blocks overlapping the range, in (mint, block id) order, then the
head, a timestamp once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import xxhash

from shardmon.model import gc_tuning
from shardmon.model.config import ShardsConfig
from shardmon.model.labels import Matcher
from shardmon.model.samples import U64, SampleBatch
from shardmon.shards import compact, hist_head, limits, metrics, reads
from shardmon.shards.blocks import (
    Block,
    BlockList,
    by_series_and_time,
    cut_window,
    encode_block,
    encode_windows,
    flush_bound,
    id_field,
)
from shardmon.shards.head import Head
from shardmon.shards.hist_head import HistHead, HistSamples
from shardmon.shards.limits import SeriesLimitError, WriteOutcome
from shardmon.shards.reads import Selection
from shardmon.shards.series import ShardSeries
from shardmon.shards.store import Store
from shardmon.shards.wal import decode_record_with_histograms, encode_record

log = logging.getLogger(__name__)
#: Tests only (the crash test): seconds to wait, mid block cut, between encoding and the transaction that
#: writes the block and trims the WAL, so that kills land there. Never set in production.
_FAULT_CUT_PAUSE_S = float(os.environ.get("SHARDMON_FAULT_CUT_PAUSE_S", "0") or 0)

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_SEEN_BATCHES = 200_000


class ShardDB:
    """One shard's storage. All mutations run under one asyncio lock, in WAL order."""

    def __init__(
        self,
        store: Store,
        *,
        block_duration_ms: int,
        retention_time_ms: int = 0,
        retention_size_bytes: int = 0,
        compaction_ranges: Sequence[int] | None = None,
        max_active_series: int = 0,
        max_series_per_metric: int = 0,
        out_of_order_window_ms: int = 0,
        max_future_time_ms: int = 600_000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        #: Samples more than this far ahead of the clock are refused (0: no limit).
        self.max_future_time_ms = max_future_time_ms
        #: The shard's wall clock, in ms (tests give their own).
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.out_of_order_window_ms = out_of_order_window_ms
        self.block_duration_ms = block_duration_ms
        self.retention_time_ms = retention_time_ms
        self.retention_size_bytes = retention_size_bytes
        #: Block durations compaction builds; the first is the block duration (blocks cut from the head).
        self.compaction_ranges = list(compaction_ranges or [block_duration_ms])
        self.max_active_series = max_active_series
        self.max_series_per_metric = max_series_per_metric
        self._lock = asyncio.Lock()  # the head, the WAL and blocks cut from the head
        self._maint_lock = asyncio.Lock()  # block deletions: retention and compaction, one at a time
        self._init_state()

    @classmethod
    def from_config(cls, store: Store, cfg: ShardsConfig) -> ShardDB:
        return cls(
            store,
            block_duration_ms=cfg.block_duration,
            retention_time_ms=cfg.retention_time or 0,
            retention_size_bytes=cfg.retention_size,
            compaction_ranges=cfg.compaction_ranges(),
            max_active_series=cfg.max_active_series,
            max_series_per_metric=cfg.max_series_per_metric,
            out_of_order_window_ms=cfg.out_of_order_time_window,
            max_future_time_ms=cfg.max_future_time,
        )

    def _init_state(self) -> None:
        self.series = ShardSeries()
        self.head = Head(self.series.registry, out_of_order_window_ms=self.out_of_order_window_ms)
        self.hists = HistHead()  # the head's native histogram samples
        self.blocks = BlockList()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wal: collections.deque[tuple[str, int]] = collections.deque()  # (entry id, max ts)
        #: Metric family -> the distinct (type, help, unit) seen for it, as /api/v1/metadata lists them.
        self.metadata: dict[str, list[tuple[str, str, str]]] = {}
        #: While a rebuild from replicas runs: how far it is (reads then carry a warning).
        self.rebuilding: str | None = None

    @property
    def registry(self):
        """The shard's :class:`~shardmon.shards.series.SeriesRegistry` (idx -> id, labels, key)."""
        return self.series.registry

    # -- recovery --------------------------------------------------------------------------------

    async def open(self, *, accept_data_loss: bool = False) -> None:
        """Check the store's identity (see :meth:`IdentityGuard.attach <shardmon.shards.identity.IdentityGuard.attach>`),
        then recover blocks, index and head from it. Samples the WAL holds from further ahead than
        ``max_future_time`` (written before that limit existed) are moved into blocks rather than into
        the head, and a stored lower bound ahead of the clock is brought back to now, so recovery follows
        the same time rules as writes."""
        t0 = time.monotonic()
        self._init_state()  # open() may be retried after a failure half-way
        await self.store.ping()
        log.info("redis identity: %s", await self.store.attach(accept_data_loss=accept_data_loss))
        with gc_tuning.paused():  # Recovery makes ~10 long-lived objects per series and no cycles.
            await self._recover(t0)

    async def _recover(self, t0: float) -> None:
        series = await self.store.load_series()
        if series:
            fields = b"".join(i for i, _ in series)
            if len(fields) == 8 * len(series):
                ids = np.frombuffer(fields, ">u8").astype(U64)
            else:  # Not the 8-byte fields FORMAT.md names: parsed one by one, as written.
                ids = np.array([int.from_bytes(i, "big") for i, _ in series], U64)
            self.series.register(ids, [k for _, k in series])
        await self._load_blocks()
        for name, raw in (await self.store.load_metadata()).items():
            self.metadata[name] = [tuple(e) for e in json.loads(raw)]
        head_mint = await self.store.head_mint()
        if head_mint is not None:
            now = self.clock()
            if head_mint > now:
                log.warning("the stored head lower bound %d is ahead of the clock (%d): lowered to now, so that "
                            "present-day samples are accepted", head_mint, now)
                head_mint = now
            self.head.min_valid_ms = head_mint
        replayed = 0
        future: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        async for entry_id, batch_id, record in self.store.replay():
            ids, refs, ts, vals, hcols = decode_record_with_histograms(record)
            self._apply(batch_id, entry_id, ids, refs, ts, vals, future=future, hcols=hcols)
            replayed += int(ts.shape[0]) + (len(hcols) if hcols is not None else 0)
        if future and self.store.lost is None:
            await self._future_into_blocks(future)
        elapsed = time.monotonic() - t0
        metrics.REPLAY_SECONDS.set(elapsed)
        self._update_gauges()
        log.info(
            "recovered %d series, %d blocks, %d WAL entries (%d samples) in %.2fs",
            len(self.series), len(self.blocks), len(self._wal), replayed, elapsed,
        )

    async def _load_blocks(self) -> None:
        """(Re)load the block list from the store and widen the series' time ranges to their blocks."""
        self.blocks.load([Block(meta, np.frombuffer(blob, U64)) for meta, blob in await self.store.load_blocks()])
        for b in self.blocks:
            self.series.widen_to_block(b)

    async def _future_into_blocks(self, future: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Write the WAL's samples from too far ahead (set aside by replay) as blocks of their own, as a
        backfill would, so they are kept without holding the head (or the WAL's trim) in the future. The
        blocks are named by the WAL entries, so a replay after a crash writes them once."""
        tag = "bf" + xxhash.xxh64_hexdigest("\n".join(e for e, *_ in future).encode())
        n = sum(int(t.shape[0]) for _, _, t, _ in future)
        log.warning("the WAL holds %d samples more than shards.max_future_time ahead of the clock (written before "
                    "that limit): kept in blocks of their own, not in the head", n)
        if self.blocks.holds_backfill(tag):
            return
        idx = np.concatenate([i for _, i, _, _ in future])
        ts = np.concatenate([t for _, _, t, _ in future])
        vals = np.concatenate([v for _, _, _, v in future])
        idx, ts, vals = by_series_and_time(idx, ts, vals)
        blocks = encode_windows(tag, self.block_duration_ms, idx, ts, vals, self.registry.ids)
        await self.store.write_blocks([(meta, ids.tobytes(), chunks) for meta, ids, chunks in blocks], {})
        for meta, ids, _ in blocks:
            self.blocks.add(meta, ids)
            self.series.widen_to_block(Block(meta, ids))

    async def reset(self) -> None:
        """Delete everything: the shard's keys in the store and its memory (tests only)."""
        async with self._maint_lock, self._lock:
            await self.store.delete_all()
            self._init_state()
        self._update_gauges()

    # -- writing ---------------------------------------------------------------------------------

    async def write(self, batch_id: str, batch: SampleBatch) -> WriteOutcome:
        """Make ``batch`` durable and apply it. Raises InvalidWriteError (SeriesLimitError when series
        were refused by a limit, after the rest was appended) or ShardUnavailableError."""
        async with self._lock:
            if batch_id in self._seen:
                return WriteOutcome(0, {}, True)
            batch, too_far = limits.drop_future(batch, self.clock(), self.max_future_time_ms)
            if too_far and batch.num_samples + batch.num_histograms == 0:
                # Nothing left: no WAL entry, and the batch id is not remembered (as below).
                return WriteOutcome(0, {"too_far_in_future": too_far}, False)
            new_ids, new_keys, new_names = self.series.check_new(batch)
            refused: dict[str, tuple[int, int]] = {}
            refused_metrics: list[str] = []
            if self.max_active_series or self.max_series_per_metric:
                batch, new_ids, new_keys, refused, refused_metrics = limits.apply_limits(
                    batch, new_ids, new_keys, new_names, self.series, self.series.in_head(self.head, self.hists),
                    self.max_active_series, self.max_series_per_metric)
            if refused and batch.num_samples + batch.num_histograms == 0:
                # Nothing left: nothing goes to the WAL and the batch id is not remembered, so a
                # retry is judged afresh (and may pass once the limit is raised).
                for reason, (_, n_samples) in refused.items():
                    metrics.SAMPLES_REJECTED.labels(reason).inc(n_samples)
                out = WriteOutcome(0, {r: n for r, (_, n) in refused.items()}, False)
                if too_far:
                    out.rejected["too_far_in_future"] = too_far
                raise SeriesLimitError(self._limit_message(refused, refused_metrics, out), out)
            record = encode_record(batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values,
                                   batch.histograms)
            entry_id = await self.store.append(batch_id, record, {id_field(i): k for i, k in zip(new_ids, new_keys)})
            out = self._apply(
                batch_id, entry_id, batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values,
                new_ids, new_keys, hcols=batch.histograms,
            )
        if too_far:
            out = out._replace(rejected={**out.rejected, "too_far_in_future": too_far})
        if refused:
            rejected = dict(out.rejected)
            for reason, (_, n_samples) in refused.items():
                metrics.SAMPLES_REJECTED.labels(reason).inc(n_samples)
                rejected[reason] = rejected.get(reason, 0) + n_samples
            out = out._replace(rejected=rejected)
            raise SeriesLimitError(self._limit_message(refused, refused_metrics, out), out)
        return out

    def _limit_message(self, refused: dict[str, tuple[int, int]], refused_metrics: list[str],
                       out: WriteOutcome) -> str:
        return limits.limit_message(refused, refused_metrics, out, self.max_active_series, self.max_series_per_metric)

    async def backfill(self, batch_id: str, batch: SampleBatch) -> WriteOutcome:
        """Write historical samples straight into blocks of their own (one per block window).

        Any age is accepted; the head and its ordering rules are not involved. Within the batch a
        series' samples are sorted and a repeated timestamp keeps its first value. Blocks may
        overlap others in time; reads merge them, and so does compaction. Idempotent: a batch id names
        its blocks (and a block compacted from them keeps the names in its metadata).
        """
        async with self._lock:
            tag = f"bf{xxhash.xxh64_hexdigest(batch_id.encode())}"
            if self.blocks.holds_backfill(tag):
                return WriteOutcome(0, {}, True)
            batch, too_far = limits.drop_future(batch, self.clock(), self.max_future_time_ms)
            rejected = {"too_far_in_future": too_far} if too_far else {}
            if batch.num_samples + batch.num_histograms == 0:
                return WriteOutcome(0, rejected, False)
            new_ids, new_keys, _ = self.series.check_new(batch)
            # Series new to the shard get the idx they will have once registered (after the write).
            ids_by_idx = np.concatenate((self.registry.ids, np.asarray(new_ids, dtype=U64)))
            series_idx = self.registry.lookup(batch.series_ids)
            missing = series_idx < 0
            if missing.any():
                provisional = {sid: len(self.registry) + k for k, sid in enumerate(new_ids)}
                series_idx[missing] = [provisional[int(sid)] for sid in batch.series_ids[missing].tolist()]
            idx, ts, vals = by_series_and_time(series_idx[batch.sample_series], batch.timestamps_ms, batch.values)
            hists = hist_head.backfill_samples(series_idx, batch.histograms)
            blocks = encode_windows(tag, self.block_duration_ms, idx, ts, vals, ids_by_idx, hists)
            await self.store.write_blocks(
                [(meta, ids.tobytes(), chunks) for meta, ids, chunks in blocks],
                {id_field(i): k for i, k in zip(new_ids, new_keys)},
            )
            if new_keys:
                self.series.register(new_ids, new_keys)
            for meta, ids, _ in blocks:
                self.blocks.add(meta, ids)
                self.series.widen_to_block(Block(meta, ids))
            n = int(ts.shape[0]) + (len(hists.raws) if hists is not None else 0)
            metrics.SAMPLES_BACKFILLED.inc(n)
        self._update_gauges()
        return WriteOutcome(n, rejected, False)

    def _apply(self, batch_id, entry_id, ids, refs, ts, vals, new_ids=(), new_keys=(), future=None,
               hcols=None) -> WriteOutcome:
        """Apply a durable batch to the head. When replaying (``future`` a list), samples too far ahead of
        the clock are set aside there (for :meth:`_future_into_blocks`) instead of entering the head."""
        if new_keys:
            self.series.register(new_ids, new_keys)
        series_idx, distinct = self.registry.lookup_table(ids)  # distinct: every series known, each once
        # A scrape's batch: sample i is of series i (refs None in a WAL record of format 2).
        each_once = distinct and (refs is None or (refs.shape[0] == ids.shape[0] and
                                                   bool((refs == np.arange(refs.shape[0], dtype=refs.dtype)).all())))
        sample_idx = series_idx if refs is None else series_idx[refs]  # None: sample i is of series i
        known = None if distinct else sample_idx >= 0
        if known is not None and not known.all():
            # Only a damaged store (a WAL record whose series labels are gone) gets here.
            metrics.SAMPLES_REJECTED.labels("unknown_series").inc(int((~known).sum()))
            sample_idx, ts, vals = sample_idx[known], ts[known], vals[known]
        if future is not None and ts.shape[0] and int(ts.max()) > self.clock() + self.max_future_time_ms:
            far = limits.split_future(ts, self.clock(), self.max_future_time_ms)
            if far is not None:
                future.append((entry_id, sample_idx[far], ts[far], vals[far]))
                sample_idx, ts, vals = sample_idx[~far], ts[~far], vals[~far]
        clash = None
        if self.hists and ts.shape[0]:  # floats of series with histograms: checked against those too
            sample_idx, ts, vals, clash = hist_head.without_clashes(self.hists, self.head, sample_idx, ts, vals)
        res = self.head.append(sample_idx, ts, vals, each_once=each_once and clash is None)
        if clash:
            res = res._replace(rejected=hist_head.add_counts(res.rejected, clash))
        newest = int(ts.max()) if ts.shape[0] else _INT64_MIN
        if hcols is not None and len(hcols):
            h = hist_head.apply(self.hists, self.head, series_idx, hcols)
            res = res._replace(appended=res.appended + h.appended, duplicates=res.duplicates + h.duplicates,
                               rejected=hist_head.add_counts(res.rejected, h.rejected))
            if h.ts.shape[0]:
                self.series.widen_to_samples(h.idx, h.ts)
            newest = max(newest, int(hcols.timestamps_ms.max()))
        if res.appended:
            metrics.SAMPLES_APPENDED.inc(res.appended)
        if res.duplicates:
            metrics.SAMPLES_DUPLICATE.inc(res.duplicates)
        for reason, count in res.rejected.items():
            metrics.SAMPLES_REJECTED.labels(reason).inc(count)
        if ts.shape[0]:
            self.series.widen_to_samples(sample_idx, ts)
        self._wal.append((entry_id, newest))
        self._seen[batch_id] = None
        if len(self._seen) > _SEEN_BATCHES:
            self._seen.popitem(last=False)
        return WriteOutcome(res.appended, res.rejected, False)

    # -- cutting blocks --------------------------------------------------------------------------

    async def cut_blocks(self) -> int:
        """Move every block window the head and the clock have outgrown into the store (see
        :func:`~shardmon.shards.blocks.cut_window`). Returns blocks written."""
        written = 0
        if self.store.lost is not None:
            return 0
        async with self._lock:
            while (w := cut_window(self._head_range(), self.head.min_valid_ms, self.block_duration_ms,
                                   self.clock())) is not None:
                await self._write_block(*w)
                written += 1
        if written:
            self._update_gauges()
        return written

    async def flush(self) -> int:
        """Move the head's samples into blocks: every sample before :func:`~shardmon.shards.blocks.flush_bound`
        (just after the newest sample, at most now), the last window's as a block ended early (its
        samples before the bound; its metadata still spans the window); the head's lower bound rises to
        that bound, never past the clock, so present-day writes go on."""
        written = 0
        d = self.block_duration_ms
        async with self._lock:
            bound = flush_bound(self._head_range(), self.clock())
            while bound is not None and (rng := self._head_range()) is not None and rng[0] < bound:
                start = (max(rng[0], self.head.min_valid_ms) // d) * d
                await self._write_block(start, start + d, bound)
                written += 1
        self._update_gauges()
        return written

    async def _write_block(self, start: int, end: int, upto: int | None = None) -> None:
        """Cut the block window ``[start, end)`` from the head: its samples before ``upto`` (default: the
        whole window; a flush ends a window early), which becomes the head's lower bound. A block ended
        early is named ``<start>-<end>-f<upto>``, so the rest of its window, cut later, is another block."""
        block_id = f"{start}-{end}"
        if upto is not None and upto < end:
            block_id, end = f"{block_id}-f{upto}", upto
        log.info("cutting block %s", block_id)
        c = self.head.columns()
        old = c.ts < end
        hists: HistSamples | None = self.hists.samples(end) if self.hists else None
        # Encoding takes a while (~0.2 ms a series): off the event loop, so reads and pings go on.
        meta, sorted_ids, chunks = await asyncio.to_thread(
            encode_block, block_id, start, start + self.block_duration_ms, c.idx[old], c.ts[old], c.vals[old],
            self.registry.ids.copy(), hists)
        # WAL entries whose samples all lie before the block's end are covered; trim a prefix of them.
        trim_through = None
        n_trim = 0
        for entry_id, max_ts in self._wal:
            if max_ts >= end:
                break
            trim_through = entry_id
            n_trim += 1
        if _FAULT_CUT_PAUSE_S:  # Fault injection for the crash test: widen the window between encode and commit.
            await asyncio.sleep(_FAULT_CUT_PAUSE_S)
        await self.store.write_blocks([(meta, sorted_ids.tobytes(), chunks)], {}, head_mint_ms=end,
                                      trim_through=trim_through)
        for _ in range(n_trim):
            self._wal.popleft()
        self.head.split_before(end)
        self.hists.split_before(end)
        self.blocks.add(meta, sorted_ids)
        log.info("cut block %s: %d series, %d samples, %d bytes", meta.block_id, meta.num_series,
                 meta.num_samples, meta.size_bytes)

    # -- retention and compaction (shards/compact.py) ---------------------------------------------

    async def maintain(self) -> tuple[int, int]:
        """Apply retention, then compact: ``(blocks deleted, compactions)``."""
        return await self.apply_retention(), await self.compact()

    async def apply_retention(self) -> int:
        """Delete the blocks beyond ``retention_time`` / ``retention_size``; returns how many."""
        if self.store.lost is not None:
            return 0
        async with self._maint_lock:
            await self._resync_if_stale()
            deleted = await compact.delete_beyond_retention(self.store, self.blocks, self.retention_time_ms,
                                                            self.retention_size_bytes, self.clock())
            if not deleted:
                return 0
            self.series.recompute_ranges(self.blocks, self.head, self.hists)
        self._update_gauges()
        return deleted

    async def compact(self) -> int:
        """Merge blocks while the plan finds some to merge (overlapping ones first, then the blocks of
        each closed window of a larger range); returns how many compactions were done."""
        done = 0
        if self.store.lost is not None:
            return 0
        async with self._maint_lock:
            await self._resync_if_stale()
            while group := compact.plan_compaction(self.blocks.metas(), self.compaction_ranges, self._head_bound()):
                t0 = time.perf_counter()
                try:
                    await compact.compact_group(self.store, self.blocks, group)
                except Exception:
                    metrics.COMPACTIONS_FAILED.inc()
                    raise
                metrics.COMPACTIONS.inc()
                metrics.COMPACTION_DURATION.observe(time.perf_counter() - t0)
                done += 1
        if done:
            self._update_gauges()
        return done

    def _head_bound(self) -> int:
        """No block will be cut from the head before this time: windows ending by then are closed."""
        bound = self.head.min_valid_ms if self.head.min_valid_ms > _INT64_MIN else _INT64_MAX
        rng = self._head_range()
        if rng is not None:
            d = self.block_duration_ms
            bound = min(bound, (rng[0] // d) * d)
        return bound

    def _head_range(self) -> tuple[int, int] | None:
        """The head's (min, max) timestamp, floats and histograms, or None when it is empty."""
        return hist_head.joint_range(self.head.time_range(), self.hists.time_range())

    async def resync_blocks(self) -> None:
        """After a deletion whose outcome is unknown (``blocks.stale``): the block list as the store has
        it, once no retention or compaction runs."""
        async with self._maint_lock:
            await self._resync_if_stale()

    async def _resync_if_stale(self) -> None:
        if self.blocks.stale:
            await self._load_blocks()
            self.series.recompute_ranges(self.blocks, self.head, self.hists)
            self._update_gauges()

    # -- reading (shards/reads.py) -----------------------------------------------------------------

    async def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False
    ) -> Selection:
        """Matching series with their samples in ``[start_ms, end_ms]``, sorted by labels; series
        without samples there are left out (with ``skip_samples``, every matching series, no samples)."""
        pieces = [p async for p in self.select_pieces(matchers, start_ms, end_ms, skip_samples=skip_samples)]
        return reads.concat(pieces)

    def select_pieces(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
        max_series: int = reads.NO_LIMIT, max_samples: int = reads.NO_LIMIT, points_per_series: int = 0,
    ) -> AsyncIterator[Selection]:
        """:meth:`select` in pieces, in label order, for streaming (see :func:`shardmon.shards.reads.select_pieces`:
        with limits, :class:`~shardmon.model.errors.QueryLimitError` as soon as the answer would exceed them)."""
        return reads.select_pieces(self, matchers, start_ms, end_ms, skip_samples=skip_samples,
                                   max_series=max_series, max_samples=max_samples,
                                   points_per_series=points_per_series)

    async def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.series.index.label_names()
        names: set[str] = set()
        for i in (await self.series.select(matchers, start_ms, end_ms)).tolist():
            names.update(n for n, _ in self.registry.labels[i])
        return sorted(names)

    async def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.series.index.label_values(name)
        idx = await self.series.select(matchers, start_ms, end_ms)
        values = {self.registry.labels[i].get(name) for i in idx.tolist()}
        values.discard("")
        return sorted(values)

    def read_warnings(self) -> list[str]:
        """Warnings for every read answer: the shard's data may be incomplete."""
        out = []
        if self.store.lost is not None:
            out.append(f"shard {self.store.shard_id}: its Redis lost data ({self.store.lost}); its answer may lack "
                       "samples until it is recovered")
        if self.rebuilding is not None:
            out.append(f"shard {self.store.shard_id}: {self.rebuilding}; its answer may lack samples until done")
        return out

    # -- metric metadata -------------------------------------------------------------------------

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

    # -- observability ---------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        metrics.SERIES.set(len(self.series))
        metrics.HEAD_SERIES.set(int(self.series.in_head(self.head, self.hists).sum()))
        metrics.HEAD_SAMPLES.set(self.head.num_samples + self.hists.num_samples)
        metrics.BLOCKS.set(len(self.blocks))
        block_bytes = sum(b.meta.size_bytes for b in self.blocks)
        block_samples = sum(b.meta.num_samples for b in self.blocks)
        metrics.BLOCK_BYTES.set(block_bytes)
        metrics.BLOCK_SAMPLES.set(block_samples)
        metrics.BLOCK_CHUNKS.set(sum(b.meta.num_series for b in self.blocks))
        metrics.BYTES_PER_SAMPLE.set(block_bytes / block_samples if block_samples else 0)
        metrics.WAL_ENTRIES.set(len(self._wal))
        metrics.REDIS_DATA_LOST.set(1 if self.store.lost is not None else 0)

    def update_gauges(self) -> None:
        """Refresh the gauges (cheap; called periodically by the server)."""
        self._update_gauges()
