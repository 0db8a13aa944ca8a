"""The gRPC ``Query`` service: PromQL for clients that query aggregates.

Results travel in columns (timestamps and values as packed bytes per series; a series' native histogram
points beside them as ``HistogramPoint`` messages, :mod:`shardmon.model.histogram_pb`); errors leave through
the one status table in :mod:`shardmon.model.grpcstatus` (a bad query is ``INVALID_ARGUMENT``, a timeout
``DEADLINE_EXCEEDED``, a query over a limit ``FAILED_PRECONDITION``). Evaluation runs in a thread, off
the event loop, and stops when the client cancels the call or its deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from shardmon.model import errors
from shardmon.model.grpcstatus import abort
from shardmon.model.histogram_pb import split_points
from shardmon.model.pb import query_pb2, query_pb2_grpc, types_pb2
from shardmon.model.storage import Querier, QueryBudget
from shardmon.querier import lookup, metrics
from shardmon.querier.promql import Engine, QueryResult
from shardmon.querier.slow_queries import SlowQuery, SlowQueryLog, instant_params, peer_ip, range_params

log = logging.getLogger(__name__)
T = TypeVar("T")

_TYPES = {
    "vector": query_pb2.QueryResponse.VECTOR,
    "matrix": query_pb2.QueryResponse.MATRIX,
    "scalar": query_pb2.QueryResponse.SCALAR,
    "string": query_pb2.QueryResponse.STRING,
}


def response_of(res: QueryResult) -> query_pb2.QueryResponse:
    out = query_pb2.QueryResponse(result_type=_TYPES[res.result_type], time_ms=res.time_ms, warnings=res.annotations(),
                                 is_partial=res.partial)
    if res.result_type == "scalar":
        out.scalar = float(res.scalar)
    elif res.result_type == "string":
        out.string = str(res.scalar)
    for s in res.series:
        ts, values, hists = split_points(s.timestamps_ms, s.values, s.histograms)
        out.series.append(
            query_pb2.ResultSeries(labels=[types_pb2.Label(name=n, value=v) for n, v in s.labels],
                                   timestamps_ms=ts, values=values, histograms=hists)
        )
    return out


class QueryService(query_pb2_grpc.QueryServicer):
    def __init__(self, engine: Engine, default_timeout_ms: int, querier: Querier | None = None,
                 slow_queries: SlowQueryLog | None = None) -> None:
        self.engine = engine
        self.default_timeout_ms = default_timeout_ms
        self.querier = querier
        self.slow_queries = slow_queries

    async def _call(self, fn: Callable[[QueryBudget], T], timeout_ms: int, context, kind: str,
                    params: dict | None = None) -> T:
        """``fn(budget)`` in a thread, as one query on its own budget: the timeout is the request's (else
        the default), capped by the engine's and by the call's own gRPC deadline. When the client cancels
        the call or its deadline passes, gRPC cancels this coroutine, and the budget is called off so the
        evaluation and its shard calls stop too. Errors leave through the status table. A query
        (``params``: its expression and times) that ran long enough goes into the slow query log."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        started_s = time.time()
        outcome = "ok"
        remaining = context.time_remaining()
        if remaining is not None:
            timeout_ms = min(timeout_ms or self.default_timeout_ms, max(1, int(remaining * 1000)))
        budget = self.engine.new_budget(timeout_ms or self.default_timeout_ms)

        def job() -> T:
            metrics.IN_FLIGHT.inc()
            try:
                budget.check()
                return fn(budget)
            finally:
                metrics.IN_FLIGHT.dec()

        future = loop.run_in_executor(None, job)
        try:
            try:
                return await asyncio.wait_for(asyncio.shield(future), budget.time_left())
            except asyncio.TimeoutError:
                raise errors.QueryTimeoutError("lookup timed out" if kind == "metadata"
                                               else "query timed out in expression evaluation") from None
        except asyncio.CancelledError:
            outcome = "canceled"
            budget.cancel(errors.QueryCanceledError("query canceled by the client"))
            raise
        except errors.ShardmonError as exc:
            outcome = getattr(exc, "error_type", "error")
            if isinstance(exc, errors.QueryLimitError):
                metrics.QUERIES_REFUSED.labels(exc.limit).inc()
            budget.cancel(exc if isinstance(exc, errors.QueryError) else None)
            await abort(context, exc)
        except Exception as exc:  # noqa: BLE001 - a bug becomes INTERNAL, logged with its trace.
            outcome = "internal"
            log.exception("lookup failed" if kind == "metadata" else "query failed")
            budget.cancel(None)
            await abort(context, exc, f"internal error: {exc}")
        finally:
            if not future.done():  # Left behind: its error is of no interest any more.
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            elapsed = time.perf_counter() - t0
            metrics.QUERIES.labels("grpc", kind, outcome).inc()
            metrics.QUERY_DURATION.labels(kind).observe(elapsed)
            if params is not None and self.slow_queries is not None:
                self.slow_queries.observe(SlowQuery("grpc", kind, params, started_s, elapsed, budget.series,
                                                    budget.samples, outcome, client_ip=peer_ip(context.peer() or "")))

    async def Instant(self, request, context):
        res = await self._call(lambda b: self.engine.instant(request.query, request.time_ms, budget=b),
                               request.timeout_ms, context, "instant", instant_params(request.query, request.time_ms))
        return response_of(res)

    async def Range(self, request, context):
        res = await self._call(
            lambda b: self.engine.range(request.query, request.start_ms, request.end_ms, request.step_ms, budget=b),
            request.timeout_ms, context, "range",
            range_params(request.query, request.start_ms, request.end_ms, request.step_ms))
        return response_of(res)

    async def Series(self, request, context):
        found = await self._call(
            lambda b: lookup.find_series(self.querier, list(request.match), request.start_ms, _end(request.end_ms),
                                         guard=self.engine.guard, budget=b),
            0, context, "metadata")
        return query_pb2.SeriesQueryResponse(
            series=[query_pb2.LabelSet(labels=[types_pb2.Label(name=n, value=v) for n, v in ls]) for ls in found.items],
            warnings=found.warnings,
            is_partial=found.partial,
        )

    async def LabelNames(self, request, context):
        found = await self._call(
            lambda b: lookup.label_names(self.querier, list(request.match), request.start_ms, _end(request.end_ms),
                                         guard=self.engine.guard, budget=b),
            0, context, "metadata")
        return query_pb2.LabelsQueryResponse(values=found.items, warnings=found.warnings, is_partial=found.partial)

    async def LabelValues(self, request, context):
        found = await self._call(
            lambda b: lookup.label_values(self.querier, request.name, list(request.match), request.start_ms,
                                          _end(request.end_ms), guard=self.engine.guard, budget=b),
            0, context, "metadata")
        return query_pb2.LabelsQueryResponse(values=found.items, warnings=found.warnings, is_partial=found.partial)


def _end(end_ms: int) -> int:
    """An unset (0) end time means "up to now and beyond", as an omitted ``end`` in the HTTP API."""
    return end_ms if end_ms else 2**62
