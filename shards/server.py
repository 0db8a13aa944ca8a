"""The shard's gRPC server: the ``Shard`` service over a :class:`~shards.db.ShardDB`.

Run one per shard (``shardmon shard --id N``). The server listens only after recovery has finished,
so a sender meets "unavailable" (and retries) rather than a half-recovered shard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from model import errors
from model.config import Config
from model.grpcstatus import status_of
from model.labels import Matcher, MatchType
from model.lifecycle import wait_until_stopped
from model.pb import shard_pb2, shard_pb2_grpc, types_pb2
from model.samples import U32, SampleBatch, SeriesTable
from shards import metrics
from shards.db import Selection, ShardDB
from shards.store import RedisStore

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_FRAME_SERIES = 1000
_FRAME_SAMPLES = 250_000
_MATCH_TYPES = {
    types_pb2.Matcher.EQ: MatchType.EQ,
    types_pb2.Matcher.NEQ: MatchType.NEQ,
    types_pb2.Matcher.RE: MatchType.RE,
    types_pb2.Matcher.NRE: MatchType.NRE,
}


def matchers_from_pb(pbs) -> list[Matcher]:
    try:
        return [Matcher.parse_op(_MATCH_TYPES[m.type].value, m.name, m.value) for m in pbs]
    except ValueError as exc:
        raise errors.BadQueryError(str(exc)) from exc


def frames_of(db: ShardDB, sel: Selection) -> Iterator[shard_pb2.SeriesFrame]:
    """The selection in frames of at most _FRAME_SERIES series or about _FRAME_SAMPLES samples."""
    n = sel.idx.shape[0]
    ends = np.cumsum(sel.counts)
    ids, keys = db.registry.ids, db.registry.keys
    first = 0
    while first < n:
        base = int(ends[first - 1]) if first else 0
        # The last series of the frame: within the series budget, and the sample budget (one at least).
        last = min(first + _FRAME_SERIES, int(np.searchsorted(ends, base + _FRAME_SAMPLES, "right")), n)
        last = max(last, first + 1)
        rows = sel.idx[first:last]
        stop = int(ends[last - 1])
        table = SeriesTable.from_keys(ids[rows], [keys[i] for i in rows.tolist()])
        refs = np.repeat(np.arange(last - first, dtype=U32), sel.counts[first:last])
        batch = SampleBatch(table, refs, sel.ts[base:stop], sel.vals[base:stop])
        yield shard_pb2.SeriesFrame(series=batch.to_pb())
        first = last


class ShardService(shard_pb2_grpc.ShardServicer):
    def __init__(self, db: ShardDB, *, allow_reset: bool = False) -> None:
        self.db = db
        self.allow_reset = allow_reset

    async def _fail(self, context, exc: Exception, what: str):
        code = status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("%s failed", what)
        await context.abort(code, str(exc))

    async def Write(self, request, context):
        t0 = time.perf_counter()
        try:
            try:
                batch = SampleBatch.from_pb(request.samples)
            except ValueError as exc:
                raise errors.InvalidWriteError(f"malformed batch: {exc}") from exc
            if not request.batch_id:
                raise errors.InvalidWriteError("batch_id is required (it makes retries idempotent)")
            if request.backfill:
                out = await self.db.backfill(request.batch_id, batch)
            else:
                out = await self.db.write(request.batch_id, batch)
            if request.metadata:
                # Best effort: the samples are durable already, so a metadata failure must not fail
                # the write (the sender would drop or resend samples that are in).
                try:
                    await self.db.record_metadata(
                        [(m.metric_family_name, m.type, m.help, m.unit) for m in request.metadata]
                    )
                except errors.ShardmonError as exc:
                    log.warning("metadata not stored: %s", exc)
        except Exception as exc:  # noqa: BLE001 - every error leaves through the status table
            metrics.WRITES.labels(type(exc).__name__).inc()
            await self._fail(context, exc, "Write")
            return
        metrics.WRITES.labels("duplicate_batch" if out.duplicate_batch else "ok").inc()
        metrics.WRITE_DURATION.observe(time.perf_counter() - t0)
        return shard_pb2.WriteResponse(
            samples_appended=out.appended, samples_rejected=out.rejected, duplicate_batch=out.duplicate_batch
        )

    async def Series(self, request, context):
        """Stream the selection piece by piece. With ``request.limits``, stop as soon as the answer
        would exceed them and end with a frame naming the limit (the querier fails the query with 422);
        a cancelled call (the querier gave up, or its deadline passed) stops at the next piece."""
        t0 = time.perf_counter()
        limits = {}
        if request.HasField("limits"):
            lim = request.limits
            limits = dict(max_series=lim.max_series, max_samples=lim.max_samples,
                          points_per_series=lim.points_per_series)
        try:
            matchers = matchers_from_pb(request.matchers)
            if not matchers:
                raise errors.BadQueryError("at least one matcher is required")
            async for piece in self.db.select_pieces(matchers, request.start_ms, request.end_ms,
                                                     skip_samples=request.skip_samples, **limits):
                for frame in frames_of(self.db, piece):
                    yield frame
        except errors.QueryLimitError as exc:
            metrics.SERIES_REQUESTS.labels("limit").inc()
            yield shard_pb2.SeriesFrame(limit_exceeded=exc.limit)
            return
        except asyncio.CancelledError:
            metrics.SERIES_REQUESTS.labels("cancelled").inc()
            raise
        except Exception as exc:  # noqa: BLE001
            metrics.SERIES_REQUESTS.labels("error").inc()
            await self._fail(context, exc, "Series")
            return
        metrics.SERIES_REQUESTS.labels("ok").inc()
        metrics.SERIES_REQUEST_DURATION.observe(time.perf_counter() - t0)

    async def LabelNames(self, request, context):
        try:
            names = self.db.label_names(matchers_from_pb(request.matchers), request.start_ms, request.end_ms)
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "LabelNames")
            return
        return shard_pb2.LabelNamesResponse(names=names)

    async def LabelValues(self, request, context):
        try:
            values = self.db.label_values(
                request.name, matchers_from_pb(request.matchers), request.start_ms, request.end_ms
            )
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "LabelValues")
            return
        return shard_pb2.LabelValuesResponse(values=values)


    async def Flush(self, request, context):
        # The head into blocks, then the maintenance the periodic task would do next (retention and
        # compaction), so that block sizes measured after a Flush are the settled ones.
        try:
            n = await self.db.flush()
            await self.db.maintain()
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "Flush")
            return
        return shard_pb2.FlushResponse(blocks_written=n)


    async def Metadata(self, request, context):
        entries = self.db.metadata_of(request.metric, request.limit)
        return shard_pb2.MetadataResponse(metadata=[
            types_pb2.MetricMetadata(metric_family_name=n, type=t, help=h, unit=u) for n, t, h, u in entries
        ])

    async def Reset(self, request, context):
        if not self.allow_reset:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "Reset is disabled (shards.allow_reset is false)")
            return
        try:
            await self.db.reset()
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "Reset")
            return
        return shard_pb2.ResetResponse()


async def _maintain(db: ShardDB, interval_s: float) -> None:
    """Every ``interval_s``: cut the blocks the head has outgrown, apply retention, compact."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await db.cut_blocks()
            await db.maintain()
        except errors.ShardUnavailableError as exc:
            log.warning("block maintenance postponed: %s", exc)
        except Exception:  # noqa: BLE001 - the loop must outlive a bug in one round; it is logged
            log.exception("block maintenance failed")
        db.update_gauges()


async def serve(config: Config, shard_id: int, *, stop: asyncio.Event | None = None) -> None:
    """Recover shard ``shard_id`` from its Redis and serve until ``stop`` is set (or SIGTERM/SIGINT)."""
    node = config.shards.node(shard_id)
    if node.metrics_address:
        from prometheus_client import start_http_server

        host, port = node.metrics_address.rsplit(":", 1)
        start_http_server(int(port), addr=host)
    store = RedisStore(node.redis_url, shard_id)
    db = ShardDB.from_config(store, config.shards)
    while True:
        try:
            problem = await store.apply_appendfsync(config.shards.wal_appendfsync)
            await db.open()
            break
        except errors.ShardUnavailableError as exc:
            log.warning("shard %d: waiting for redis at %s: %s", shard_id, node.redis_url, exc)
            await asyncio.sleep(1)
    if problem:
        log.warning("shard %d: WAL durability not set (shards.wal_appendfsync: %s): %s", shard_id,
                    config.shards.wal_appendfsync, problem)
    else:
        log.info("shard %d: redis appendonly yes, appendfsync %s", shard_id, config.shards.wal_appendfsync)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    shard_pb2_grpc.add_ShardServicer_to_server(ShardService(db, allow_reset=config.shards.allow_reset), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(node.address) == 0:
        raise errors.ConfigError(f"shards.nodes: shard {shard_id} cannot listen on {node.address}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("shard %d serving on %s", shard_id, node.address)
    maint = asyncio.create_task(_maintain(db, interval_s=max(0.5, min(10.0, config.shards.block_duration / 20_000))))
    await wait_until_stopped(stop)
    maint.cancel()
    await server.stop(grace=2)
    await store.close()
    log.info("shard %d stopped", shard_id)
