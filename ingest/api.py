"""The ingest service's HTTP API (``ingest.http_address``), answered from the coordinator:

- ``GET /api/v1/targets`` (``state=active|dropped|any``, ``scrapePool=<job>``): Prometheus's JSON, each
  active target with the ``scraper`` that owns it;
- ``GET /api/v1/scrapers``: every scraper, its node and its number of targets;
  ``POST /api/v1/scrapers`` with ``count=N`` (form or query): run N scrapers from now on (at most
  ``ingest.max_scrapers``; more is a 400 naming it); the answer says how many targets moved;
- ``POST /-/reload``: read the configuration file again and apply it (as SIGHUP does); a bad file is a
  400 naming the field and position (never quoting the file), and the running configuration stays;
- ``GET /-/healthy``, ``GET /-/ready``; ``GET /metrics``, the ingest service's own metrics.

Scaling and reloading are the lifecycle API: as Prometheus without ``--web.enable-lifecycle``, they
answer 403 "Lifecycle API is not enabled." unless ``web.enable_lifecycle`` is true (SIGHUP reloads
either way). The answers are counted in ``shardmon_ingest_api_requests_total{handler, code}``.

It runs on its own thread and event loop next to the service's Ray driver, behind Shardmon's HTTP edge
(:mod:`shardmon.model.httpserver`: the web config's TLS and basic auth; errors as Prometheus's JSON, raised by the
handlers and rendered once). It knows no Ray: the service hands it blocking functions (calls into the
coordinator actor), run on a worker thread; they raise ``ShardmonError`` (retryable, so 503
``unavailable``) when the coordinator does not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import NamedTuple

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

log = logging.getLogger(__name__)

# The ingest service's /metrics: this process's own (the coordinator's and the scrapers' modules are
# imported here too, but their metrics live in their actors' processes, not in this registry).
REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, auth_failures("ingest")):
    REGISTRY.register(_collector)
REQUESTS = Counter("shardmon_ingest_api_requests_total",
                   "Requests to the ingest service's API, by handler and status code (403: lifecycle API off).",
                   ["handler", "code"], registry=REGISTRY)
_COUNTED = frozenset({"targets", "scrapers", "reload"})

#: Prometheus's answer when the lifecycle API is off, and the field that turns it on.
LIFECYCLE_DISABLED = ("Lifecycle API is not enabled. Set web.enable_lifecycle: true in the ingest service's "
                      "configuration to enable it.")


def _json(data, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


class Coordinator(NamedTuple):
    """What the API asks the coordinator, as blocking calls."""

    targets: Callable[[str, str], dict]  # (state, scrape pool) -> /api/v1/targets's data
    scrapers: Callable[[], list]
    scale: Callable[[int], dict]  # BadRequestError over the coordinator's bound
    reload: Callable[[], dict]  # re-reads the configuration; ConfigError for a bad file


class IngestAPI:
    def __init__(self, coordinator: Coordinator, config: Callable[[], Config]) -> None:
        self.coordinator = coordinator
        #: The running configuration (it changes on reload): ``web.enable_lifecycle``, ``ingest.max_scrapers``.
        self.config = config

    async def _call(self, fn: Callable):
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    async def targets(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "any").lower()
        if state not in ("any", "active", "dropped"):
            raise BadRequestError(f'invalid state "{state}"')
        pool = request.query.get("scrapePool", "")
        data = await self._call(lambda: self.coordinator.targets(state, pool))
        return _json({"status": "success", "data": data})

    async def scrapers(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            data = await self._call(self.coordinator.scrapers)
            return _json({"status": "success", "data": data})
        config = self.config()
        if not config.web.enable_lifecycle:
            # Prometheus's disabled admin API: errorType "unavailable"; the status is 403.
            raise PermissionDeniedError(LIFECYCLE_DISABLED)
        form = await request.post()
        raw = form.get("count") or request.query.get("count", "")
        bound = config.ingest.max_scrapers
        try:
            count = int(str(raw))
            if count < 1:
                raise ValueError
        except ValueError:
            raise BadRequestError(f"count must be a whole number of scrapers, at least 1 (got {raw!r})") from None
        if count > bound:
            raise BadRequestError(f"count {count} is more than ingest.max_scrapers ({bound})")
        data = await self._call(lambda: self.coordinator.scale(count))  # BadRequestError: its own bound
        return _json({"status": "success", "data": data})

    async def reload(self, request: web.Request) -> web.Response:
        if request.method not in ("POST", "PUT"):
            return web.Response(status=405, text="Only POST or PUT requests allowed")  # Prometheus's words
        if not self.config().web.enable_lifecycle:
            raise LifecycleDisabledError(LIFECYCLE_DISABLED)  # 403, text/plain, as Prometheus
        # A bad file raises ConfigError: 400 bad_data, naming fields and positions, never quoting it.
        data = await self._call(self.coordinator.reload)
        return _json({"status": "success", "data": data})

    async def own_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon ingest is Healthy.\n")

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("ingest", web_config, render_error=lifecycle_error,
                       middlewares=[counting_middleware(REQUESTS, _COUNTED)])
        app.router.add_get("/api/v1/targets", self.targets)
        app.router.add_get("/api/v1/scrapers", self.scrapers)
        app.router.add_post("/api/v1/scrapers", self.scrapers)
        app.router.add_put("/api/v1/scrapers", self.scrapers)
        app.router.add_post("/-/reload", self.reload)
        app.router.add_put("/-/reload", self.reload)
        app.router.add_get("/-/reload", self.reload, allow_head=False)
        app.router.add_get("/-/healthy", self.ok)
        app.router.add_get("/-/ready", self.ok)
        app.router.add_get("/metrics", self.own_metrics)
        return app


def serve(api: IngestAPI, address: str, web_config: WebConfig | None = None) -> Callable[[], None]:
    """Serve ``api`` on ``host:port`` from a daemon thread; returns a function that stops it."""
    _, stop = serve_in_thread(api.app(web_config), address, "ingest.http_address", web_config, name="ingest-api")
    log.info("ingest API on %s://%s", "https" if web_config is not None and web_config.tls else "http", address)
    return stop
