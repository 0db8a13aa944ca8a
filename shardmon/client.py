"""A small typed client of the querier's gRPC Query API.

Results come back as :class:`~shardmon.querier.promql.QueryResult` with numpy arrays, errors as the same
classes the HTTP API maps to Prometheus's error types (``BadQueryError`` for a malformed query,
``QueryTimeoutError``, ``QueryExecutionError``, ``QueryLimitError`` for a query over
``querier.max_samples``/``max_series`` with ``.limit`` naming it, ``QueryCanceledError``,
``QueryUnavailableError``; ``UnauthenticatedError`` and ``PermissionDeniedError`` when the querier
refuses the caller), through the one status table of :mod:`shardmon.model.grpcstatus`::

    from shardmon.client import QueryClient

    with QueryClient("127.0.0.1:9191") as c:
        # An instant query: one point per series.
        for s in c.instant('sum by (job) (rate(http_requests_total[5m]))').series:
            print(s.labels.get("job"), s.values[0])

        # A range query: the points of every series over the grid.
        res = c.range("up", start_ms, end_ms, step_ms=15_000)
        for s in res.series:
            print(s.labels, s.timestamps_ms, s.values)

        # Native histograms: a series' points stay in time order in timestamps_ms/values; where a point is a
        # histogram, s.histograms (an object array beside values, None when the series has none) holds a
        # shardmon.model.histogram.Histogram (absolute bucket counts, spans, schema, zero bucket, count, sum,
        # counter_reset_hint) and values holds a NaN placeholder.
        for s in c.instant("rate(request_duration_seconds[5m])").series:
            h = s.histograms[0] if s.histograms is not None else None
            print(s.labels, h.count if h is not None else s.values[0])

        c.series(['up{job="node"}'])        # label sets of the matching series
        c.label_names()                     # every label name
        c.label_values("job")               # every value of a label
"""

from __future__ import annotations

import time

import grpc

from shardmon.model import grpcauth
from shardmon.model.grpcstatus import QUERY, error_of
from shardmon.model.histogram_pb import merge_points
from shardmon.model.http_config import BasicAuth, TLSConfig
from shardmon.model.labels import Labels
from shardmon.model.pb import query_pb2, query_pb2_grpc
from shardmon.querier.promql import QueryResult, ResultSeries

_TYPES = {
    query_pb2.QueryResponse.VECTOR: "vector",
    query_pb2.QueryResponse.MATRIX: "matrix",
    query_pb2.QueryResponse.SCALAR: "scalar",
    query_pb2.QueryResponse.STRING: "string",
}


def result_of(resp: query_pb2.QueryResponse) -> QueryResult:
    rtype = _TYPES.get(resp.result_type, "vector")
    series = [ResultSeries(Labels.from_pairs((lb.name, lb.value) for lb in s.labels),
                           *merge_points(s.timestamps_ms, s.values, s.histograms))
              for s in resp.series]
    scalar = resp.scalar if rtype == "scalar" else (resp.string if rtype == "string" else None)
    return QueryResult(rtype, series, scalar, resp.time_ms, list(resp.warnings), resp.is_partial)


class QueryClient:
    """Blocking client; raises :class:`~shardmon.model.errors.ShardmonError` subclasses (see the module docstring).

    With a querier behind a web config: ``tls`` (Prometheus's ``tls_config`` fields, e.g.
    ``TLSConfig(ca_file="ca.crt")``, with ``cert_file``/``key_file`` for mTLS; an empty ``TLSConfig()``
    trusts the system's CAs) and ``username``/``password`` (or ``basic_auth``, Prometheus's
    ``basic_auth`` with ``password_file``) sent on every call::

        QueryClient("querier:9191", tls=TLSConfig(ca_file="ca.crt"), username="alice", password="...")
    """

    def __init__(self, address: str, timeout_s: float = 120.0, *, tls: TLSConfig | None = None,
                 username: str | None = None, password: str | None = None,
                 basic_auth: BasicAuth | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        if username is not None:
            basic_auth = BasicAuth(username=username, password=password or "")
        self._channel = grpcauth.channel(address, tls=tls, basic_auth=basic_auth,
                                         options=[("grpc.max_receive_message_length", 256 << 20)])
        self._stub = query_pb2_grpc.QueryStub(self._channel)

    def instant(self, query: str, time_ms: int | None = None) -> QueryResult:
        t = int(time.time() * 1000) if time_ms is None else time_ms
        try:
            return result_of(self._stub.Instant(query_pb2.InstantQueryRequest(query=query, time_ms=t), timeout=self.timeout_s))
        except grpc.RpcError as exc:
            raise error_of(exc, None, QUERY) from None

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> QueryResult:
        req = query_pb2.RangeQueryRequest(query=query, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms)
        try:
            return result_of(self._stub.Range(req, timeout=self.timeout_s))
        except grpc.RpcError as exc:
            raise error_of(exc, None, QUERY) from None

    def series(self, match: list[str], start_ms: int = 0, end_ms: int = 0) -> list[Labels]:
        """Label sets of the series matching any of the selectors (``end_ms`` 0: no upper bound)."""
        req = query_pb2.SeriesQueryRequest(match=match, start_ms=start_ms, end_ms=end_ms)
        try:
            resp = self._stub.Series(req, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise error_of(exc, None, QUERY) from None
        return [Labels.from_pairs((lb.name, lb.value) for lb in s.labels) for s in resp.series]

    def label_names(self, match: list[str] | None = None, start_ms: int = 0, end_ms: int = 0) -> list[str]:
        req = query_pb2.LabelNamesQueryRequest(match=match or [], start_ms=start_ms, end_ms=end_ms)
        try:
            return list(self._stub.LabelNames(req, timeout=self.timeout_s).values)
        except grpc.RpcError as exc:
            raise error_of(exc, None, QUERY) from None

    def label_values(self, name: str, match: list[str] | None = None, start_ms: int = 0, end_ms: int = 0) -> list[str]:
        req = query_pb2.LabelValuesQueryRequest(name=name, match=match or [], start_ms=start_ms, end_ms=end_ms)
        try:
            return list(self._stub.LabelValues(req, timeout=self.timeout_s).values)
        except grpc.RpcError as exc:
            raise error_of(exc, None, QUERY) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
