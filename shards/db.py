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

Limits: with ``max_active_series`` / ``max_series_per_metric``, a write's series new to the head beyond
a limit are refused before anything is made durable: their samples never reach the WAL (so replay needs
no limits and gives the same head), the rest of the batch is appended, and the write then fails with
:class:`SeriesLimitError` (non-retryable, gRPC INVALID_ARGUMENT).

Time guards: samples more than ``max_future_time`` ahead of the shard's clock are refused
(``too_far_in_future``) by writes and backfill before anything is made durable. Block cuts, ``flush``
and retention never look past the clock: a window is cut once the clock (or the head's newest sample,
if older) has passed it by half a block duration, ``flush`` raises the head's lower bound to at most
now, and time retention counts from the newest block's end or now, whichever is earlier; a lower
bound found ahead of the clock at recovery is brought back to now. So no timestamp, however odd, can
make present-day writes out of bounds or delete present-day blocks.

Retention and compaction (as Prometheus's): whole blocks are deleted once their end is
``retention_time`` older than the newest block's end (never counted from later than the clock), or,
oldest first, while all blocks together exceed ``retention_size`` bytes. Overlapping blocks are merged,
and blocks that lie in one aligned window of a larger compaction range (3, 9, 27... block durations), a
window the head has left behind, are merged into one block. Each deletion or merge is one Redis
transaction, and the in-memory block list changes right after it commits; a read that meets a block
deleted under it starts again.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import xxhash

from model.config import ShardsConfig
from model.errors import InvalidWriteError, QueryLimitError, ShardUnavailableError
from model.labels import Labels, Matcher, series_id_of
from model.samples import I64, U64, SampleBatch
from shards import chunk, metrics
from shards.head import Head, SeriesRegistry, resolve_batch
from shards.index import LabelIndex
from shards.store import BlockMeta, RedisStore
from shards.wal import decode_record, encode_record, next_stream_id

log = logging.getLogger(__name__)
#: Tests only (the crash test): seconds to wait, mid block cut, between encoding and the transaction that
#: writes the block and trims the WAL, so that kills land there. Never set in production.
_FAULT_CUT_PAUSE_S = float(os.environ.get("SHARDMON_FAULT_CUT_PAUSE_S", "0") or 0)

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_SEEN_BATCHES = 200_000
# A select reads its series in pieces that double from the first (at most _PIECE_FIRST, fewer when the
# limits allow fewer) up to _PIECE_MAX: a select over its limits stops after little reading, a large one
# costs few pieces, and the event loop gets a turn between pieces.
_PIECE_FIRST = 1024
_PIECE_MAX = 65_536
_NO_LIMIT = 2**63 - 1
_MERGE_SLICE = 500  # series merged by a compaction between two yields to the event loop


class SeriesLimitError(InvalidWriteError):
    """A write brought series new to the head beyond ``shards.max_active_series`` or
    ``shards.max_series_per_metric``. The samples of the other series were appended (durably) and the
    batch id is remembered when any were; the refused series' samples are not in the WAL. Not
    retryable: retrying cannot succeed until series leave the head or the limit is raised."""

    def __init__(self, message: str, outcome: WriteOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


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


def _backfill_tags(meta: BlockMeta) -> list[str]:
    """The backfill batch tags a block holds: its own (a backfill block's id ends with it) and
    those of the backfill blocks merged into it."""
    last = meta.block_id.rsplit("-", 1)[-1]
    return [*meta.backfill, last] if last.startswith("bf") else list(meta.backfill)


class _BlocksChanged(Exception):
    """A read met a block deleted (retention, compaction) after it listed the blocks: read again."""


# -- pure logic: retention, compaction planning, series limits, merging ------------------------------

_ADMITTED, _SERIES_LIMIT, _METRIC_SERIES_LIMIT = 0, 1, 2
LIMIT_REASONS = {_SERIES_LIMIT: "series_limit", _METRIC_SERIES_LIMIT: "metric_series_limit"}


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


def split_future(ts: np.ndarray, now_ms: int, max_future_ms: int) -> np.ndarray | None:
    """A mask of the timestamps more than ``max_future_ms`` ahead of ``now_ms`` (None when there are
    none, or when ``max_future_ms`` is 0: no limit)."""
    if max_future_ms <= 0 or not ts.shape[0]:
        return None
    far = ts > now_ms + max_future_ms
    return far if far.any() else None


def admit_series(
    metric: np.ndarray, metric_active: np.ndarray | None, active: int, max_active: int, max_per_metric: int
) -> np.ndarray:
    """Which series new to the head a write may add, in the order they come.

    ``metric`` is each candidate's metric code, ``metric_active`` the series already in the head per
    code (codes past its end have none), ``active`` the series in the head. Returns a reason per
    candidate: 0 admitted, 1 ``series_limit``, 2 ``metric_series_limit`` (checked first, so a series
    refused by its metric takes no room under the shard's limit). A limit of 0 is no limit.
    """
    n = metric.shape[0]
    reasons = np.zeros(n, np.int8)
    if not n:
        return reasons
    if max_per_metric > 0:
        order = np.argsort(metric, kind="stable")
        m_sorted = metric[order]
        first = np.ones(n, bool)
        first[1:] = m_sorted[1:] != m_sorted[:-1]
        starts = np.flatnonzero(first)
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        rank = np.empty(n, np.int64)
        rank[order] = rank_sorted
        before = np.zeros(n, np.int64)
        if metric_active is not None and metric_active.shape[0]:
            known = metric < metric_active.shape[0]
            before[known] = metric_active[metric[known]]
        reasons[before + rank >= max_per_metric] = _METRIC_SERIES_LIMIT
    if max_active > 0:
        ok = reasons == _ADMITTED
        position = np.cumsum(ok) - 1  # among the series still admitted
        reasons[ok & (active + position >= max_active)] = _SERIES_LIMIT
    return reasons


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
        decoded = [chunk.decode(p) for p in parts]
        ts = np.concatenate([t for t, _ in decoded])
        vals = np.concatenate([v for _, v in decoded])
        if ts.shape[0] > 1 and (np.diff(ts) <= 0).any():
            n_in = ts.shape[0]
            ts, first = np.unique(ts, return_index=True)
            vals = vals[first]
            num_samples -= n_in - ts.shape[0]
        out[field] = chunk.encode(ts, vals)
    return out, num_samples


def _by_series_and_time(idx: np.ndarray, ts: np.ndarray, vals: np.ndarray):
    """Samples ordered by (series, time), the first of each repeated (series, time) kept."""
    order = np.lexsort((ts, idx))
    idx, ts, vals = idx[order], ts[order], vals[order]
    fresh = np.ones(idx.shape[0], bool)
    fresh[1:] = (idx[1:] != idx[:-1]) | (ts[1:] != ts[:-1])
    return idx[fresh], ts[fresh], vals[fresh]


class ShardDB:
    """One shard's storage. All mutations run under one asyncio lock, in WAL order."""

    def __init__(
        self,
        store: RedisStore,
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
    def from_config(cls, store: RedisStore, cfg: ShardsConfig) -> ShardDB:
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
        self.registry = SeriesRegistry()
        self.index = LabelIndex()
        self.head = Head(self.registry, out_of_order_window_ms=self.out_of_order_window_ms)
        self.blocks: list[_Block] = []
        self._rank: np.ndarray | None = None  # series idx -> position in label order (lazily sorted)
        self._series_mint = np.empty(0, I64)
        self._series_maxt = np.empty(0, I64)
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wal: collections.deque[tuple[str, int]] = collections.deque()  # (entry id, max ts)
        self._metric_codes: dict[str, int] = {}  # metric name -> code
        self._metric_of = np.empty(0, np.int64)  # series idx -> metric code
        #: Blocks whose deletion (retention, compaction) is being committed, and set when there are none.
        self._retiring: set[str] = set()
        self._settled = asyncio.Event()
        self._settled.set()
        self._blocks_stale = False  # a deletion's outcome is unknown: reload the block list from Redis
        self._bf_tags: set[str] = set()  # the backfill batch tags the blocks hold (see backfill)
        #: Metric family -> the distinct (type, help, unit) seen for it, as /api/v1/metadata lists them.
        self.metadata: dict[str, list[tuple[str, str, str]]] = {}
        #: While a rebuild from replicas runs: how far it is (reads then carry a warning).
        self.rebuilding: str | None = None

    # -- recovery --------------------------------------------------------------------------------

    async def open(self, *, accept_data_loss: bool = False) -> None:
        """Check the Redis's identity (see :meth:`RedisStore.attach`), then recover blocks, index and head
        from it. Samples the WAL holds from further ahead than ``max_future_time`` (written before that
        limit existed) are moved into blocks rather than into the head, and a stored lower bound ahead of
        the clock is brought back to now, so recovery follows the same time rules as writes."""
        t0 = time.monotonic()
        self._init_state()  # open() may be retried after a failure half-way
        await self.store.ping()
        log.info("redis identity: %s", await self.store.attach(accept_data_loss=accept_data_loss))
        series = await self.store.load_series()
        if series:
            self._register([int.from_bytes(i, "big") for i, _ in series], [k for _, k in series])
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
            ids, refs, ts, vals = decode_record(record)
            self._apply(batch_id, entry_id, ids, refs, ts, vals, future=future)
            replayed += int(ts.shape[0])
        if future and self.store.lost is None:
            await self._future_into_blocks(future)
        elapsed = time.monotonic() - t0
        metrics.REPLAY_SECONDS.set(elapsed)
        self._update_gauges()
        log.info(
            "recovered %d series, %d blocks, %d WAL entries (%d samples) in %.2fs",
            len(self.registry), len(self.blocks), len(self._wal), replayed, elapsed,
        )

    async def _load_blocks(self) -> None:
        """(Re)load the block list from Redis and widen the series' time ranges to their blocks."""
        blocks = [_Block(meta, np.frombuffer(blob, U64)) for meta, blob in await self.store.load_blocks()]
        self.blocks = blocks
        self._blocks_stale = False
        self._bf_tags = {t for b in blocks for t in _backfill_tags(b.meta)}
        for b in blocks:
            idx = self.registry.lookup(b.series_ids)
            idx = idx[idx >= 0]
            self._series_mint[idx] = np.minimum(self._series_mint[idx], b.meta.mint_ms)
            self._series_maxt[idx] = np.maximum(self._series_maxt[idx], b.meta.maxt_ms - 1)

    async def reset(self) -> None:
        """Delete everything: the shard's Redis keys and its memory (tests only)."""
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
            batch, too_far = self._drop_future(batch)
            if too_far and batch.num_samples == 0:
                # Nothing left: no WAL entry, and the batch id is not remembered (as below).
                return WriteOutcome(0, {"too_far_in_future": too_far}, False)
            new_ids, new_keys, new_names = self._check_new_series(batch)
            refused: dict[str, tuple[int, int]] = {}
            refused_metrics: list[str] = []
            if self.max_active_series or self.max_series_per_metric:
                batch, new_ids, new_keys, refused, refused_metrics = self._apply_limits(
                    batch, new_ids, new_keys, new_names
                )
            if refused and batch.num_samples == 0:
                # Nothing left: nothing goes to the WAL and the batch id is not remembered, so a
                # retry is judged afresh (and may pass once the limit is raised).
                for reason, (_, n_samples) in refused.items():
                    metrics.SAMPLES_REJECTED.labels(reason).inc(n_samples)
                out = WriteOutcome(0, {r: n for r, (_, n) in refused.items()}, False)
                if too_far:
                    out.rejected["too_far_in_future"] = too_far
                raise SeriesLimitError(self._limit_message(refused, refused_metrics, out), out)
            record = encode_record(batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values)
            entry_id = await self.store.append(batch_id, record, {_id_field(i): k for i, k in zip(new_ids, new_keys)})
            out = self._apply(
                batch_id, entry_id, batch.series_ids, batch.sample_series, batch.timestamps_ms, batch.values,
                new_ids, new_keys,
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

    def _drop_future(self, batch: SampleBatch) -> tuple[SampleBatch, int]:
        """``batch`` without its samples more than ``max_future_time`` ahead of the clock (and without the
        series left with none), and how many went; they are counted as ``too_far_in_future``."""
        far = split_future(batch.timestamps_ms, self.clock(), self.max_future_time_ms)
        if far is None:
            return batch, 0
        n = int(far.sum())
        metrics.SAMPLES_REJECTED.labels("too_far_in_future").inc(n)
        keep = ~far
        had = np.bincount(batch.sample_series, minlength=batch.num_series) > 0
        left = SampleBatch(batch.series, batch.sample_series[keep], batch.timestamps_ms[keep], batch.values[keep])
        has = np.bincount(left.sample_series, minlength=batch.num_series) > 0
        return left.select_series(has | ~had), n

    def _head_series(self) -> np.ndarray:
        """Per registered series: whether it has samples in the head (its latest sample is at or
        after the head's lower bound)."""
        n = len(self.registry)
        last = np.full(n, _INT64_MIN, I64)
        m = min(n, self.head.last_ts.shape[0])
        last[:m] = self.head.last_ts[:m]
        return (last > _INT64_MIN) & (last >= self.head.min_valid_ms)

    def _apply_limits(self, batch: SampleBatch, new_ids: list[int], new_keys: list[bytes], new_names: list[str]):
        """Drop from ``batch`` the series new to the head beyond the series limits.

        Returns the batch left, its series new to the shard, ``{reason: (series, samples)}`` refused
        and the metric names refused by ``max_series_per_metric``.
        """
        idx = self.registry.lookup(batch.series_ids)
        active_mask = self._head_series()
        in_head = np.zeros(idx.shape[0], bool)
        known = idx >= 0
        in_head[known] = active_mask[idx[known]]
        rows = np.flatnonzero(~in_head)
        if not rows.shape[0]:
            return batch, new_ids, new_keys, {}, []
        # The candidates: each series new to the head once, in the order the batch lists them.
        _, first = np.unique(batch.series_ids[rows], return_index=True)
        cand = rows[np.sort(first)]
        cand_ids = batch.series_ids[cand]
        name_of_new = dict(zip(new_ids, new_names))
        local_codes = dict(self._metric_codes)
        metric = np.empty(cand.shape[0], np.int64)
        for k, (row, sid) in enumerate(zip(cand.tolist(), cand_ids.tolist())):
            i = int(idx[row])
            if i >= 0:
                metric[k] = self._metric_of[i]
            else:
                metric[k] = local_codes.setdefault(name_of_new[sid], len(local_codes))
        metric_active = None
        if self.max_series_per_metric:
            metric_active = np.bincount(self._metric_of[active_mask], minlength=len(self._metric_codes))
        reasons = admit_series(metric, metric_active, int(active_mask.sum()), self.max_active_series,
                               self.max_series_per_metric)
        if not reasons.any():
            return batch, new_ids, new_keys, {}, []
        names_by_code = {c: n for n, c in local_codes.items()}
        refused_metrics = sorted({names_by_code[int(c)] for c in metric[reasons == _METRIC_SERIES_LIMIT].tolist()})
        refused_ids = cand_ids[reasons > 0]
        reason_of = dict(zip(refused_ids.tolist(), reasons[reasons > 0].tolist()))
        row_reason = np.zeros(batch.num_series, np.int8)
        drop = np.isin(batch.series_ids, refused_ids)
        row_reason[drop] = [reason_of[int(sid)] for sid in batch.series_ids[drop].tolist()]
        sample_reason = row_reason[batch.sample_series]
        refused = {}
        for code, reason in LIMIT_REASONS.items():
            n_series = int((reasons == code).sum())
            if n_series:
                refused[reason] = (n_series, int((sample_reason == code).sum()))
        kept = [(i, k) for i, k in zip(new_ids, new_keys) if i not in reason_of]
        return (batch.select_series(~drop), [i for i, _ in kept], [k for _, k in kept], refused,
                refused_metrics)

    def _limit_message(self, refused: dict[str, tuple[int, int]], refused_metrics: list[str],
                       out: WriteOutcome) -> str:
        parts = []
        if "series_limit" in refused:
            n_series, n_samples = refused["series_limit"]
            parts.append(f"{n_series} new series ({n_samples} samples) over shards.max_active_series = "
                         f"{self.max_active_series} series in the head")
        if "metric_series_limit" in refused:
            n_series, n_samples = refused["metric_series_limit"]
            names = ", ".join(refused_metrics[:5]) + (", ..." if len(refused_metrics) > 5 else "")
            parts.append(f"{n_series} new series ({n_samples} samples) over shards.max_series_per_metric = "
                         f"{self.max_series_per_metric} series in the head for metric {names}")
        other = {r: n for r, n in out.rejected.items() if r not in LIMIT_REASONS.values()}
        tail = f"; {out.appended} samples of other series appended"
        if other:
            tail += ", refused otherwise: " + ", ".join(f"{n} {r}" for r, n in sorted(other.items()))
        return "series limit reached: refused " + "; ".join(parts) + tail

    async def backfill(self, batch_id: str, batch: SampleBatch) -> WriteOutcome:
        """Write historical samples straight into blocks of their own (one per block window).

        Any age is accepted; the head and its ordering rules are not involved. Within the batch a
        series' samples are sorted and a repeated timestamp keeps its first value. Blocks may
        overlap others in time; reads merge them, and so does compaction. Idempotent: a batch id names
        its blocks (and a block compacted from them keeps the names in its metadata).
        """
        async with self._lock:
            tag = f"bf{xxhash.xxh64_hexdigest(batch_id.encode())}"
            if tag in self._bf_tags:
                return WriteOutcome(0, {}, True)
            batch, too_far = self._drop_future(batch)
            rejected = {"too_far_in_future": too_far} if too_far else {}
            if batch.num_samples == 0:
                return WriteOutcome(0, rejected, False)
            new_ids, new_keys, _ = self._check_new_series(batch)
            # Series new to the shard get the idx they will have once registered (after the write).
            ids_by_idx = np.concatenate((self.registry.ids, np.asarray(new_ids, dtype=U64)))
            series_idx = self.registry.lookup(batch.series_ids)
            missing = series_idx < 0
            if missing.any():
                provisional = {sid: len(self.registry) + k for k, sid in enumerate(new_ids)}
                series_idx[missing] = [provisional[int(sid)] for sid in batch.series_ids[missing].tolist()]
            idx = series_idx[batch.sample_series]
            ts, vals = batch.timestamps_ms, batch.values
            idx, ts, vals = _by_series_and_time(idx, ts, vals)
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
        return WriteOutcome(int(ts.shape[0]), rejected, False)

    def _check_new_series(self, batch: SampleBatch) -> tuple[list[int], list[bytes], list[str]]:
        """The series of ``batch`` new to the shard, each checked (id matches labels, has a name):
        their ids, label bytes and metric names."""
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

    def _register(self, ids: Sequence[int], keys: Sequence[bytes]) -> None:
        self._rank = None
        first = len(self.registry)
        self.registry.add(ids, keys)
        self.index.add(first, self.registry.labels[first:])
        n = len(self.registry)
        codes = self._metric_codes
        self._metric_of = np.concatenate((self._metric_of, np.fromiter(
            (codes.setdefault(lbls.name, len(codes)) for lbls in self.registry.labels[first:]), np.int64, n - first)))
        self._series_mint = np.concatenate((self._series_mint, np.full(n - first, _INT64_MAX, I64)))
        self._series_maxt = np.concatenate((self._series_maxt, np.full(n - first, _INT64_MIN, I64)))

    def _apply(self, batch_id, entry_id, ids, refs, ts, vals, new_ids=(), new_keys=(), future=None) -> WriteOutcome:
        """Apply a durable batch to the head. When replaying (``future`` a list), samples too far ahead of
        the clock are set aside there (for :meth:`_future_into_blocks`) instead of entering the head."""
        if new_keys:
            self._register(new_ids, new_keys)
        series_idx = self.registry.lookup(ids)
        sample_idx = series_idx[refs]
        known = sample_idx >= 0
        if not known.all():
            # Only a damaged Redis (a WAL record whose series labels are gone) gets here.
            metrics.SAMPLES_REJECTED.labels("unknown_series").inc(int((~known).sum()))
            sample_idx, ts, vals = sample_idx[known], ts[known], vals[known]
        if future is not None:
            far = split_future(ts, self.clock(), self.max_future_time_ms)
            if far is not None:
                future.append((entry_id, sample_idx[far], ts[far], vals[far]))
                sample_idx, ts, vals = sample_idx[~far], ts[~far], vals[~far]
        res = self.head.append(sample_idx, ts, vals)
        if res.appended:
            metrics.SAMPLES_APPENDED.inc(res.appended)
        if res.duplicates:
            metrics.SAMPLES_DUPLICATE.inc(res.duplicates)
        for reason, count in res.rejected.items():
            metrics.SAMPLES_REJECTED.labels(reason).inc(count)
        if ts.shape[0]:
            # Each series' time range, widened by this batch (group by series: ufunc.at is slow).
            order = np.argsort(sample_idx, kind="stable")
            s_idx, s_ts = sample_idx[order], ts[order]
            starts = np.flatnonzero(np.concatenate(([True], s_idx[1:] != s_idx[:-1])))
            series = s_idx[starts]
            self._series_mint[series] = np.minimum(self._series_mint[series], np.minimum.reduceat(s_ts, starts))
            self._series_maxt[series] = np.maximum(self._series_maxt[series], np.maximum.reduceat(s_ts, starts))
            self._wal.append((entry_id, int(ts.max())))
        else:
            self._wal.append((entry_id, _INT64_MIN))
        self._seen[batch_id] = None
        if len(self._seen) > _SEEN_BATCHES:
            self._seen.popitem(last=False)
        return WriteOutcome(res.appended, res.rejected, False)

    async def _future_into_blocks(self, future: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Write the WAL's samples from too far ahead (set aside by replay) as blocks of their own, as a
        backfill would, so they are kept without holding the head (or the WAL's trim) in the future. The
        blocks are named by the WAL entries, so a replay after a crash writes them once."""
        tag = "bf" + xxhash.xxh64_hexdigest("\n".join(e for e, *_ in future).encode())
        n = sum(int(t.shape[0]) for _, _, t, _ in future)
        log.warning("the WAL holds %d samples more than shards.max_future_time ahead of the clock (written before "
                    "that limit): kept in blocks of their own, not in the head", n)
        if tag in self._bf_tags:
            return
        idx = np.concatenate([i for _, i, _, _ in future])
        ts = np.concatenate([t for _, _, t, _ in future])
        vals = np.concatenate([v for _, _, _, v in future])
        idx, ts, vals = _by_series_and_time(idx, ts, vals)
        d = self.block_duration_ms
        window = ts // d
        blocks = [self._encode_block(f"{w * d}-{(w + 1) * d}-{tag}", w * d, (w + 1) * d, idx[window == w],
                                     ts[window == w], vals[window == w], self.registry.ids)
                  for w in np.unique(window).tolist()]
        await self.store.write_blocks([(meta, ids.tobytes(), chunks) for meta, ids, chunks in blocks], {})
        for meta, ids, _ in blocks:
            self._add_block(meta, ids)

    # -- blocks ----------------------------------------------------------------------------------

    async def cut_blocks(self) -> int:
        """Move every block window the head and the clock have outgrown into Redis (see
        :func:`cut_window`). Returns blocks written."""
        written = 0
        if self.store.lost is not None:
            return 0
        async with self._lock:
            while (w := cut_window(self.head.time_range(), self.head.min_valid_ms, self.block_duration_ms,
                                   self.clock())) is not None:
                await self._write_block(*w)
                written += 1
        if written:
            self._update_gauges()
        return written

    async def flush(self) -> int:
        """Move the head's samples into blocks: every sample before :func:`flush_bound` (just after the
        newest sample, at most now), the last window's as a block ended early (its samples before the
        bound; its metadata still spans the window); the head's lower bound rises to that bound, never
        past the clock, so present-day writes go on."""
        written = 0
        d = self.block_duration_ms
        async with self._lock:
            bound = flush_bound(self.head.time_range(), self.clock())
            while bound is not None and (rng := self.head.time_range()) is not None and rng[0] < bound:
                start = (max(rng[0], self.head.min_valid_ms) // d) * d
                await self._write_block(start, start + d, bound)
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
        self._bf_tags.update(_backfill_tags(meta))
        self.blocks.sort(key=lambda b: (b.meta.mint_ms, b.meta.block_id))

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
        # Encoding takes a while (~0.2 ms a series): off the event loop, so reads and pings go on.
        meta, sorted_ids, chunks = await asyncio.to_thread(
            self._encode_block, block_id, start, start + self.block_duration_ms, c.idx[old], c.ts[old], c.vals[old],
            self.registry.ids.copy())
        # WAL entries whose samples all lie before the block's end are covered; trim a prefix of them.
        trim_upto = None
        n_trim = 0
        for entry_id, max_ts in self._wal:
            if max_ts >= end:
                break
            trim_upto = entry_id
            n_trim += 1
        trim_minid = next_stream_id(trim_upto) if trim_upto else None
        if _FAULT_CUT_PAUSE_S:  # Fault injection for the crash test: widen the window between encode and commit.
            await asyncio.sleep(_FAULT_CUT_PAUSE_S)
        await self.store.write_block(meta, sorted_ids.tobytes(), chunks, end, trim_minid)
        for _ in range(n_trim):
            self._wal.popleft()
        self.head.split_before(end)
        self._add_block(meta, sorted_ids)
        log.info("cut block %s: %d series, %d samples, %d bytes", meta.block_id, meta.num_series,
                 meta.num_samples, meta.size_bytes)

    # -- retention and compaction -----------------------------------------------------------------

    async def maintain(self) -> tuple[int, int]:
        """Apply retention, then compact: ``(blocks deleted, compactions)``."""
        return await self.apply_retention(), await self.compact()

    async def apply_retention(self) -> int:
        """Delete the blocks beyond ``retention_time`` / ``retention_size``; returns how many."""
        if self.store.lost is not None:
            return 0
        async with self._maint_lock:
            await self._resync_if_stale()
            doomed = blocks_beyond_retention([b.meta for b in self.blocks], self.retention_time_ms,
                                             self.retention_size_bytes, self.clock())
            if not doomed:
                return 0
            ids = [m.block_id for m, _ in doomed]
            await self._retire(ids, self.store.delete_blocks(ids), None)
            for meta, reason in doomed:
                metrics.RETENTION_DELETIONS.labels(reason).inc()
                log.info("retention (%s) deleted block %s: %d series, %d samples, %d bytes", reason, meta.block_id,
                         meta.num_series, meta.num_samples, meta.size_bytes)
            self._recompute_series_ranges()
        self._update_gauges()
        return len(doomed)

    async def compact(self) -> int:
        """Merge blocks while the plan finds some to merge (overlapping ones first, then the blocks of
        each closed window of a larger range); returns how many compactions were done."""
        done = 0
        if self.store.lost is not None:
            return 0
        async with self._maint_lock:
            await self._resync_if_stale()
            while group := plan_compaction([b.meta for b in self.blocks], self.compaction_ranges,
                                           self._head_bound()):
                t0 = time.perf_counter()
                try:
                    await self._compact(group)
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
        rng = self.head.time_range()
        if rng is not None:
            d = self.block_duration_ms
            bound = min(bound, (rng[0] // d) * d)
        return bound

    async def _compact(self, group: Sequence[BlockMeta]) -> None:
        ids = {m.block_id for m in group}
        sources = [b for b in self.blocks if b.meta.block_id in ids]  # in read-merge order
        datas = [await self.store.read_block(b.meta.block_id) for b in sources]
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
        tags = sorted({t for b in sources for t in _backfill_tags(b.meta)})
        digest = xxhash.xxh64_hexdigest("\n".join(b.meta.block_id for b in sources).encode())
        meta = BlockMeta(block_id=f"{mint}-{maxt}-c{digest}", mint_ms=mint, maxt_ms=maxt,
                         num_series=int(sorted_ids.shape[0]), num_samples=num_samples,
                         size_bytes=sum(len(v) for v in chunks.values()), backfill=tuple(tags))
        old_ids = [b.meta.block_id for b in sources]
        await self._retire(old_ids, self.store.replace_blocks(meta, sorted_ids.tobytes(), chunks, old_ids),
                           _Block(meta, sorted_ids))
        log.info("compacted %d blocks (%s) into %s: %d series, %d samples, %d -> %d bytes", len(sources),
                 ", ".join(old_ids), meta.block_id, meta.num_series, meta.num_samples,
                 sum(b.meta.size_bytes for b in sources), meta.size_bytes)

    async def _retire(self, block_ids: Sequence[str], commit, replacement: _Block | None) -> None:
        """Run ``commit`` (the Redis transaction deleting ``block_ids``, and writing ``replacement``),
        then swap the blocks in memory at once. While it runs, a read that finds one of these blocks
        gone waits for the swap and reads again. If the outcome is unknown (an error), the block list
        is reloaded from Redis before the next read, deletion or compaction."""
        gone = set(block_ids)
        self._retiring |= gone
        self._settled.clear()
        try:
            await commit
        except BaseException:
            self._blocks_stale = True
            raise
        else:
            blocks = [b for b in self.blocks if b.meta.block_id not in gone]
            if replacement is not None:
                blocks.append(replacement)
                blocks.sort(key=lambda b: (b.meta.mint_ms, b.meta.block_id))
            self.blocks = blocks
            self._bf_tags = {t for b in blocks for t in _backfill_tags(b.meta)}
        finally:
            self._retiring -= gone
            if not self._retiring:
                self._settled.set()

    async def _resync_if_stale(self) -> None:
        if self._blocks_stale:
            await self._load_blocks()
            self._recompute_series_ranges()
            self._update_gauges()

    def _recompute_series_ranges(self) -> None:
        """Each series' time range from the blocks left and the head (after blocks were deleted)."""
        n = len(self.registry)
        mint = np.full(n, _INT64_MAX, I64)
        maxt = np.full(n, _INT64_MIN, I64)
        for b in self.blocks:
            idx = self.registry.lookup(b.series_ids)
            idx = idx[idx >= 0]
            mint[idx] = np.minimum(mint[idx], b.meta.mint_ms)
            maxt[idx] = np.maximum(maxt[idx], b.meta.maxt_ms - 1)
        if self.head.num_samples:
            c = self.head.columns()
            lo, hi = c.offsets[:-1], c.offsets[1:]
            has = np.flatnonzero(hi > lo)
            mint[has] = np.minimum(mint[has], c.ts[lo[has]])
            maxt[has] = np.maximum(maxt[has], c.ts[hi[has] - 1])
        self._series_mint, self._series_maxt = mint, maxt

    # -- reading ---------------------------------------------------------------------------------

    async def _select_idx(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> np.ndarray:
        """The idx of the matching series with data around the range, in label order.

        A regex scan over many label values runs in a worker thread (LabelIndex.select_async); the rest
        runs on the event loop after it, in one go."""
        idx = await self.index.select_async(matchers)
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
        pieces = [p async for p in self.select_pieces(matchers, start_ms, end_ms, skip_samples=skip_samples)]
        if len(pieces) == 1:
            return pieces[0]
        if not pieces:
            return Selection(np.empty(0, np.int64), np.zeros(0, np.int64), np.empty(0, I64), np.empty(0, np.float64))
        return Selection(*(np.concatenate(parts) for parts in zip(*pieces)))

    async def select_pieces(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
        max_series: int = _NO_LIMIT, max_samples: int = _NO_LIMIT, points_per_series: int = 0,
    ) -> AsyncIterator[Selection]:
        """:meth:`select` in pieces, in label order, for streaming (at least one piece).

        With limits, reading stops as soon as the answer would hold more than ``max_series`` series or
        more than ``max_samples`` samples (each series counting ``points_per_series`` on top of its
        own samples): :class:`~model.errors.QueryLimitError` is raised before the piece that would
        exceed a limit is yielded, and blocks stop being read as soon as their samples alone would.
        """
        idxs = await self._select_idx(matchers, start_ms, end_ms)
        # The most series the limits could allow: reading one more is enough to know they are exceeded.
        affordable = min(max_series, max_samples // points_per_series if points_per_series else _NO_LIMIT)
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
                piece = await self._read_piece(part, start_ms, end_ms, room)
            n_series += piece.idx.shape[0]
            n_samples += piece.ts.shape[0]
            if n_series > max_series:
                raise QueryLimitError(f"the answer holds more than {max_series:,} series", "max_series")
            if n_samples + n_series * points_per_series > max_samples:
                raise QueryLimitError(f"the answer holds more than {max_samples:,} samples", "max_samples")
            yield piece
            if at >= idxs.shape[0]:
                return
            size = min(2 * size, _PIECE_MAX)
            await asyncio.sleep(0)  # Let writes in between pieces.

    async def _read_piece(self, idxs: np.ndarray, start_ms: int, end_ms: int, room: int) -> Selection:
        """The samples of series ``idxs`` (head and blocks), leaving out series without any;
        :class:`QueryLimitError` as soon as they add up to more than ``room``."""
        counts, ts, vals = self.head.read_many(idxs, start_ms, end_ms)
        if ts.shape[0] > room:
            raise QueryLimitError(f"the answer holds more than {room:,} samples", "max_samples")
        if idxs.shape[0]:
            for _ in range(100):
                if self._blocks_stale:
                    async with self._maint_lock:
                        await self._resync_if_stale()
                overlapping = [b for b in self.blocks if b.meta.maxt_ms > start_ms and b.meta.mint_ms <= end_ms
                               and b.series_ids.shape[0]]
                if not overlapping:
                    break
                try:
                    counts, ts, vals = await self._with_blocks(overlapping, idxs, start_ms, end_ms, counts, ts, vals,
                                                               room=room)
                    break
                except _BlocksChanged:
                    await self._settled.wait()  # the deletion has committed: list the blocks again
            else:
                raise ShardUnavailableError("blocks kept changing under a read")
        keep = counts > 0
        if not keep.all():
            idxs, counts = idxs[keep], counts[keep]
        return Selection(idxs, counts, ts, vals)

    async def _with_blocks(self, blocks, idxs, start_ms, end_ms, counts, ts, vals, *, room: int = _NO_LIMIT):
        """Add the samples in blocks to the head's, series by series (only series found in blocks);
        :class:`QueryLimitError` once the samples read add up to more than ``room``."""
        ids = self.registry.ids[idxs]
        from_blocks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        total = ts.shape[0]  # An upper bound (a block may repeat a sample of the head); exact enough to stop at.
        for block in blocks:
            pos = np.minimum(np.searchsorted(block.series_ids, ids), block.series_ids.shape[0] - 1)
            present = np.flatnonzero(block.series_ids[pos] == ids)
            if not present.shape[0]:
                continue
            fields = [_id_field(int(ids[p])) for p in present.tolist()]
            for p, data in zip(present.tolist(), await self.store.read_chunks(block.meta.block_id, fields)):
                if data is None:
                    if block.meta.block_id in self._retiring or not any(b is block for b in self.blocks) \
                            or self._blocks_stale:
                        raise _BlocksChanged(block.meta.block_id)
                    continue  # Only a damaged Redis (a block without one of its chunks) gets here.
                bts, bvals = chunk.decode(data)
                a = int(np.searchsorted(bts, start_ms, "left"))
                b = int(np.searchsorted(bts, end_ms, "right"))
                if b > a:
                    from_blocks.setdefault(p, []).append((bts[a:b], bvals[a:b]))
                    total += b - a
            if total > room:
                raise QueryLimitError(f"the answer holds more than {room:,} samples", "max_samples")
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

    async def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.index.label_names()
        names: set[str] = set()
        for i in (await self._select_idx(matchers, start_ms, end_ms)).tolist():
            names.update(n for n, _ in self.registry.labels[i])
        return sorted(names)

    async def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        if not matchers:
            return self.index.label_values(name)
        idx = await self._select_idx(matchers, start_ms, end_ms)
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

    # -- observability ---------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        metrics.SERIES.set(len(self.registry))
        metrics.HEAD_SERIES.set(int(self._head_series().sum()))
        metrics.HEAD_SAMPLES.set(self.head.num_samples)
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
