"""The rulers' HTTP API (``rules.http_address``), answered from the rulers:

- ``GET /api/v1/rules`` (``type=alert|record``, any case; anything else is 400 ``bad_data``) and
  ``GET /api/v1/alerts``: Prometheus 2.42's documents, merged from every ruler's groups and alerts
  (:mod:`shardmon.querier.rules.api_json`: groups sorted by file then name, as Prometheus lists them) and
  written as Go writes them. The querier passes both through.
- ``GET /api/v1/rulers``: every ruler and its groups; ``POST /api/v1/rulers`` with ``count=N`` (form or
  query): run N rulers from now on; the answer says how many groups moved.
- ``POST /-/reload``: read the configuration and its rule files again (as SIGHUP does); a bad file is a
  400 naming it, and the running rules stay.
- ``GET /-/healthy``, ``GET /-/ready``; ``GET /metrics``, this process's own metrics.

Scaling and reloading are the lifecycle API: they answer 403 unless ``web.enable_lifecycle`` is true, as
the ingest service's scaling does. Answers are counted in ``shardmon_ruler_api_requests_total{handler, code}``.
It knows no Ray: the ruler service hands it blocking functions, run on a worker thread; they raise
``ShardmonError`` (retryable: 503 ``unavailable``) when the rulers do not answer. It runs behind
Shardmon's HTTP edge (:mod:`shardmon.model.httpserver`: the web config's TLS and basic auth, errors as
Prometheus's JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    generate_latest,
)

from shardmon.model.config import Config
from shardmon.model.errors import BadRequestError, LifecycleDisabledError, PermissionDeniedError
from shardmon.model.httpserver import (
    auth_failures,
    counting_middleware,
    lifecycle_error,
    make_app,
    serve_in_thread,
)
from shardmon.model.webconfig import WebConfig
from shardmon.querier.rules.api_json import alerts_document, dumps, rules_document, rules_type

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, auth_failures("ruler")):
    REGISTRY.register(_collector)
REQUESTS = Counter("shardmon_ruler_api_requests_total",
                   "Requests to the rulers' API, by handler and status code (403: lifecycle API off).",
                   ["handler", "code"], registry=REGISTRY)
_COUNTED = frozenset({"rules", "alerts", "rulers", "reload"})

#: Prometheus's answer when the lifecycle API is off, naming the field that turns it on.
LIFECYCLE_DISABLED = ("Lifecycle API is not enabled. Set web.enable_lifecycle: true in the rulers' configuration "
                      "to enable it.")


def _json(document, status: int = 200) -> web.Response:
    return web.Response(text=dumps(document), status=status, content_type="application/json")


class RulesAPI:
    """The aiohttp routes of the rulers' API over the ruler service's blocking calls:

    - ``groups()``: every ruler's groups, each as :func:`~shardmon.querier.rules.api_json.group_json` renders it;
    - ``alerts()``: every ruler's alerts not resolved, as :func:`~shardmon.querier.rules.api_json.group_alerts`;
    - ``rulers()``: the rulers and their groups (``GET /api/v1/rulers``'s data, any JSON);
    - ``scale(n)``: run n rulers (``BadRequestError`` over the service's own bound), its answer's data;
    - ``reload()``: read the configuration and rule files again (``ConfigError``/``RuleFileError`` when bad);
    - ``config()``: the running configuration (``web.enable_lifecycle``).
    """

    def __init__(self, groups: Callable[[], list[dict]], alerts: Callable[[], list[dict]], rulers: Callable[[], Any],
                 scale: Callable[[int], Any], reload: Callable[[], Any], config: Callable[[], Config], *,
                 max_rulers: int = 64) -> None:
        self.groups, self.alerts_of, self.rulers_of = groups, alerts, rulers
        self.scale, self.reload_rules, self.config = scale, reload, config
        #: The most rulers ``POST /api/v1/rulers`` may ask for.
        self.max_rulers = max_rulers

    async def _call(self, fn: Callable):
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    async def rules(self, request: web.Request) -> web.Response:
        typ = rules_type(request.query.get("type"))  # 400 bad_data before asking the rulers
        groups = await self._call(self.groups)
        return _json({"status": "success", "data": rules_document(groups, typ)})

    async def alerts(self, request: web.Request) -> web.Response:
        found = await self._call(self.alerts_of)
        return _json({"status": "success", "data": alerts_document(found)})

    async def rulers(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            data = await self._call(self.rulers_of)
            return web.Response(text=json.dumps({"status": "success", "data": data}), content_type="application/json")
        if not self.config().web.enable_lifecycle:
            raise PermissionDeniedError(LIFECYCLE_DISABLED)  # Prometheus's disabled API: 403
        form = await request.post()
        raw = form.get("count") or request.query.get("count", "")
        try:
            count = int(str(raw))
            if count < 1:
                raise ValueError
        except ValueError:
            raise BadRequestError(f"count must be a whole number of rulers, at least 1 (got {raw!r})") from None
        if count > self.max_rulers:
            raise BadRequestError(f"count {count} is more than the most rulers allowed ({self.max_rulers})")
        data = await self._call(lambda: self.scale(count))
        return web.Response(text=json.dumps({"status": "success", "data": data}), content_type="application/json")

    async def reload(self, request: web.Request) -> web.Response:
        if request.method not in ("POST", "PUT"):
            return web.Response(status=405, text="Only POST or PUT requests allowed")  # Prometheus's words
        if not self.config().web.enable_lifecycle:
            raise LifecycleDisabledError(LIFECYCLE_DISABLED)  # 403, text/plain, as Prometheus
        data = await self._call(self.reload_rules)
        return web.Response(text=json.dumps({"status": "success", "data": data}), content_type="application/json")

    async def own_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon rulers are Healthy.\n")

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("ruler", web_config, render_error=lifecycle_error,
                       middlewares=[counting_middleware(REQUESTS, _COUNTED)])
        app.router.add_get("/api/v1/rules", self.rules)
        app.router.add_get("/api/v1/alerts", self.alerts)
        app.router.add_get("/api/v1/rulers", self.rulers)
        app.router.add_post("/api/v1/rulers", self.rulers)
        app.router.add_put("/api/v1/rulers", self.rulers)
        app.router.add_post("/-/reload", self.reload)
        app.router.add_put("/-/reload", self.reload)
        app.router.add_get("/-/reload", self.reload, allow_head=False)
        app.router.add_get("/-/healthy", self.ok)
        app.router.add_get("/-/ready", self.ok)
        app.router.add_get("/metrics", self.own_metrics)
        return app


def serve(api: RulesAPI, address: str, web_config: WebConfig | None = None) -> Callable[[], None]:
    """Serve ``api`` on ``host:port`` from a daemon thread; returns a function that stops it."""
    _, stop = serve_in_thread(api.app(web_config), address, "rules.http_address", web_config, name="rules-api")
    log.info("rulers' API on %s://%s", "https" if web_config is not None and web_config.tls else "http", address)
    return stop
