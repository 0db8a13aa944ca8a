"""The receiver process (``shardmon receiver``): data pushed to Shardmon rather than scraped.

- ``POST /api/v1/write`` on ``receiver.http_address``: Prometheus remote-write 1.0. The samples go to
  the shards through the same routing as scraped ones, and the request is answered only once the
  shards have acknowledged them: 204 when everything was written; 400 for a body that cannot be read,
  for invalid series (the valid ones are written) and for samples the shards refused (out of order,
  out of bounds, another value at the same timestamp), which senders must not retry; 429 when more
  than ``receiver.max_concurrent_writes`` requests are in flight or a shard sheds load, and 503 when
  a shard stays unreachable for ``receiver.write_timeout``, all of which senders retry. The
  receiver's own metrics are at ``/metrics`` there.
- The Pushgateway API on ``receiver.pushgateway_address`` (see :mod:`ingest.pushgateway`), whose
  ``/metrics`` exposes the pushed groups for a scrape job with ``honor_labels: true``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from ingest import remote_write
from ingest.forwarder import Forwarder
from ingest.pushgateway import PushError, PushStore, grouping_key
from model.config import Config
from model.errors import ConfigError, ShardmonError, ShardOverloadedError
from model.httpserver import http_status_of, listen, make_app, text_error
from model.lifecycle import wait_until_stopped
from model.webconfig import WebConfig
from shards.client import ShardConnection

log = logging.getLogger(__name__)

REQUESTS = Counter("shardmon_receiver_requests_total", "HTTP requests handled, by handler and status code.",
                   ["handler", "code"])
DURATION = Histogram("shardmon_receiver_request_duration_seconds", "HTTP request duration, by handler.", ["handler"],
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SAMPLES = Counter("shardmon_receiver_samples_total",
                  "Remote-write samples, by outcome (written, rejected by a shard, invalid series, failed).",
                  ["outcome"])
IN_FLIGHT = Gauge("shardmon_receiver_requests_in_flight", "Requests being handled (saturation).")
PUSH_GROUPS = Gauge("shardmon_receiver_push_groups", "Pushed groups held.")


def _observed(handler: str):
    def wrap(fn):
        async def run(self, request: web.Request) -> web.Response:
            t0 = time.perf_counter()
            IN_FLIGHT.inc()
            try:
                resp = await fn(self, request)
            except ShardmonError as exc:  # answered by the HTTP edge; counted here with its status
                REQUESTS.labels(handler, str(http_status_of(exc))).inc()
                raise
            except web.HTTPException as exc:
                REQUESTS.labels(handler, str(exc.status)).inc()
                raise
            finally:
                IN_FLIGHT.dec()
            REQUESTS.labels(handler, str(resp.status)).inc()
            DURATION.labels(handler).observe(time.perf_counter() - t0)
            return resp

        return run

    return wrap


class Receiver:
    """The handlers; :func:`serve` wires them to their addresses."""

    def __init__(self, config: Config, forwarder: Forwarder, store: PushStore) -> None:
        assert config.receiver is not None
        self.cfg = config.receiver
        self.forwarder = forwarder
        self.store = store
        self._writes = 0
        PUSH_GROUPS.set(len(store.groups))

    # -- remote write --------------------------------------------------------------------------------

    @_observed("remote_write")
    async def remote_write(self, request: web.Request) -> web.Response:
        if self._writes >= self.cfg.max_concurrent_writes:
            return web.Response(status=429, text="too many remote-write requests at once; retry later\n")
        self._writes += 1
        try:
            return await self._remote_write(request)
        finally:
            self._writes -= 1

    async def _remote_write(self, request: web.Request) -> web.Response:
        decoded = remote_write.decode(await request.read())  # RemoteWriteError: 400, by the HTTP edge
        batch = decoded.batch
        problems = []
        if decoded.invalid_series:
            SAMPLES.labels("invalid").inc(decoded.invalid_series)
            problems.append(f"{decoded.invalid_series} series with invalid labels were dropped: "
                            + "; ".join(decoded.invalid))
        if batch.num_samples:
            out = await self.forwarder.write_now(batch, self.cfg.write_timeout / 1000)
            if out.error is not None:
                SAMPLES.labels("failed").inc(batch.num_samples)
                # Prometheus retries 5xx and 429, never another 4xx: a refusal that a retry cannot
                # change (a series limit, an invalid batch) is a 400.
                status = 429 if isinstance(out.error, ShardOverloadedError) else (503 if out.error.retryable else 400)
                return web.Response(status=status, text=f"{out.error}\n")
            # Summed over the replicas' answers: with replication a sample refused by each replica counts
            # once per replica, so the total is capped at the samples sent.
            rejected = min(sum(out.rejected.values()), batch.num_samples)
            SAMPLES.labels("written").inc(batch.num_samples - rejected)
            if rejected:
                SAMPLES.labels("rejected").inc(rejected)
                reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(out.rejected.items()))
                problems.append(f"{rejected} samples were refused: {reasons}")
        if problems:
            return web.Response(status=400, text="; ".join(problems) + "\n")
        return web.Response(status=204)

    async def own_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- Pushgateway ---------------------------------------------------------------------------------

    @_observed("push")
    async def push(self, request: web.Request) -> web.Response:
        # A PushError (a BadRequestError) leaves as 400 through the HTTP edge.
        key = grouping_key(request.match_info["tail"])
        if request.method == "DELETE":
            await asyncio.to_thread(self.store.delete, key)
            PUSH_GROUPS.set(len(self.store.groups))
            return web.Response(status=202)
        ctype = request.headers.get("Content-Type", "")
        if "application/vnd.google.protobuf" in ctype:
            raise PushError("the protobuf push format is not supported; push the text format")
        body = await request.read()  # aiohttp undoes a "Content-Encoding: gzip" itself.
        await asyncio.to_thread(self.store.push, key, body, replace_all=request.method == "PUT")
        PUSH_GROUPS.set(len(self.store.groups))
        return web.Response(status=200)

    async def pushed_metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.store.exposition)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def api_metrics(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": self.store.status()})

    async def api_status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {
            "build_information": {"version": "shardmon-0.1.0"},
            "flags": {"persistence.file": self.cfg.persistence_file or ""},
        }})

    async def wipe(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.store.wipe)
        PUSH_GROUPS.set(0)
        return web.Response(status=202)

    # -- wiring --------------------------------------------------------------------------------------

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("receiver", web_config, render_error=text_error, client_max_size=remote_write.MAX_BODY_BYTES)
        app.router.add_post("/api/v1/write", self.remote_write)
        app.router.add_get("/metrics", self.own_metrics)
        _health(app)
        return app

    def pushgateway_app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("receiver", web_config, render_error=text_error, client_max_size=64 << 20)
        for method in ("PUT", "POST", "DELETE"):
            app.router.add_route(method, "/metrics/{tail:job.*}", self.push)
        app.router.add_get("/metrics", self.pushed_metrics)
        app.router.add_get("/api/v1/metrics", self.api_metrics)
        app.router.add_get("/api/v1/status", self.api_status)
        app.router.add_put("/api/v1/admin/wipe", self.wipe)
        _health(app)
        return app


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


def _health(app: web.Application) -> None:
    app.router.add_get("/-/healthy", _ok)
    app.router.add_get("/-/ready", _ok)


async def serve(config: Config, *, stop: asyncio.Event | None = None) -> None:
    """Run the receiver until ``stop`` is set (or SIGTERM/SIGINT)."""
    if config.receiver is None:
        raise ConfigError("receiver: the section is missing, so there is no receiver to run")
    rc = config.receiver
    web_config = config.web_config()
    forwarder = Forwarder(config.shards.nodes, config.ingest, sender_id=f"receiver.{uuid.uuid4().hex[:12]}",
                          replication_factor=config.shards.replication_factor, conn=ShardConnection.of(config))
    receiver = Receiver(config, forwarder, PushStore(rc.persistence_file))
    runners = [await listen(receiver.app(web_config), rc.http_address, "receiver.http_address", web_config)]
    if rc.pushgateway_address:
        runners.append(await listen(receiver.pushgateway_app(web_config), rc.pushgateway_address,
                                    "receiver.pushgateway_address", web_config))
    log.info("receiver serving remote_write on %s, the push API on %s", rc.http_address, rc.pushgateway_address)
    await wait_until_stopped(stop)
    for r in runners:
        await r.cleanup()
    await forwarder.close()
    log.info("receiver stopped")
