"""The ingest service's HTTP API (``ingest.http_address``), answered from the coordinator:

- ``GET /api/v1/targets`` (``state=active|dropped|any``, ``scrapePool=<job>``): Prometheus's JSON, each
  active target with the ``scraper`` that owns it;
- ``GET /api/v1/scrapers``: every scraper, its node and its number of targets;
  ``POST /api/v1/scrapers`` with ``count=N`` (form or query): run N scrapers from now on; the answer
  says how many targets moved;
- ``POST /-/reload``: read the configuration file again and apply it (as SIGHUP does); a bad file is a
  400 naming the field and position (never quoting the file), and the running configuration stays;
- ``GET /-/healthy``, ``GET /-/ready``.

It runs on its own thread and event loop next to the service's Ray driver, behind Shardmon's HTTP edge
(:mod:`model.httpserver`: the web config's TLS and basic auth; errors as Prometheus's JSON). It knows no
Ray: the service hands it blocking functions (calls into the coordinator actor), run on a worker thread;
they raise ``ShardmonError`` (retryable, so 503 ``unavailable``) when the coordinator does not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import NamedTuple

from aiohttp import web

from model.errors import BadRequestError
from model.httpserver import make_app, serve_in_thread
from model.webconfig import WebConfig

log = logging.getLogger(__name__)


def _json(data, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


class Coordinator(NamedTuple):
    """What the API asks the coordinator, as blocking calls."""

    targets: Callable[[str, str], dict]  # (state, scrape pool) -> /api/v1/targets's data
    scrapers: Callable[[], list]
    scale: Callable[[int], dict]
    reload: Callable[[], dict]  # re-reads the configuration; ConfigError for a bad file


class IngestAPI:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

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
        form = await request.post()
        raw = form.get("count") or request.query.get("count", "")
        try:
            count = int(str(raw))
            if count < 1:
                raise ValueError
        except ValueError:
            raise BadRequestError(f"count must be a whole number of scrapers, at least 1 (got {raw!r})") from None
        data = await self._call(lambda: self.coordinator.scale(count))
        return _json({"status": "success", "data": data})

    async def reload(self, request: web.Request) -> web.Response:
        # A bad file raises ConfigError: 400 bad_data, naming fields and positions, never quoting it.
        data = await self._call(self.coordinator.reload)
        return _json({"status": "success", "data": data})

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="Shardmon ingest is Healthy.\n")

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("ingest", web_config)
        app.router.add_get("/api/v1/targets", self.targets)
        app.router.add_get("/api/v1/scrapers", self.scrapers)
        app.router.add_post("/api/v1/scrapers", self.scrapers)
        app.router.add_put("/api/v1/scrapers", self.scrapers)
        app.router.add_post("/-/reload", self.reload)
        app.router.add_put("/-/reload", self.reload)
        app.router.add_get("/-/healthy", self.ok)
        app.router.add_get("/-/ready", self.ok)
        return app


def serve(api: IngestAPI, address: str, web_config: WebConfig | None = None) -> Callable[[], None]:
    """Serve ``api`` on ``host:port`` from a daemon thread; returns a function that stops it."""
    _, stop = serve_in_thread(api.app(web_config), address, "ingest.http_address", web_config, name="ingest-api")
    log.info("ingest API on %s://%s", "https" if web_config is not None and web_config.tls else "http", address)
    return stop
