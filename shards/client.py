"""The only gRPC client of a shard, for both the write side (ingest) and the read side (querier).

``AsyncShardClient`` writes from asyncio code (the scrapers' forwarders); ``ShardClient`` reads from
threads (the querier's fan-out). Both translate failed calls into the error tree once, here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import grpc
import numpy as np

from shardmon.model import grpcauth
from shardmon.model.errors import QueryLimitError, ShardUnavailableError
from shardmon.model.grpcstatus import SHARD_READ, SHARD_WRITE, error_of
from shardmon.model.histogram_merge import with_histograms
from shardmon.model.http_config import BasicAuth, TLSConfig
from shardmon.model.labels import Matcher, MatchType, labels_of  # noqa: F401 - labels_of: also this module's
from shardmon.model.pb import shard_pb2, shard_pb2_grpc, types_pb2
from shardmon.model.promql import pushdown_wire
from shardmon.model.promql.pushdown import AggregateSpec, Partial
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import NO_LIMIT, Series

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: The gRPC health service's Watch (every shard serves it), called with raw bytes: see ``ShardClient._keep_warm``.
_HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Reconnect quickly after a shard restarts (the default backoff grows to 2 minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
_PB_MATCH = {
    MatchType.EQ: types_pb2.Matcher.EQ,
    MatchType.NEQ: types_pb2.Matcher.NEQ,
    MatchType.RE: types_pb2.Matcher.RE,
    MatchType.NRE: types_pb2.Matcher.NRE,
}


class ShardConnection(NamedTuple):
    """How to reach the shards: TLS (``shards.tls``, else ``internal_client.tls_config``; None: plain gRPC)
    and the credentials sent on every call (``internal_client.basic_auth``)."""

    tls: TLSConfig | None = None
    basic_auth: BasicAuth | None = None

    @classmethod
    def of(cls, config) -> ShardConnection:
        """From a :class:`shardmon.model.config.Config`."""
        return cls(config.shard_tls(), config.internal_client.basic_auth)


#: Plain gRPC without credentials (no web config).
PLAIN = ShardConnection()


def matchers_to_pb(matchers: Sequence[Matcher]) -> list[types_pb2.Matcher]:
    return [types_pb2.Matcher(type=_PB_MATCH[m.type], name=m.name, value=m.value) for m in matchers]


def series_of_batch(b: SampleBatch) -> list[Series]:
    """A decoded frame's :class:`Series` (its samples are grouped by series, in the table's order; arrays are
    views of the frame's bytes). A series' histogram samples are merged with its floats by time
    (:func:`~shardmon.model.histogram_merge.with_histograms`)."""
    counts = np.bincount(b.sample_series, minlength=b.num_series) if b.num_samples else np.zeros(b.num_series, int)
    ends = np.cumsum(counts)
    out = []
    start = 0
    for key, end in zip(b.series.keys(), ends.tolist()):
        out.append(Series(labels_of(key), b.timestamps_ms[start:end], b.values[start:end]))
        start = end
    if b.num_histograms:
        out = with_histograms(out, b.histograms)
    return out


def _set_limits(req, max_series: int | None, max_samples: int | None, points_per_series: int) -> None:
    """Put the read's limits into ``req`` (a Series or Aggregate request); None and None: no limits."""
    if max_series is not None or max_samples is not None:
        req.limits.CopyFrom(shard_pb2.SeriesLimits(
            max_series=NO_LIMIT if max_series is None else max_series,
            max_samples=NO_LIMIT if max_samples is None else max_samples,
            points_per_series=points_per_series,
        ))


class ShardTSDBStats(NamedTuple):
    """One shard's answer to ``TSDBStatus``: its counted head series, Shardmon's chunk count, its head's time
    range, per label name ``(name, values, series counts)`` (counts a uint64 array), and its warnings."""

    shard_id: int
    num_series: int
    chunk_count: int
    min_time_ms: int
    max_time_ms: int
    labels: list[tuple[str, list[str], np.ndarray]]
    warnings: list[str]


class SeriesStream:
    """One Series call in flight: iterate it for the series of each frame as they arrive;
    :meth:`cancel` (from any thread) ends it, the iteration then raising a retryable error.

    Raises :class:`~shardmon.model.errors.QueryLimitError` when the shard stopped at the request's limits, and
    the error tree's translation of a failed call otherwise.
    """

    def __init__(self, call, what: str) -> None:
        self._call = call
        self._what = what
        #: The bytes of the frames received so far (what the shard sent, for the querier's metrics).
        self.bytes_received = 0

    def __iter__(self) -> Iterator[list[Series]]:
        for batch in self.batches():
            yield series_of_batch(batch)

    def batches(self) -> Iterator[SampleBatch]:
        """The answer as it comes, one :class:`SampleBatch` per frame (samples grouped by series, in the
        series table's order, which is label order), raising as iterating does."""
        try:
            for frame in self._call:
                self.bytes_received += frame.ByteSize()
                if frame.limit_exceeded:
                    raise QueryLimitError(f"{self._what}: the answer would exceed its {frame.limit_exceeded}",
                                          frame.limit_exceeded)
                yield SampleBatch.from_pb(frame.series)
        except grpc.RpcError as exc:
            raise error_of(exc, self._what, SHARD_READ) from exc

    def cancel(self) -> None:
        self._call.cancel()


class AsyncShardClient:
    """Writes to one shard from asyncio code."""

    def __init__(self, shard_id: int, address: str, conn: ShardConnection = PLAIN) -> None:
        self.shard_id = shard_id
        self.address = address
        self._channel = grpcauth.channel(address, tls=conn.tls, basic_auth=conn.basic_auth,
                                         options=_CHANNEL_OPTIONS, aio=True)
        self._stub = shard_pb2_grpc.ShardStub(self._channel)

    async def write(self, batch_id: str, samples: types_pb2.SampleColumns, timeout_s: float,
                    metadata: Sequence[types_pb2.MetricMetadata] = ()) -> shard_pb2.WriteResponse:
        """Send one batch; raises a retryable error when trying again may succeed."""
        try:
            return await self._stub.Write(
                shard_pb2.WriteRequest(batch_id=batch_id, samples=samples, metadata=metadata), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            raise error_of(exc, f"shard {self.shard_id} ({self.address}) Write", SHARD_WRITE) from exc

    async def close(self) -> None:
        await self._channel.close()


class ShardClient:
    """Reads from (and, for tools and tests, writes to) one shard; thread-safe, blocking."""

    def __init__(self, shard_id: int, address: str, conn: ShardConnection = PLAIN) -> None:
        self.shard_id = shard_id
        self.address = address
        self._channel = grpcauth.channel(address, tls=conn.tls, basic_auth=conn.basic_auth, options=_CHANNEL_OPTIONS)
        self._stub = shard_pb2_grpc.ShardStub(self._channel)
        self._watch = self._channel.unary_stream(_HEALTH_WATCH)
        self._warm = None
        self._warm_lock = threading.Lock()

    def _keep_warm(self) -> None:
        """Keep one call open on the channel: a health ``Watch``, which the shard never ends. grpcio runs a thread
        per channel while it has calls open and starts a new one for the next call once none is, so without it
        every read after a pause (each query's, each shard's) waits for a thread to start (about a millisecond on
        a busy machine). A watch that ended (the shard restarted) is opened again at the next read."""
        warm = self._warm
        if warm is not None and not warm.done():
            return
        with self._warm_lock:
            if self._warm is None or self._warm.done():
                self._warm = self._watch(b"")  # an empty HealthCheckRequest: the whole server

    def _what(self, method: str) -> str:
        return f"shard {self.shard_id} ({self.address}) {method}"

    def write(self, batch_id: str, batch: SampleBatch, timeout_s: float = 10.0, *,
              backfill: bool = False) -> shard_pb2.WriteResponse:
        """Write a batch; with ``backfill``, straight into blocks (historical data of any age)."""
        try:
            req = shard_pb2.WriteRequest(batch_id=batch_id, samples=batch.to_pb(), backfill=backfill)
            return self._stub.Write(req, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise error_of(exc, self._what("Write"), SHARD_WRITE) from exc

    def series_stream(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        skip_samples: bool = False,
        timeout_s: float = 120.0,
        max_series: int | None = None,
        max_samples: int | None = None,
        points_per_series: int = 0,
    ) -> SeriesStream:
        """Start a Series call. With ``max_series`` or ``max_samples`` (None: no limit), the shard stops
        as soon as its answer would exceed them (see ``SeriesLimits`` in shard.proto)."""
        self._keep_warm()
        req = shard_pb2.SeriesRequest(
            start_ms=start_ms, end_ms=end_ms, matchers=matchers_to_pb(matchers), skip_samples=skip_samples
        )
        _set_limits(req, max_series, max_samples, points_per_series)
        return SeriesStream(self._stub.Series(req, timeout=timeout_s), self._what("Series"))

    def series(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        skip_samples: bool = False,
        timeout_s: float = 120.0,
        max_series: int | None = None,
        max_samples: int | None = None,
        points_per_series: int = 0,
    ) -> list[Series]:
        """The whole answer of :meth:`series_stream`."""
        out: list[Series] = []
        for part in self.series_stream(matchers, start_ms, end_ms, skip_samples=skip_samples, timeout_s=timeout_s,
                                       max_series=max_series, max_samples=max_samples,
                                       points_per_series=points_per_series):
            out.extend(part)
        return out

    def series_batches(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                       timeout_s: float = 600.0) -> list[SampleBatch]:
        """The Series answer as it comes, one :class:`SampleBatch` per frame (series ids, labels and
        samples in columns), for copying data between shards (``--rebuild-from-replicas``)."""
        req = shard_pb2.SeriesRequest(start_ms=start_ms, end_ms=end_ms, matchers=matchers_to_pb(matchers))
        try:
            return [SampleBatch.from_pb(frame.series) for frame in self._stub.Series(req, timeout=timeout_s)
                    if frame.series.series_ids]
        except grpc.RpcError as exc:
            raise error_of(exc, self._what("Series"), SHARD_READ) from exc

    def aggregate(self, spec: AggregateSpec, *, timeout_s: float = 120.0, max_series: int | None = None,
                  max_samples: int | None = None, points_per_series: int = 0,
                  attach: Callable[[grpc.Future], None] | None = None) -> tuple[Partial, list[str], int]:
        """The shard's partial aggregate of ``spec`` (the aggregation push-down), its read warnings and the
        size of its answer in bytes. Over the limits (as :meth:`series_stream`'s):
        :class:`~shardmon.model.errors.QueryLimitError`."""
        future = self.start_aggregate(spec, timeout_s=timeout_s, max_series=max_series, max_samples=max_samples,
                                      points_per_series=points_per_series)
        if attach is not None:
            attach(future)
        return self.aggregate_answer(spec, future)

    def start_aggregate(self, spec: AggregateSpec, *, timeout_s: float = 120.0, max_series: int | None = None,
                        max_samples: int | None = None, points_per_series: int = 0) -> grpc.Future:
        """Start :meth:`aggregate` without waiting: the call's future (cancel it from any thread), for
        :meth:`aggregate_answer`. A caller can start every shard's call from one thread."""
        self._keep_warm()
        req = pushdown_wire.request_of(spec, matchers_to_pb(spec.matchers))
        _set_limits(req, max_series, max_samples, points_per_series)
        return self._stub.Aggregate.future(req, timeout=timeout_s)

    def aggregate_answer(self, spec: AggregateSpec, future: grpc.Future) -> tuple[Partial, list[str], int]:
        """What :meth:`aggregate` answers, from the future :meth:`start_aggregate` gave (waits for it)."""
        resp = self._result("Aggregate", future)
        if resp.limit_exceeded:
            raise QueryLimitError(f"{self._what('Aggregate')}: the answer would exceed its {resp.limit_exceeded}",
                                  resp.limit_exceeded)
        return pushdown_wire.partial_of(resp, spec.n_steps), list(resp.warnings), resp.ByteSize()

    def _result(self, method: str, future: grpc.Future):
        """A unary call's answer, its failure translated into the error tree."""
        what = self._what(method)
        try:
            return future.result()
        except grpc.FutureCancelledError:
            raise ShardUnavailableError(f"{what}: cancelled") from None
        except grpc.RpcError as exc:
            raise error_of(exc, what, SHARD_READ) from exc

    def _unary(self, method: str, request, timeout_s: float, attach: Callable[[grpc.Future], None] | None):
        """A unary read; with ``attach``, the call's future is handed over first, for cancelling it
        from another thread (the call then fails as a retryable error)."""
        self._keep_warm()
        try:
            future = getattr(self._stub, method).future(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise error_of(exc, self._what(method), SHARD_READ) from exc
        if attach is not None:
            attach(future)
        return self._result(method, future)

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, timeout_s: float = 60.0, *,
                    attach: Callable[[grpc.Future], None] | None = None) -> list[str]:
        req = shard_pb2.LabelNamesRequest(start_ms=start_ms, end_ms=end_ms, matchers=matchers_to_pb(matchers))
        return list(self._unary("LabelNames", req, timeout_s, attach).names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int, timeout_s: float = 60.0, *,
        attach: Callable[[grpc.Future], None] | None = None,
    ) -> list[str]:
        req = shard_pb2.LabelValuesRequest(
            name=name, start_ms=start_ms, end_ms=end_ms, matchers=matchers_to_pb(matchers)
        )
        return list(self._unary("LabelValues", req, timeout_s, attach).values)

    def flush(self, timeout_s: float = 300.0) -> int:
        """Move the shard's head into blocks; returns how many blocks were written. An admin RPC:
        :class:`~shardmon.model.errors.PermissionDeniedError` unless the shard runs with ``web.enable_admin_api``."""
        try:
            return self._stub.Flush(shard_pb2.FlushRequest(), timeout=timeout_s).blocks_written
        except grpc.RpcError as exc:
            raise error_of(exc, self._what("Flush"), SHARD_WRITE) from exc

    def metadata(self, metric: str = "", limit: int = 0, timeout_s: float = 30.0, *,
                 attach: Callable[[grpc.Future], None] | None = None) -> list[tuple[str, str, str, str]]:
        """(family, type, help, unit) the shard has seen."""
        resp = self._unary("Metadata", shard_pb2.MetadataRequest(metric=metric, limit=limit), timeout_s, attach)
        return [(m.metric_family_name, m.type, m.help, m.unit) for m in resp.metadata]

    def tsdb_status(self, selectors: Sequence[Sequence[Matcher]], *, shard_ids: Sequence[int] = (),
                    replication_factor: int = 1, live_shard_ids: Sequence[int] = (), timeout_s: float = 60.0,
                    attach: Callable[[grpc.Future], None] | None = None) -> ShardTSDBStats:
        """The shard's head cardinality statistics over the series matching one of ``selectors`` (none: all);
        with ``shard_ids``, only the series whose first replica among ``live_shard_ids`` is this shard."""
        req = shard_pb2.TSDBStatusRequest(
            selectors=[shard_pb2.Selector(matchers=matchers_to_pb(ms)) for ms in selectors],
            shard_ids=shard_ids, replication_factor=replication_factor, live_shard_ids=live_shard_ids)
        resp = self._unary("TSDBStatus", req, timeout_s, attach)
        labels = [(lv.name, list(lv.values), np.asarray(lv.series, np.uint64)) for lv in resp.labels]
        return ShardTSDBStats(self.shard_id, resp.num_series, resp.chunk_count, resp.min_time_ms, resp.max_time_ms,
                              labels, list(resp.warnings))

    def reset(self, timeout_s: float = 60.0) -> None:
        """Delete everything the shard holds (tests and tools). An admin RPC:
        :class:`~shardmon.model.errors.PermissionDeniedError` unless the shard runs with ``web.enable_admin_api``."""
        try:
            self._stub.Reset(shard_pb2.ResetRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise error_of(exc, self._what("Reset"), SHARD_WRITE) from exc

    def close(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
        self._channel.close()
