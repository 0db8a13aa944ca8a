"""The forwarder: an :class:`~shardmon.model.storage.Appender` that routes samples to shards over gRPC.

``append`` splits a batch by the shard that owns each series (rendezvous hashing of the series
id, vectorised; replication copies go to the next shards in the series' own order) and queues the
pieces per shard. One sender task per shard drains its queue: it gathers up to
``batch_max_samples`` (waiting at most ``flush_interval`` for more), sends one ``Write`` with a batch
id that stays the same across retries (so the shard appends it once), and retries retryable
failures with capped exponential backoff for as long as it takes. A queue holds at most
``queue_max_samples``; beyond that the oldest pieces are dropped and counted, never silently.

Native histogram samples (``SampleBatch.histograms``) travel with their series' floats: split by the same
owner, and counted as samples in the queues, batches and metrics (one histogram, one sample).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import xxhash

from shardmon.ingest import metrics
from shardmon.model.config import IngestConfig, ShardNode
from shardmon.model.errors import ShardmonError
from shardmon.model.hashing import shards_for_series
from shardmon.model.pb import types_pb2
from shardmon.model.samples import U32, SampleBatch, SeriesTable, concat
from shardmon.shards.client import PLAIN, AsyncShardClient, ShardConnection

log = logging.getLogger(__name__)


class WriteOutcome(NamedTuple):
    """What :meth:`Forwarder.write_now` achieved: samples appended (replicas counted), refusals by
    reason, and the error that made some series miss their quorum (None when all were written)."""

    appended: int
    rejected: dict[str, int]
    error: ShardmonError | None


class _ShardQueue:
    def __init__(self, node: ShardNode) -> None:
        self.node = node
        self.pieces: collections.deque[SampleBatch] = collections.deque()
        self.samples = 0
        self.in_flight = 0
        self.wakeup = asyncio.Event()
        self.seq = itertools.count()
        self.sent_samples = 0
        self.retries = 0
        self.last_error = ""
        self.metadata: dict[str, types_pb2.MetricMetadata] = {}  # sent with the next batch


class Forwarder:
    """Queues and sends samples to the shards. Create and use it inside a running event loop."""

    def __init__(self, nodes: Sequence[ShardNode], cfg: IngestConfig, sender_id: str, replication_factor: int = 1,
                 conn: ShardConnection = PLAIN) -> None:
        self.cfg = cfg
        self.sender_id = sender_id
        self.replication_factor = replication_factor
        self._nodes = list(nodes)
        self._shard_ids = [n.id for n in self._nodes]
        self._queues = [_ShardQueue(n) for n in self._nodes]
        self._clients = [AsyncShardClient(n.id, n.address, conn) for n in self._nodes]
        self._tasks = [asyncio.create_task(self._send_loop(i)) for i in range(len(self._nodes))]
        self._closing = False
        self._now_seq = itertools.count()
        self.dropped: collections.Counter[str] = collections.Counter()

    # -- the Appender side -------------------------------------------------------------------------

    def append(self, batch: SampleBatch) -> None:
        if _size(batch) == 0:
            return
        for pos, owned, remap, sub in self._route(batch.series):
            piece = batch if owned is None else shard_piece(batch, owned, remap, sub)
            if piece is not None:
                self._enqueue(pos, piece)

    def append_metadata(self, entries: Sequence[tuple[str, str, str, str]]) -> None:
        """Queue metric metadata (family, type, help, unit), each family for the shard its name
        hashes to; it travels with that shard's next batch."""
        if not entries:
            return
        ids = np.fromiter((xxhash.xxh64_intdigest(e[0].encode()) for e in entries), np.uint64, len(entries))
        owners = shards_for_series(ids, self._shard_ids, 1)[:, 0]
        for (name, typ, help_, unit), pos in zip(entries, owners.tolist()):
            self._queues[pos].metadata[name] = types_pb2.MetricMetadata(
                metric_family_name=name, type=typ, help=help_, unit=unit
            )

    def _route(self, table: SeriesTable) -> list:
        """How a series table splits over the shards: ``(shard position, owned mask or None for all,
        old -> new series index, sub-table)`` per shard. Memoised on the table, which a scrape loop
        sends again and again."""
        key = ("route", tuple(self._shard_ids), self.replication_factor)
        parts = table.memo.get(key)
        if parts is None:
            parts = []
            owners = shards_for_series(table.ids, self._shard_ids, self.replication_factor)
            n = len(table)
            for pos in range(len(self._nodes)):
                owned = (owners == pos).any(axis=1)
                sel = np.flatnonzero(owned)
                if sel.shape[0] == n:
                    parts.append((pos, None, None, table))
                elif sel.shape[0]:
                    remap = np.full(n, -1, np.int64)
                    remap[sel] = np.arange(sel.shape[0])
                    parts.append((pos, owned, remap, table.take(sel)))
            table.memo[key] = parts
        return parts

    def _enqueue(self, pos: int, piece: SampleBatch) -> None:
        q = self._queues[pos]
        q.pieces.append(piece)
        q.samples += _size(piece)
        metrics.QUEUE_SAMPLES.labels(str(q.node.id)).inc(_size(piece))
        while q.samples > self.cfg.queue_max_samples and len(q.pieces) > 1:
            old = q.pieces.popleft()
            q.samples -= _size(old)
            self._drop("queue_full", _size(old), q)
        q.wakeup.set()

    def _drop(self, reason: str, n: int, q: _ShardQueue) -> None:
        self.dropped[reason] += n
        metrics.SAMPLES_DROPPED.labels(reason).inc(n)
        metrics.QUEUE_SAMPLES.labels(str(q.node.id)).dec(n)
        log.warning("dropped %d samples for shard %d: %s", n, q.node.id, reason)

    # -- the sending side --------------------------------------------------------------------------

    def _take(self, q: _ShardQueue) -> SampleBatch:
        out: list[SampleBatch] = []
        n = 0
        while q.pieces and (not out or n + _size(q.pieces[0]) <= self.cfg.batch_max_samples):
            p = q.pieces.popleft()
            out.append(p)
            n += _size(p)
        q.samples -= n
        return concat(out)

    async def _send_loop(self, pos: int) -> None:
        q = self._queues[pos]
        shard_label = str(q.node.id)
        while True:
            if not q.pieces:
                if self._closing:
                    return
                q.wakeup.clear()
                await q.wakeup.wait()
                continue
            # Give the queue a moment to fill up to a full batch, unless it is full already.
            if q.samples < self.cfg.batch_max_samples and not self._closing:
                await asyncio.sleep(self.cfg.flush_interval / 1000)
            batch = self._take(q)
            size = _size(batch)
            q.in_flight = size
            batch_id = f"{self.sender_id}-{q.node.id}-{next(q.seq)}"
            t0 = time.perf_counter()
            metadata = list(q.metadata.values())
            q.metadata.clear()
            try:
                resp = await self._send(pos, batch_id, batch.to_pb(), deadline=None, metadata=metadata)
            except ShardmonError:
                self._drop("rejected_by_shard", size, q)
            else:
                q.sent_samples += size
                metrics.SAMPLES_SENT.labels(shard_label).inc(size)
                metrics.QUEUE_SAMPLES.labels(shard_label).dec(size)
                metrics.WRITE_DURATION.observe(time.perf_counter() - t0)
                for reason, count in resp.samples_rejected.items():
                    metrics.SAMPLES_REJECTED.labels(reason).inc(count)
            q.in_flight = 0

    async def _send(self, pos: int, batch_id: str, payload, deadline: float | None, metadata=()):
        """One Write, retried with capped backoff while the error is retryable (until ``deadline``,
        a ``loop.time()``, if given). Raises the last error when giving up."""
        q = self._queues[pos]
        client = self._clients[pos]
        shard_label = str(q.node.id)
        backoff = self.cfg.retry_backoff_min / 1000
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.cfg.write_timeout / 1000
            if deadline is not None:
                timeout = max(0.05, min(timeout, deadline - loop.time()))
            try:
                resp = await client.write(batch_id, payload, timeout, metadata)
            except ShardmonError as exc:
                q.last_error = str(exc)
                if not exc.retryable or (deadline is not None and loop.time() + backoff >= deadline):
                    metrics.WRITES.labels(shard_label, "error").inc()
                    raise
                q.retries += 1
                metrics.WRITES.labels(shard_label, "retry").inc()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.cfg.retry_backoff_max / 1000)
                continue
            q.last_error = ""
            metrics.WRITES.labels(shard_label, "ok").inc()
            return resp

    async def write_now(self, batch: SampleBatch, timeout_s: float) -> WriteOutcome:
        """Send ``batch`` at once, bypassing the queues, and wait for the shards' acknowledgements.

        For receivers whose callers need to know the samples are durable (remote_write): retryable
        failures are retried until ``timeout_s``. A series counts as written when at least a quorum
        (RF/2+1) of its replicas acknowledged it. Raises the error of a shard that failed if any series
        missed its quorum.
        """
        seq = next(self._now_seq)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        parts = []
        for pos, owned, remap, sub in self._route(batch.series):
            piece = batch if owned is None else shard_piece(batch, owned, remap, sub)
            if piece is not None:
                parts.append((pos, piece))
        results = await asyncio.gather(
            *(self._send(pos, f"{self.sender_id}-now-{self._shard_ids[pos]}-{seq}", part.to_pb(), deadline)
              for pos, part in parts),
            return_exceptions=True,
        )
        acked = np.zeros(len(self._nodes), bool)
        out = WriteOutcome(0, {}, None)
        for (pos, _), res in zip(parts, results):
            if isinstance(res, BaseException):
                if not isinstance(res, ShardmonError):
                    raise res
                out = out._replace(error=out.error or res)
                continue
            acked[pos] = True
            rejected = dict(out.rejected)
            for reason, count in res.samples_rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
            out = out._replace(appended=out.appended + res.samples_appended, rejected=rejected)
        if out.error is not None:
            owners = shards_for_series(batch.series_ids, self._shard_ids, self.replication_factor)
            quorum = owners.shape[1] // 2 + 1
            if (acked[owners].sum(axis=1) >= quorum).all():
                out = out._replace(error=None)
        return out

    def pending(self) -> int:
        """Samples queued or in flight, over all shards."""
        return sum(q.samples + q.in_flight for q in self._queues)

    def stats(self) -> dict:
        return {
            "pending_samples": self.pending(),
            "dropped": dict(self.dropped),
            "shards": {
                q.node.id: {"sent_samples": q.sent_samples, "retries": q.retries, "queued": q.samples,
                            "in_flight": q.in_flight, "last_error": q.last_error}
                for q in self._queues
            },
        }

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout_s``), then stop; what is left is counted as dropped."""
        self._closing = True
        for q in self._queues:
            q.wakeup.set()
        done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for t in pending:
            t.cancel()
        for q in self._queues:
            left = q.samples + q.in_flight
            if left:
                self._drop("shutdown", left, q)
        for c in self._clients:
            await c.close()


def _size(batch: SampleBatch) -> int:
    """Samples of a batch as the queues count them: floats and native histograms."""
    return batch.num_samples + batch.num_histograms


def shard_piece(batch: SampleBatch, owned: np.ndarray, remap: np.ndarray, sub: SeriesTable) -> SampleBatch | None:
    """The samples of ``batch`` whose series one shard owns (``owned``), renumbered into ``sub``; None if none."""
    mask = owned[batch.sample_series]
    h = batch.histograms
    hist = None
    if h is not None and len(h):
        hsel = np.flatnonzero(owned[h.sample_series])
        if hsel.shape[0]:
            hist = h.take(hsel).with_series(remap[h.sample_series[hsel]].astype(U32))
    if hist is None and not mask.any():
        return None
    refs = remap[batch.sample_series[mask]].astype(U32)
    return SampleBatch(sub, refs, batch.timestamps_ms[mask], batch.values[mask], hist)
