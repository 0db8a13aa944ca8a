"""The shard's gRPC server: the ``Shard`` service over a :class:`~shardmon.shards.engine.ShardDB` on the shard's Redis.

Run one per shard (``shardmon shard --id N``). The server listens only after recovery has finished,
so a sender meets "unavailable" (and retries) rather than a half-recovered shard. Before recovery it
refuses a Redis that may evict keys (``maxmemory-policy`` other than ``noeviction``) and makes sure of
the AOF; while it runs it checks the Redis's identity every second, cuts blocks with backoff after
failures, and reports both in the gRPC health service (service ``shardmon.v1.Shard``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shardmon.model import errors, grpcauth
from shardmon.model.addresses import redacted_url
from shardmon.model.config import Config
from shardmon.model.grpcstatus import status_of
from shardmon.model.httpserver import metrics_app, serve_in_thread
from shardmon.model.labels import Matcher, MatchType
from shardmon.model.malloc_tuning import fix_mmap_threshold
from shardmon.model.pb import shard_pb2, shard_pb2_grpc, types_pb2
from shardmon.model.promql import pushdown_wire
from shardmon.model.promql.pushdown import partial_aggregate
from shardmon.model.samples import U32, SampleBatch, SeriesTable
from shardmon.model.shutdown import wait_until_stopped
from shardmon.model.storage import QueryBudget
from shardmon.shards import metrics, reads
from shardmon.shards.engine import ShardDB
from shardmon.shards.reads import Selection
from shardmon.shards.redis_store import RedisStore
from shardmon.shards.tsdb_stats import Ownership, head_stats

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_FRAME_SERIES = 1000
_FRAME_SAMPLES = 250_000
#: An Aggregate whose selection has fewer samples and cells (series x steps) than this is evaluated on the event
#: loop (well under a millisecond); a larger one in a worker thread, so that writes are acknowledged meanwhile.
_AGGREGATE_INLINE = 20_000
#: The gRPC health service name of the shard's storage: NOT_SERVING while writes are refused (Redis lost
#: data, or no AOF) or block cuts keep failing. The overall status ("") stays SERVING while the process
#: answers (reads go on).
HEALTH_SERVICE = "shardmon.v1.Shard"
_CUT_FAILURES_UNHEALTHY = 3
_CUT_BACKOFF_MAX_S = 300.0
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


def read_matchers(request) -> list[Matcher]:
    """A read request's matchers (Series, Aggregate): at least one."""
    matchers = matchers_from_pb(request.matchers)
    if not matchers:
        raise errors.BadQueryError("at least one matcher is required")
    return matchers


def limits_of(request) -> dict:
    """A read request's ``SeriesLimits`` as :func:`~shardmon.shards.reads.select_pieces`'s keywords (none: no limits)."""
    if not request.HasField("limits"):
        return {}
    lim = request.limits
    return dict(max_series=lim.max_series, max_samples=lim.max_samples, points_per_series=lim.points_per_series)


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
        hists = None
        if sel.hists is not None:
            a, b = np.searchsorted(sel.hists.sample_series, [first, last], "left").tolist()
            if b > a:
                part = sel.hists.take(np.arange(a, b))
                hists = part.with_series(part.sample_series - np.uint32(first))
        batch = SampleBatch(table, refs, sel.ts[base:stop], sel.vals[base:stop], hists)
        yield shard_pb2.SeriesFrame(series=batch.to_pb())
        first = last


#: What a disabled admin RPC answers (PERMISSION_DENIED): Prometheus's words, and the field that turns it on.
ADMIN_DISABLED = "admin APIs disabled (set web.enable_admin_api: true to enable {rpc})"


class ShardService(shard_pb2_grpc.ShardServicer):
    def __init__(self, db: ShardDB, *, enable_admin_api: bool = False) -> None:
        self.db = db
        #: Flush and Reset change what the shard holds: off unless ``web.enable_admin_api``.
        self.enable_admin_api = enable_admin_api

    def _admin(self, rpc: str) -> None:
        if not self.enable_admin_api:
            metrics.ADMIN_REFUSED.labels(rpc).inc()
            raise errors.PermissionDeniedError(ADMIN_DISABLED.format(rpc=rpc))

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
        a cancelled call (the querier gave up, or its deadline passed) stops at the next piece. The
        shard's read warnings (its Redis lost data, a rebuild under way) travel on the first frame."""
        t0 = time.perf_counter()
        warnings = self.db.read_warnings()
        limits = limits_of(request)
        try:
            matchers = read_matchers(request)
            async for piece in self.db.select_pieces(matchers, request.start_ms, request.end_ms,
                                                     skip_samples=request.skip_samples, **limits):
                for frame in frames_of(self.db, piece):
                    if warnings:
                        frame.warnings.extend(warnings)
                        warnings = []
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
        if warnings:  # No frame carried them (no series): a frame of its own.
            yield shard_pb2.SeriesFrame(warnings=warnings)
        metrics.SERIES_REQUEST_DURATION.observe(time.perf_counter() - t0)

    async def Aggregate(self, request, context):
        """The aggregation push-down: read the matching series as ``Series`` does (within the request's
        limits), evaluate the selector or range function and the partial aggregate over them in a worker
        thread (the event loop keeps acknowledging writes), answer the partial."""
        warnings = self.db.read_warnings()
        limits = limits_of(request)
        try:
            matchers = read_matchers(request)
            spec = pushdown_wire.spec_of(request, matchers)
            pieces = [p async for p in self.db.select_pieces(matchers, spec.start_ms, spec.end_ms, **limits)]
            sel = reads.concat(pieces)
            if sel.hists is not None:
                # Partial aggregates are of floats: series with histograms need the querier's exact path.
                metrics.AGGREGATE_REQUESTS.labels("histograms").inc()
                return shard_pb2.AggregateResponse(histograms=True, warnings=warnings)
            remaining = context.time_remaining()
            budget = QueryBudget(timeout_s=remaining if remaining is not None else None)
            if sel.ts.shape[0] + sel.idx.shape[0] * spec.n_steps < _AGGREGATE_INLINE:
                partial = self._aggregate(spec, sel, budget)
            else:
                partial = await asyncio.to_thread(self._aggregate, spec, sel, budget)
            response = pushdown_wire.response_of(partial, warnings)
        except errors.QueryLimitError as exc:
            metrics.AGGREGATE_REQUESTS.labels("limit").inc()
            return shard_pb2.AggregateResponse(limit_exceeded=exc.limit)
        except asyncio.CancelledError:
            metrics.AGGREGATE_REQUESTS.labels("cancelled").inc()
            raise
        except Exception as exc:  # noqa: BLE001
            metrics.AGGREGATE_REQUESTS.labels("error").inc()
            await self._fail(context, exc, "Aggregate")
            return
        metrics.AGGREGATE_REQUESTS.labels("ok").inc()
        metrics.AGGREGATE_SERIES.inc(partial.series)
        metrics.AGGREGATE_RESPONSE_BYTES.inc(response.ByteSize())
        return response

    def _aggregate(self, spec, sel: Selection, budget: QueryBudget):
        labels, keys = self.db.registry.labels, self.db.registry.keys
        offsets = np.zeros(sel.idx.shape[0] + 1, dtype=np.int64)
        np.cumsum(sel.counts, out=offsets[1:])
        idx = sel.idx.tolist()
        return partial_aggregate(spec, [labels[i] for i in idx], sel.ts, sel.vals, offsets, budget,
                                 [keys[i] for i in idx], series_ids=self.db.registry.ids[sel.idx],
                                 shard_id=self.db.store.shard_id)

    async def LabelNames(self, request, context):
        try:
            names = await self.db.label_names(matchers_from_pb(request.matchers), request.start_ms, request.end_ms)
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "LabelNames")
            return
        return shard_pb2.LabelNamesResponse(names=names, warnings=self.db.read_warnings())

    async def LabelValues(self, request, context):
        try:
            values = await self.db.label_values(
                request.name, matchers_from_pb(request.matchers), request.start_ms, request.end_ms
            )
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "LabelValues")
            return
        return shard_pb2.LabelValuesResponse(values=values, warnings=self.db.read_warnings())


    async def Flush(self, request, context):
        # The head into blocks, then the maintenance the periodic task would do next (retention and
        # compaction), so that block sizes measured after a Flush are the settled ones.
        try:
            self._admin("Flush")
            n = await self.db.flush()
            await self.db.maintain()
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "Flush")
            return
        return shard_pb2.FlushResponse(blocks_written=n)


    async def Metadata(self, request, context):
        try:
            entries = self.db.metadata_of(request.metric, request.limit)
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "Metadata")
            return
        return shard_pb2.MetadataResponse(metadata=[
            types_pb2.MetricMetadata(metric_family_name=n, type=t, help=h, unit=u) for n, t, h, u in entries
        ])

    async def TSDBStatus(self, request, context):
        """The head's cardinality statistics (``/api/v1/status/tsdb``): every label pair of the counted
        series with its series count (see :mod:`shardmon.shards.tsdb_stats`)."""
        try:
            selectors = [matchers_from_pb(s.matchers) for s in request.selectors]
            own = Ownership(list(request.shard_ids), request.replication_factor or 1, list(request.live_shard_ids))
            stats = await head_stats(self.db, selectors, own if request.shard_ids else None)
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "TSDBStatus")
            return
        return shard_pb2.TSDBStatusResponse(
            num_series=stats.num_series, chunk_count=stats.chunk_count, min_time_ms=stats.min_time_ms,
            max_time_ms=stats.max_time_ms, warnings=self.db.read_warnings(),
            labels=[shard_pb2.LabelValueCounts(name=n, values=vs, series=cs.tolist()) for n, vs, cs in stats.labels])

    async def Reset(self, request, context):
        try:
            self._admin("Reset")
            await self.db.reset()
        except Exception as exc:  # noqa: BLE001
            await self._fail(context, exc, "Reset")
            return
        return shard_pb2.ResetResponse()


class _Health:
    """The shard's storage health, as the gRPC health service and the gauges report it."""

    def __init__(self, servicer: health.aio.HealthServicer | None, store: RedisStore) -> None:
        self.servicer = servicer
        self.store = store
        self.cut_failures = 0
        self._last: int | None = None

    async def update(self) -> None:
        store = self.store
        metrics.BLOCK_CUT_FAILING.set(self.cut_failures)
        ok = store.lost is None and store.not_durable is None and self.cut_failures < _CUT_FAILURES_UNHEALTHY
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        if self.servicer is not None and status != self._last:
            await self.servicer.set(HEALTH_SERVICE, status)
            self._last = status


async def _maintain(db: ShardDB, interval_s: float, health: _Health) -> None:
    """Every ``interval_s``: cut the blocks the head has outgrown, apply retention, compact. A failed
    cut (Redis out of memory, unreachable) is counted and retried after a backoff that doubles up to
    5 minutes; retention and compaction go on meanwhile (retention may free the memory a cut needs)."""
    loop = asyncio.get_running_loop()
    next_cut = 0.0
    while True:
        await asyncio.sleep(interval_s)
        if loop.time() >= next_cut:
            try:
                await db.cut_blocks()
                health.cut_failures = 0
            except errors.ShardDataLostError:
                pass  # Not a cut failure: writes and cuts wait for the operator (logged by the store).
            except Exception as exc:  # noqa: BLE001 - counted, logged, retried
                health.cut_failures += 1
                metrics.BLOCK_CUT_FAILURES.inc()
                backoff = min(interval_s * 2 ** health.cut_failures, _CUT_BACKOFF_MAX_S)
                next_cut = loop.time() + backoff
                log.log(logging.WARNING if isinstance(exc, errors.ShardUnavailableError) else logging.ERROR,
                        "block cut failed (%d in a row), retrying in %.0fs: %s", health.cut_failures, backoff, exc,
                        exc_info=not isinstance(exc, errors.ShardmonError))
        db.head.fold_tail()  # Without reads the head's unsorted tail would only grow.
        try:
            await db.maintain()
        except errors.ShardUnavailableError as exc:
            log.warning("block maintenance postponed: %s", exc)
        except Exception:  # noqa: BLE001 - the loop must outlive a bug in one round; it is logged
            log.exception("block maintenance failed")
        db.update_gauges()
        await health.update()


async def _watch_redis(store: RedisStore, policy: str, health: _Health, interval_s: float = 1.0) -> None:
    """Every second: is the Redis still the shard's (identity, epoch, generation)? Every 5 s, and every
    second while writes are refused for want of one: is its AOF on (turned on again if not)? Every 5 s
    (and in the first round): its memory and replicas, for the gauges."""
    rounds = 0
    while True:
        await asyncio.sleep(interval_s)
        rounds += 1
        try:
            await store.verify()
            if rounds % 5 == 0 or store.not_durable is not None:
                was = store.not_durable
                await store.ensure_durability(policy)
                if store.not_durable != was:
                    if store.not_durable:
                        log.error("shard %d: writes refused: %s", store.shard_id, store.not_durable)
                    else:
                        log.info("shard %d: its Redis has an AOF again: writes accepted", store.shard_id)
        except errors.ShardUnavailableError as exc:
            log.debug("redis check postponed: %s", exc)
        if rounds % 5 == 1:
            try:
                await store.observe_redis()
            except errors.ShardUnavailableError as exc:  # Only the gauges wait: they keep their last values.
                log.debug("redis memory and replicas not read: %s", exc)
        await health.update()


async def _check_redis(store: RedisStore, node, policy: str) -> None:
    """What must hold before the shard uses its Redis; raises ConfigError (the process exits) if not."""
    evicts = await store.eviction_policy()
    if evicts != "noeviction":
        raise errors.ConfigError(
            f"shards.nodes: shard {node.id}: the Redis at {redacted_url(node.redis_url)} has maxmemory-policy "
            f"{evicts}, so it may evict the shard's WAL and blocks under memory pressure; set maxmemory-policy "
            "noeviction (in its redis.conf, or CONFIG SET maxmemory-policy noeviction then CONFIG REWRITE)")
    for warning in await store.ensure_durability(policy):
        log.warning("shard %d: WAL durability (shards.wal_appendfsync: %s): %s", node.id, policy, warning)
    if store.not_durable:
        log.error("shard %d: writes refused: %s", node.id, store.not_durable)
    elif policy != "off":
        log.info("shard %d: redis appendonly yes, appendfsync %s", node.id, policy)


def store_for(node, shard_id: int) -> RedisStore:
    """The Redis store of a shard node, with its password (file) and TLS settings."""
    has_password = node.redis_password is not None or bool(node.redis_password_file)
    return RedisStore(node.redis_url, shard_id, password=node.redis_password_value if has_password else None,
                      tls=node.redis_tls_config)


async def serve(config: Config, shard_id: int, *, stop: asyncio.Event | None = None,
                accept_data_loss: bool = False, rebuild_from_replicas: bool = False) -> None:
    """Recover shard ``shard_id`` from its Redis and serve until ``stop`` is set (or SIGTERM/SIGINT).

    ``accept_data_loss``: the Redis lost data (noticed earlier): start anew over what it holds.
    ``rebuild_from_replicas``: the same, then copy this shard's series back from their other replicas
    (with ``shards.replication_factor`` > 1) while serving."""
    fix_mmap_threshold()  # The head's large arrays go back to the system when freed (model/malloc_tuning.py).
    node = config.shards.node(shard_id)
    if rebuild_from_replicas and config.shards.replication_factor < 2:
        raise errors.ConfigError("shards.replication_factor: 1, so no other shard holds a copy of this shard's "
                                 "series: --rebuild-from-replicas has nothing to copy from (use --accept-data-loss)")
    web_config = config.web_config()
    stop_metrics = None
    if node.metrics_address:
        # On a thread of its own, as prometheus_client's server was: /metrics answers while the loop is busy.
        _, stop_metrics = serve_in_thread(metrics_app("shard", web_config), node.metrics_address,
                                          f"shards.nodes: shard {shard_id} metrics_address", web_config,
                                          name="shard-metrics")
    store = store_for(node, shard_id)
    db = ShardDB.from_config(store, config.shards)
    policy = config.shards.wal_appendfsync
    while True:
        try:
            await _check_redis(store, node, policy)
            await db.open(accept_data_loss=accept_data_loss or rebuild_from_replicas)
            break
        except errors.ShardUnavailableError as exc:
            log.warning("shard %d: waiting for redis at %s: %s", shard_id, redacted_url(node.redis_url), exc)
            await asyncio.sleep(1)
    if store.lost:
        log.error("%s", store.lost_error())
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
        interceptors=grpcauth.server_interceptors("shard", web_config),
    )
    shard_pb2_grpc.add_ShardServicer_to_server(ShardService(db, enable_admin_api=config.web.enable_admin_api), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    grpcauth.add_port(server, node.address, web_config, f"shards.nodes: shard {shard_id} address")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    state = _Health(health_servicer, store)
    await state.update()
    log.info("shard %d serving on %s", shard_id, node.address)
    tasks = [
        asyncio.create_task(_maintain(db, max(0.5, min(10.0, config.shards.block_duration / 20_000)), state)),
        asyncio.create_task(_watch_redis(store, policy, state)),
    ]
    if rebuild_from_replicas:
        from shardmon.shards.rebuild import rebuild_from_replicas as rebuild

        tasks.append(asyncio.create_task(rebuild(db, config, shard_id)))
    await wait_until_stopped(stop)
    for t in tasks:
        t.cancel()
    await server.stop(grace=2)
    await store.close()
    if stop_metrics is not None:
        stop_metrics()
    log.info("shard %d stopped", shard_id)
