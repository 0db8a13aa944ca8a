"""The ingest service's HTTP API (``ingest.http_address``), answered from the coordinator:

- ``GET /api/v1/targets`` (``state=active|dropped|any``, ``scrapePool=<job>``): Prometheus's JSON, each
  active target with the ``scraper`` that owns it;
- ``GET /api/v1/scrapers``: every scraper, its node and its number of targets;
  ``POST /api/v1/scrapers`` with ``count=N`` (form or query): run N scrapers from now on (at most
  ``ingest.max_scrapers``; more is a 400 naming it); the answer says how many targets moved;
- ``POST /-/reload``: read the configuration file again and apply it (as SIGHUP does); a bad file is a
  400 naming the field, and the running configuration stays;
- ``GET /-/healthy``, ``GET /-/ready``; ``GET /metrics``, the ingest service's own metrics.

Scaling and reloading are the lifecycle API: as Prometheus without ``--web.enable-lifecycle``, they
answer 403 "Lifecycle API is not enabled." unless ``web.enable_lifecycle`` is true (SIGHUP reloads
either way). The answers are counted in ``shardmon_ingest_api_requests_total{handler, code}``.

It runs on its own thread and event loop next to the service's Ray driver. It knows no Ray: the service
hands it blocking functions (calls into the coordinator actor), run on a worker thread; they raise
``ShardmonError`` when the coordinator does not answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
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

from model.config import Config
from model.errors import BadRequestError, ConfigError, ShardmonError

log = logging.getLogger(__name__)

# The ingest service's /metrics: this process's own (the coordinator's and the scrapers' modules are
# imported here too, but their metrics live in their actors' processes, not in this registry).
REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)
REQUESTS = Counter("shardmon_ingest_api_requests_total",
                   "Requests to the ingest service's API, by handler and status code (403: lifecycle API off).",
                   ["handler", "code"], registry=REGISTRY)

#: Prometheus's answer when the lifecycle API is off, and the field that turns it on.
LIFECYCLE_DISABLED = ("Lifecycle API is not enabled. Set web.enable_lifecycle: true in the ingest service's "
                      "configuration to enable it.")


def _json(data, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(error_type: str, message: str, status: int) -> web.Response:
    return _json({"status": "error", "errorType": error_type, "error": message}, status)


def _counted(handler: str):
    def wrap(fn):
        @functools.wraps(fn)
        async def run(self, request: web.Request) -> web.Response:
            try:
                resp = await fn(self, request)
            except web.HTTPException as exc:
                REQUESTS.labels(handler, str(exc.status)).inc()
                raise
            REQUESTS.labels(handler, str(resp.status)).inc()
            return resp

        return run

    return wrap


class Coordinator(NamedTuple):
    """What the API asks the coordinator, as blocking calls."""

    targets: Callable[[str, str], dict]  # (state, scrape pool) -> /api/v1/targets's data
    scrapers: Callable[[], list]
    scale: Callable[[int], dict]
    reload: Callable[[], dict]  # re-reads the configuration; ConfigError for a bad file


class IngestAPI:
    def __init__(self, coordinator: Coordinator, config: Callable[[], Config]) -> None:
        self.coordinator = coordinator
        #: The running configuration (it changes on reload): ``web.enable_lifecycle``, ``ingest.max_scrapers``.
        self.config = config

    async def _call(self, fn: Callable):
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    @_counted("targets")
    async def targets(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "any").lower()
        if state not in ("any", "active", "dropped"):
            return _error("bad_data", f'invalid state "{state}"', 400)
        pool = request.query.get("scrapePool", "")
        try:
            data = await self._call(lambda: self.coordinator.targets(state, pool))
        except ShardmonError as exc:
            return _error("unavailable", f"coordinator: {exc}", 503)
        return _json({"status": "success", "data": data})

    @_counted("scrapers")
    async def scrapers(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            try:
                data = await self._call(self.coordinator.scrapers)
            except ShardmonError as exc:
                return _error("unavailable", f"coordinator: {exc}", 503)
            return _json({"status": "success", "data": data})
        config = self.config()
        if not config.web.enable_lifecycle:
            # Prometheus's disabled admin API answers errorType "unavailable"; the status is 403.
            return _error("unavailable", LIFECYCLE_DISABLED, 403)
        form = await request.post()
        raw = form.get("count") or request.query.get("count", "")
        bound = config.ingest.max_scrapers
        try:
            count = int(str(raw))
            if count < 1:
                raise ValueError
        except ValueError:
            return _error("bad_data", f"count must be a whole number of scrapers, at least 1 (got {raw!r})", 400)
        if count > bound:
            return _error("bad_data", f"count {count} is more than ingest.max_scrapers ({bound})", 400)
        try:
            data = await self._call(lambda: self.coordinator.scale(count))
        except BadRequestError as exc:
            return _error("bad_data", str(exc), 400)
        except ShardmonError as exc:
            return _error("unavailable", f"coordinator: {exc}", 503)
        return _json({"status": "success", "data": data})

    @_counted("reload")
    async def reload(self, request: web.Request) -> web.Response:
        if request.method not in ("POST", "PUT"):
            return web.Response(status=405, text="Only POST or PUT requests allowed")  # Prometheus's words
        if not self.config().web.enable_lifecycle:
            return web.Response(status=403, text=LIFECYCLE_DISABLED)  # text/plain, as Prometheus
        try:
            data = await self._call(self.coordinator.reload)
        except ConfigError as exc:
            return _error("bad_data", f"config error: {exc}", 400)
        except ShardmonError as exc:
            return _error("unavailable", f"coordinator: {exc}", 503)
        return _json({"status": "success", "data": data})

    async def own_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon ingest is Healthy.\n")

    def app(self) -> web.Application:
        app = web.Application()
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


def serve_in_thread(api: IngestAPI, address: str) -> Callable[[], None]:
    """Serve ``api`` on ``host:port`` from a daemon thread; returns a function that stops it."""
    host, port = address.rsplit(":", 1)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    runner = web.AppRunner(api.app(), access_log=None)

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, host, int(port)).start())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=main, name="ingest-api", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise OSError(f"ingest.http_address {address}: {failure[0]}") from failure[0]
    log.info("ingest API on http://%s", address)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return stop
