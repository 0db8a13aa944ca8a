"""The Prometheus HTTP API (``/api/v1/*``), for Grafana and every other Prometheus client.

Parameters, JSON envelopes, error types and status codes follow Prometheus's ``web/api/v1``: GET
with a query string or POST with a form body; ``{"status": "success", "data": ..., "warnings": [...]}``
or ``{"status": "error", "errorType": "bad_data", "error": "..."}``. Sample values are strings
(``"1.5"``, ``"NaN"``, ``"+Inf"``) and timestamps are seconds with millisecond digits, written exactly
as Prometheus writes them. The engine runs in a thread so the event loop keeps serving; each
query runs on its own :class:`~shardmon.model.storage.QueryBudget`, called off when the client disconnects
or the timeout passes, so that the evaluation thread and its shard calls stop too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Callable
from typing import TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shardmon.model.buildinfo import build_info
from shardmon.model.errors import (
    BadQueryError,
    QueryCanceledError,
    QueryError,
    QueryLimitError,
    QueryTimeoutError,
    QueryUnavailableError,
)
from shardmon.model.httpclient import InternalClient
from shardmon.model.httpserver import make_app
from shardmon.model.storage import Querier, QueryBudget
from shardmon.model.units import parse_duration_ms
from shardmon.model.webconfig import WebConfig
from shardmon.querier import lookup, metrics, tsdb_status, webui
from shardmon.querier.cluster_status import ClusterStatus
from shardmon.querier.promql import Engine
from shardmon.querier.result_json import (  # noqa: F401 - also this module's API
    format_timestamps,
    format_ts,
    format_value,
    format_values,
    labels_json,
    render_result,
    result_json,
)
from shardmon.querier.slow_queries import SlowQuery, SlowQueryLog, instant_params, range_params
from shardmon.querier.status_api import StatusAPI

T = TypeVar("T")
_MIN_TIME_MS = -(2**63) // 1_000_000  # the range Prometheus accepts for "min/max time" in the series APIs
_MAX_TIME_MS = (2**63 - 1) // 1_000_000
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T")
#: How often a running query looks whether its client is still connected.
_DISCONNECT_POLL_S = 0.1


def success(data_json: str | bytes, warnings: list[str] | None = None, partial: bool = False) -> web.Response:
    data = data_json.encode() if isinstance(data_json, str) else data_json
    tail = b""
    if warnings:
        tail += b',"warnings":' + json.dumps(warnings).encode()
    if partial:  # As Thanos: the answer may lack the series of a shard that did not answer.
        tail += b',"isPartial":true'
    return web.Response(body=b"".join((b'{"status":"success","data":', data, tail, b"}")),
                        content_type="application/json")


# -- parameters, exactly as Prometheus ---------------------------------------------------------------


def parse_time_ms(s: str, name: str) -> int:
    """A Prometheus API time: float Unix seconds or RFC 3339."""
    try:
        return round(float(s) * 1000)
    except ValueError:
        pass
    if _RFC3339.match(s):
        try:
            t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            return round(t.timestamp() * 1000)
        except ValueError:
            pass
    raise BadQueryError(f'invalid parameter "{name}": cannot parse "{s}" to a valid timestamp')


def parse_step_ms(s: str, name: str) -> int:
    """A Prometheus API duration: float seconds or a duration string."""
    try:
        return round(float(s) * 1000)
    except ValueError:
        pass
    try:
        return parse_duration_ms(s)
    except ValueError:
        raise BadQueryError(f'invalid parameter "{name}": cannot parse "{s}" to a valid duration') from None


@web.middleware
async def _observe(request: web.Request, handler) -> web.StreamResponse:
    """Count and time every request by its route (not its raw path, which carries label names)."""
    t0 = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        metrics.HTTP_REQUESTS.labels(route, str(exc.status)).inc()
        raise
    metrics.HTTP_REQUESTS.labels(route, str(resp.status)).inc()
    metrics.HTTP_DURATION.labels(route).observe(time.perf_counter() - t0)
    return resp


async def _params(request: web.Request):
    """Query-string and form parameters together (a MultiDict), as Prometheus's ``r.Form``."""
    params = request.query.copy()
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        params.extend(await request.post())
    return params


class PrometheusAPI:
    """The aiohttp routes of the Prometheus HTTP API over an :class:`Engine` and a :class:`Querier`."""

    def __init__(self, engine: Engine, querier: Querier, *, default_timeout_ms: int, version: str | None = None,
                 ingest_api: str | None = None, ingest_client: InternalClient | None = None,
                 rules_api: str | None = None, status: StatusAPI | None = None,
                 slow_queries: SlowQueryLog | None = None, cluster: ClusterStatus | None = None) -> None:
        #: host:port of the ingest service's API, which answers /api/v1/targets (None: not configured).
        self.ingest_api = ingest_api
        #: host:port of the rulers' API (``rules.http_address``), which answers /api/v1/rules and /api/v1/alerts
        #: (None: no rulers; they answer empty).
        self.rules_api = rules_api
        #: How to call both (scheme, TLS, credentials): Shardmon's internal_client.
        self.ingest_client = ingest_client or InternalClient()
        #: /api/v1/status/{runtimeinfo,config,flags} (None: not served, as in tests without a configuration).
        self.status = status
        self.engine = engine
        self.querier = querier
        self.default_timeout_ms = default_timeout_ms
        self.version = version or build_info()["version"]
        #: The latest slow queries (None: not kept).
        self.slow_queries = slow_queries
        #: What /api/v1/status/cluster gathers (None: not served).
        self.cluster = cluster

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        """The whole app: the routes behind Shardmon's HTTP edge (authentication, headers, errors as
        Prometheus's JSON), each request counted and timed by route."""
        app = make_app("querier", web_config, middlewares=[_observe])
        self.routes(app)
        return app

    def routes(self, app: web.Application) -> None:
        for path, handler in (
            ("/api/v1/query", self.query),
            ("/api/v1/query_range", self.query_range),
            ("/api/v1/series", self.series),
            ("/api/v1/labels", self.labels),
        ):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        app.router.add_get("/api/v1/label/{name}/values", self.label_values)
        app.router.add_get("/api/v1/status/buildinfo", self.buildinfo)
        app.router.add_get("/api/v1/metadata", self.metadata)
        app.router.add_get("/api/v1/status/tsdb", self.tsdb_status)
        if self.cluster is not None:
            app.router.add_get("/api/v1/status/cluster", self.cluster.handler)
        app.router.add_get("/api/v1/targets", self.targets)
        app.router.add_get("/api/v1/scrapers", self.scrapers)
        if self.status is not None:
            self.status.add_routes(app)
        # The rulers' documents (GET only, as Prometheus 2.42 routes them); without rulers, empty.
        app.router.add_get("/api/v1/rules", self._rules_passthrough("/api/v1/rules", '{"groups":[]}'))
        app.router.add_get("/api/v1/alerts", self._rules_passthrough("/api/v1/alerts", '{"alerts":[]}'))
        # Grafana's data source also asks for exemplars; Shardmon keeps none, as a Prometheus without any.
        app.router.add_route("GET", "/api/v1/query_exemplars", self._empty("[]"))
        app.router.add_route("POST", "/api/v1/query_exemplars", self._empty("[]"))
        app.router.add_get("/metrics", self.own_metrics)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/-/ready", self.ready)
        webui.add_routes(app)

    async def _run(self, request: web.Request, fn: Callable[[QueryBudget], T], timeout_ms: int,
                   kind: str = "metadata", params: dict | None = None) -> T:
        """``fn(budget)`` in a thread, as one query on its own budget. The budget is called off when
        the client disconnects, when the timeout passes, or when the handler is cancelled, so that
        evaluation and shard calls stop at their next check (the in-flight gauge follows the thread).
        A query (``params``: its expression and times) that ran long enough goes into the slow query log."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        started_s = time.time()
        outcome = "ok"
        budget = self.engine.new_budget(timeout_ms)

        def job() -> T:
            metrics.IN_FLIGHT.inc()
            try:
                budget.check()  # It may have waited for a thread past its deadline or its client.
                return fn(budget)
            finally:
                metrics.IN_FLIGHT.dec()

        future = loop.run_in_executor(None, job)
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=_DISCONNECT_POLL_S)
                if done:
                    return future.result()
                if request.transport is None or request.transport.is_closing():
                    raise QueryCanceledError("query canceled: the client closed the connection")
                if budget.time_left() == 0:
                    raise QueryTimeoutError("query timed out in expression evaluation")
        except asyncio.CancelledError:
            outcome = "canceled"
            budget.cancel(QueryCanceledError("query canceled"))
            raise
        except QueryError as exc:
            outcome = exc.error_type
            if isinstance(exc, QueryLimitError):
                metrics.QUERIES_REFUSED.labels(exc.limit).inc()
            budget.cancel(exc)
            raise
        except Exception:
            outcome = "internal"
            budget.cancel()
            raise
        finally:
            if not future.done():  # Left behind: its error is of no interest any more.
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            elapsed = time.perf_counter() - t0
            metrics.QUERIES.labels("http", kind, outcome).inc()
            metrics.QUERY_DURATION.labels(kind).observe(elapsed)
            if params is not None and self.slow_queries is not None:
                self.slow_queries.observe(SlowQuery(
                    "http", kind, params, started_s, elapsed, budget.series, budget.samples, outcome,
                    client_ip=request.remote or "", user_agent=request.headers.get("User-Agent", "")))

    def _timeout_ms(self, params) -> int:
        t = params.get("timeout")
        return parse_step_ms(t, "timeout") if t else self.default_timeout_ms

    async def query(self, request: web.Request) -> web.Response:
        p = await _params(request)
        t = parse_time_ms(p["time"], "time") if p.get("time") else int(time.time() * 1000)
        q = p.get("query", "")
        res = await self._run(request, lambda b: self.engine.instant(q, t, budget=b), self._timeout_ms(p), "instant",
                              instant_params(q, t))
        return success(render_result(res), res.annotations(), res.partial)

    async def query_range(self, request: web.Request) -> web.Response:
        p = await _params(request)
        start = parse_time_ms(p.get("start", ""), "start")
        end = parse_time_ms(p.get("end", ""), "end")
        if end < start:
            raise BadQueryError('invalid parameter "end": end timestamp must not be before start time')
        step = parse_step_ms(p.get("step", ""), "step")
        if step <= 0:
            raise BadQueryError(
                'invalid parameter "step": zero or negative query resolution step widths are not accepted. '
                "Try a positive integer"
            )
        if (end - start) / step > 11000:
            raise BadQueryError(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        q = p.get("query", "")
        res = await self._run(request, lambda b: self.engine.range(q, start, end, step, budget=b),
                              self._timeout_ms(p), "range", range_params(q, start, end, step))
        return success(render_result(res), res.annotations(), res.partial)

    def _range(self, p) -> tuple[int, int]:
        start = parse_time_ms(p["start"], "start") if p.get("start") else _MIN_TIME_MS
        end = parse_time_ms(p["end"], "end") if p.get("end") else _MAX_TIME_MS
        return start, end

    async def series(self, request: web.Request) -> web.Response:
        p = await _params(request)
        start, end = self._range(p)
        selectors = p.getall("match[]", [])
        found = await self._run(request, lambda b: lookup.find_series(self.querier, selectors, start, end,
                                                                      guard=self.engine.guard, budget=b),
                                self.default_timeout_ms)
        return success(json.dumps([ls.to_dict() for ls in found.items]), found.warnings, found.partial)

    async def labels(self, request: web.Request) -> web.Response:
        p = await _params(request)
        start, end = self._range(p)
        selectors = p.getall("match[]", [])
        found = await self._run(request, lambda b: lookup.label_names(self.querier, selectors, start, end,
                                                                      guard=self.engine.guard, budget=b),
                                self.default_timeout_ms)
        return success(json.dumps(found.items), found.warnings, found.partial)

    async def label_values(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        p = await _params(request)
        start, end = self._range(p)
        selectors = p.getall("match[]", [])
        found = await self._run(request, lambda b: lookup.label_values(self.querier, name, selectors, start, end,
                                                                       guard=self.engine.guard, budget=b),
                                self.default_timeout_ms)
        return success(json.dumps(found.items), found.warnings, found.partial)

    async def metadata(self, request: web.Request) -> web.Response:
        p = await _params(request)
        limit = p.get("limit", "")
        try:
            n = int(limit) if limit else -1  # As Prometheus: absent or negative, no limit; 0, nothing.
        except ValueError:
            raise BadQueryError(f'invalid parameter "limit": {limit!r} is not a number') from None
        fetch = getattr(self.querier, "metadata", None)
        if fetch is None or n == 0:
            found, warnings, partial = {}, [], False
        else:
            found, warnings, partial = await self._run(
                request, lambda b: fetch(p.get("metric", ""), max(n, 0), budget=b), self.default_timeout_ms)
        return success(json.dumps(found), warnings, partial)

    async def tsdb_status(self, request: web.Request) -> web.Response:
        """Prometheus's TSDB status over every shard's head, with ``limit`` and Shardmon's ``match[]`` and
        ``shards`` (querier/tsdb_status.py)."""
        p = await _params(request)
        limit = tsdb_status.parse_limit(p.get("limit"))
        selectors = p.getall("match[]", [])
        if not hasattr(self.querier, "tsdb_status"):
            raise QueryUnavailableError("this querier reads no shards: no TSDB status")
        doc, warnings, partial = await self._run(
            request, lambda b: tsdb_status.tsdb_status(self.querier, selectors, limit, guard=self.engine.guard,
                                                       budget=b), self.default_timeout_ms)
        return success(json.dumps(doc), warnings, partial)

    async def own_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon is Healthy.\n")

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon is Ready.\n")

    async def targets(self, request: web.Request) -> web.Response:
        """``/api/v1/targets``, answered by the ingest service (which owns the targets), as Prometheus's."""
        if not self.ingest_api:
            raise QueryUnavailableError("no ingest service API configured (ingest.http_address)")
        return await self._pass_through(request, self.ingest_api, "/api/v1/targets", "the ingest service")

    async def scrapers(self, request: web.Request) -> web.Response:
        """``GET /api/v1/scrapers`` of the ingest service (each scraper, its Ray node and its targets), for the UI."""
        if not self.ingest_api:
            raise QueryUnavailableError("no ingest service API configured (ingest.http_address)")
        return await self._pass_through(request, self.ingest_api, "/api/v1/scrapers", "the ingest service")

    def _rules_passthrough(self, path: str, empty: str) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            if not self.rules_api:
                return success(empty)
            return await self._pass_through(request, self.rules_api, path, "the rulers' API")

        return handler

    async def _pass_through(self, request: web.Request, address: str, path: str, who: str) -> web.Response:
        """``path`` with the request's parameters, asked of the service at ``address`` (with the internal
        client's TLS and credentials); its answer as it is, or 503 ``unavailable`` when it does not answer."""
        url = f"{self.ingest_client.scheme}://{address}{path}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url, params=request.query, timeout=aiohttp.ClientTimeout(total=60),
                                       **self.ingest_client.settings.request_kwargs()) as resp:
                    return web.Response(text=await resp.text(), status=resp.status, content_type="application/json")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise QueryUnavailableError(f"{who} at {address} does not answer: {exc}") from exc

    @staticmethod
    def _empty(data_json: str) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            return success(data_json)

        return handler

    async def buildinfo(self, request: web.Request) -> web.Response:
        return success(json.dumps({**build_info(), "version": self.version}))
