"""The gRPC ``Query`` service: PromQL for clients that query aggregates.

Results travel in columns (timestamps and values as packed bytes per series); errors leave through
the one status table in :mod:`model.grpcstatus` (a bad query is ``INVALID_ARGUMENT``, a timeout
``DEADLINE_EXCEEDED``). Evaluation runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from model import errors
from model.grpcstatus import status_of
from model.pb import query_pb2, query_pb2_grpc, types_pb2
from model.samples import F64, I64
from model.storage import Querier, is_partial
from querier import lookup, metrics
from querier.engine import Engine, QueryResult

log = logging.getLogger(__name__)

_TYPES = {
    "vector": query_pb2.QueryResponse.VECTOR,
    "matrix": query_pb2.QueryResponse.MATRIX,
    "scalar": query_pb2.QueryResponse.SCALAR,
    "string": query_pb2.QueryResponse.STRING,
}


def response_of(res: QueryResult) -> query_pb2.QueryResponse:
    out = query_pb2.QueryResponse(result_type=_TYPES[res.result_type], time_ms=res.time_ms, warnings=res.warnings,
                                 is_partial=is_partial(res.warnings))
    if res.result_type == "scalar":
        out.scalar = float(res.scalar)
    elif res.result_type == "string":
        out.string = str(res.scalar)
    for s in res.series:
        out.series.append(
            query_pb2.ResultSeries(
                labels=[types_pb2.Label(name=n, value=v) for n, v in s.labels],
                timestamps_ms=np.ascontiguousarray(s.timestamps_ms, I64).tobytes(),
                values=np.ascontiguousarray(s.values, F64).tobytes(),
            )
        )
    return out


class QueryService(query_pb2_grpc.QueryServicer):
    def __init__(self, engine: Engine, default_timeout_ms: int, querier: Querier | None = None) -> None:
        self.engine = engine
        self.default_timeout_ms = default_timeout_ms
        self.querier = querier

    async def _eval(self, fn, timeout_ms: int, context, kind: str):
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        outcome = "ok"
        metrics.IN_FLIGHT.inc()
        try:
            try:
                res = await asyncio.wait_for(loop.run_in_executor(None, fn), (timeout_ms or self.default_timeout_ms) / 1000)
            except asyncio.TimeoutError:
                raise errors.QueryTimeoutError("query timed out in expression evaluation") from None
        except errors.ShardmonError as exc:
            outcome = getattr(exc, "error_type", "error")
            await context.abort(status_of(exc), str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug becomes INTERNAL, logged with its trace.
            outcome = "internal"
            log.exception("query failed")
            await context.abort(status_of(exc), f"internal error: {exc}")
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.QUERIES.labels("grpc", kind, outcome).inc()
            metrics.QUERY_DURATION.labels(kind).observe(time.perf_counter() - t0)
        return response_of(res)

    async def Instant(self, request, context):
        return await self._eval(lambda: self.engine.instant(request.query, request.time_ms), request.timeout_ms,
                                context, "instant")

    async def _lookup(self, fn, context):
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, fn), self.default_timeout_ms / 1000)
        except asyncio.TimeoutError:
            timeout = errors.QueryTimeoutError("lookup timed out")
            await context.abort(status_of(timeout), str(timeout))
        except errors.ShardmonError as exc:
            await context.abort(status_of(exc), str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug becomes INTERNAL, logged with its trace.
            log.exception("lookup failed")
            await context.abort(status_of(exc), f"internal error: {exc}")

    async def Series(self, request, context):
        labels, warnings = await self._lookup(
            lambda: lookup.find_series(self.querier, list(request.match), request.start_ms, _end(request.end_ms)),
            context,
        )
        return query_pb2.SeriesQueryResponse(
            series=[query_pb2.LabelSet(labels=[types_pb2.Label(name=n, value=v) for n, v in ls]) for ls in labels],
            warnings=warnings,
            is_partial=is_partial(warnings),
        )

    async def LabelNames(self, request, context):
        names, warnings = await self._lookup(
            lambda: lookup.label_names(self.querier, list(request.match), request.start_ms, _end(request.end_ms)),
            context,
        )
        return query_pb2.LabelsQueryResponse(values=names, warnings=warnings, is_partial=is_partial(warnings))

    async def LabelValues(self, request, context):
        values, warnings = await self._lookup(
            lambda: lookup.label_values(self.querier, request.name, list(request.match), request.start_ms,
                                        _end(request.end_ms)),
            context,
        )
        return query_pb2.LabelsQueryResponse(values=values, warnings=warnings, is_partial=is_partial(warnings))

    async def Range(self, request, context):
        return await self._eval(
            lambda: self.engine.range(request.query, request.start_ms, request.end_ms, request.step_ms),
            request.timeout_ms,
            context,
            "range",
        )


def _end(end_ms: int) -> int:
    """An unset (0) end time means "up to now and beyond", as an omitted ``end`` in the HTTP API."""
    return end_ms if end_ms else 2**62
