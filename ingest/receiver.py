"""The receiver process (``shardmon receiver``): data pushed to Shardmon rather than scraped.

- ``POST /api/v1/write`` on ``receiver.http_address``: Prometheus remote-write 1.0. The samples go to
  the shards through the same routing as scraped ones, and the request is answered only once the
  shards have acknowledged them: 204 when everything was written; 400 for a body that cannot be read,
  for invalid series (the valid ones are written) and for samples the shards refused (out of order,
  out of bounds, another value at the same timestamp) and for series over the label limits
  (``receiver.label_limit``, ``label_name_length_limit``, ``label_value_length_limit``; the others are
  written), which senders must not retry; 413 for a body over ``receiver.max_decoded_body_bytes``
  (decoded, as its snappy header declares it, checked before anything is decoded; or compressed, over
  what snappy needs for that many bytes), which Prometheus does not retry either (it retries only 5xx
  and 429) and Mimir answers alike; 429 when more than ``receiver.max_concurrent_writes`` requests are
  in flight or a shard sheds load, and 503 when a shard stays unreachable for
  ``receiver.write_timeout``, all of which senders retry. Decoding runs on a small thread pool, never
  on the event loop, so ``/-/healthy`` and other requests are answered while a big body is decoded.
  The receiver's own metrics are at ``/metrics`` there.
- The Pushgateway API on ``receiver.pushgateway_address`` (see :mod:`shardmon.ingest.pushgateway`), whose
  ``/metrics`` exposes the pushed groups for a scrape job with ``honor_labels: true``. It takes the text
  format only: a protobuf push (the Pushgateway's other format, the only one that carries native
  histograms) is refused with 400, reason ``protobuf_push``, the group untouched. Pushes are
  parsed on threads; groups are persisted at most every ``receiver.persistence_interval`` after a
  change and at a clean shutdown (SIGTERM, SIGINT), a push creating a group beyond
  ``receiver.max_push_groups`` is a 400. Its admin endpoint ``PUT /api/v1/admin/wipe`` answers 403
  (Prometheus's JSON for a disabled admin API) unless ``web.enable_admin_api`` (the Pushgateway's
  ``--web.enable-admin-api``).

Every request refused as a whole is counted in ``shardmon_receiver_refused_requests_total`` by handler
and reason, every series left out of a remote write in ``shardmon_receiver_refused_series_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from shardmon.ingest import remote_write
from shardmon.ingest.forwarder import Forwarder
from shardmon.ingest.pushgateway import PushStore, grouping_key
from shardmon.model.config import Config
from shardmon.model.errors import (
    BodyTooLargeError,
    ConfigError,
    PermissionDeniedError,
    PushError,
    RemoteWriteError,
    ShardmonError,
    ShardOverloadedError,
)
from shardmon.model.httpserver import http_status_of, listen, make_app, prometheus_error, text_error
from shardmon.model.shutdown import wait_until_stopped
from shardmon.model.units import format_go_duration_ms
from shardmon.model.webconfig import WebConfig
from shardmon.shards.client import ShardConnection

log = logging.getLogger(__name__)

REQUESTS = Counter("shardmon_receiver_requests_total", "HTTP requests handled, by handler and status code.",
                   ["handler", "code"])
DURATION = Histogram("shardmon_receiver_request_duration_seconds", "HTTP request duration, by handler.", ["handler"],
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SAMPLES = Counter("shardmon_receiver_samples_total",
                  "Remote-write samples, by outcome (written, rejected by a shard, invalid: of series left out for "
                  "invalid labels or over a label limit, failed).",
                  ["outcome"])
REFUSED = Counter("shardmon_receiver_refused_requests_total",
                  "Requests refused as a whole, by handler and reason (body_too_large, decoded_body_too_large, "
                  "bad_body, too_many_requests, bad_push, protobuf_push, max_push_groups, label_limit, label_name_length_limit, "
                  "label_value_length_limit).", ["handler", "reason"])
REFUSED_SERIES = Counter("shardmon_receiver_refused_series_total",
                         "Series left out of a remote write whose other series were written, by reason "
                         "(invalid_labels, label_limit, label_name_length_limit, label_value_length_limit).",
                         ["reason"])
IN_FLIGHT = Gauge("shardmon_receiver_requests_in_flight", "Requests being handled (saturation).")
PUSH_GROUPS = Gauge("shardmon_receiver_push_groups", "Pushed groups held.")
PERSIST_ERRORS = Counter("shardmon_receiver_push_persist_errors_total",
                         "Writes of the pushed groups to receiver.persistence_file that failed (retried at the next "
                         "interval).")
PERSISTED = Gauge("shardmon_receiver_push_persisted_timestamp_seconds",
                  "When the pushed groups were last written to receiver.persistence_file.")

#: Threads decoding remote-write bodies: decoding is CPU-bound, so more threads would only hold more
#: decoded bodies in memory at once; requests beyond wait their turn (max_concurrent_writes bounds them).
DECODE_THREADS = 2
#: How often the persistence loop looks for changed groups.
_PERSIST_POLL_S = 0.1

#: What the push API's wipe answers when the admin API is off (Prometheus's words, and the field).
ADMIN_DISABLED = "admin APIs disabled (set web.enable_admin_api: true to enable them)"


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
        self.enable_admin_api = config.web.enable_admin_api
        self.forwarder = forwarder
        self.store = store
        self._writes = 0
        self._decode_pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="remote-write-decode")
        PUSH_GROUPS.set(len(store.groups))

    def close(self) -> None:
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    # -- remote write --------------------------------------------------------------------------------

    @_observed("remote_write")
    async def remote_write(self, request: web.Request) -> web.Response:
        if self._writes >= self.cfg.max_concurrent_writes:
            REFUSED.labels("remote_write", "too_many_requests").inc()
            return web.Response(status=429, text="too many remote-write requests at once; retry later\n")
        self._writes += 1
        try:
            return await self._remote_write(request)
        finally:
            self._writes -= 1

    async def _read_body(self, request: web.Request) -> bytes:
        """The compressed body, refused unread when its Content-Length is already over the limit."""
        limit = remote_write.max_compressed_bytes(self.cfg.max_decoded_body_bytes)
        size = request.content_length
        if size is None or size <= limit:
            try:
                return await request.read()
            except web.HTTPRequestEntityTooLarge:  # A chunked body that grew too large.
                size = None
        raise BodyTooLargeError(
            f"body of {'more than ' + str(limit) if size is None else size} bytes exceeds the limit of {limit} bytes "
            f"(receiver.max_decoded_body_bytes: {self.cfg.max_decoded_body_bytes})",
            size=size or limit + 1, limit=limit, field="receiver.max_decoded_body_bytes", decoded=False)

    async def _remote_write(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_body(request)
            # The header check is O(1), so an oversized body is refused at once, not after queueing.
            remote_write.check_size(body, self.cfg.max_decoded_body_bytes)
            decoded = await asyncio.get_running_loop().run_in_executor(
                self._decode_pool, remote_write.decode, body, self.cfg.max_decoded_body_bytes, self.cfg.label_limits)
        except RemoteWriteError as exc:  # 413 or 400, answered by the HTTP edge
            REFUSED.labels("remote_write", exc.reason).inc()
            raise
        del body
        batch = decoded.batch
        problems = []
        if decoded.invalid_series:
            SAMPLES.labels("invalid").inc(decoded.refused_samples)
            for reason, n in decoded.refused.items():
                REFUSED_SERIES.labels(reason).inc(n)
            problems.append(f"{decoded.invalid_series} series with invalid labels or over a label limit were dropped: "
                            + "; ".join(decoded.invalid))
        size = batch.num_samples + batch.num_histograms  # a native histogram counts as one sample
        if size:
            out = await self.forwarder.write_now(batch, self.cfg.write_timeout / 1000)
            if out.error is not None:
                SAMPLES.labels("failed").inc(size)
                # Prometheus retries 5xx and 429, never another 4xx: a refusal that a retry cannot
                # change (a series limit, an invalid batch) is a 400.
                status = 429 if isinstance(out.error, ShardOverloadedError) else (503 if out.error.retryable else 400)
                return web.Response(status=status, text=f"{out.error}\n")
            # Summed over the replicas' answers: with replication a sample refused by each replica counts
            # once per replica, so the total is capped at the samples sent.
            rejected = min(sum(out.rejected.values()), size)
            SAMPLES.labels("written").inc(size - rejected)
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
        try:
            key = grouping_key(request.match_info["tail"])
            if request.method == "DELETE":
                await asyncio.to_thread(self.store.delete, key)
                PUSH_GROUPS.set(len(self.store.groups))
                return web.Response(status=202)
            ctype = request.headers.get("Content-Type", "")
            if "application/vnd.google.protobuf" in ctype:
                # The push store keeps and exposes the text format only, so a protobuf push (the only way to
                # push native histograms) is refused whole with the Pushgateway's status for a body it
                # cannot take (400), before the group is touched.
                raise PushError("the protobuf push format is not supported: Shardmon's push groups are kept and "
                                "exposed in the text format (native histograms cannot be pushed; scrape or "
                                "remote-write them); push the text format", reason="protobuf_push")
            try:
                body = await request.read()  # aiohttp undoes a "Content-Encoding: gzip" itself.
            except web.HTTPRequestEntityTooLarge as exc:
                REFUSED.labels("push", "body_too_large").inc()
                return web.Response(status=413, text=f"push body too large: {exc.text}\n")
            await asyncio.to_thread(self.store.push, key, body, replace_all=request.method == "PUT")
        except PushError as exc:
            REFUSED.labels("push", exc.reason).inc()
            # Debug only: a storm of bad pushes must not flood the log; the counter above tells.
            log.debug("push refused: %s", exc)
            PUSH_GROUPS.set(len(self.store.groups))
            raise  # 400, answered by the HTTP edge
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
            "flags": {"persistence.file": self.cfg.persistence_file or "",
                      "persistence.interval": format_go_duration_ms(self.cfg.persistence_interval)},
        }})

    @_observed("wipe")
    async def wipe(self, request: web.Request) -> web.Response:
        if not self.enable_admin_api:
            # 403 with Prometheus's JSON for its disabled admin API (errorType "unavailable"), naming the field.
            raise PermissionDeniedError(ADMIN_DISABLED)
        await asyncio.to_thread(self.store.wipe)
        PUSH_GROUPS.set(0)
        return web.Response(status=202)

    # -- wiring --------------------------------------------------------------------------------------

    def app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("receiver", web_config, render_error=text_error,
                       client_max_size=remote_write.max_compressed_bytes(self.cfg.max_decoded_body_bytes))
        app.router.add_post("/api/v1/write", self.remote_write)
        app.router.add_get("/metrics", self.own_metrics)
        _health(app)
        return app

    def pushgateway_app(self, web_config: WebConfig | None = None) -> web.Application:
        app = make_app("receiver", web_config, render_error=_push_error, client_max_size=64 << 20)
        for method in ("PUT", "POST", "DELETE"):
            app.router.add_route(method, "/metrics/{tail:job.*}", self.push)
        app.router.add_get("/metrics", self.pushed_metrics)
        app.router.add_get("/api/v1/metrics", self.api_metrics)
        app.router.add_get("/api/v1/status", self.api_status)
        app.router.add_put("/api/v1/admin/wipe", self.wipe)
        _health(app)
        return app


def _push_error(exc: ShardmonError, status: int) -> web.Response:
    """The push API's errors: plain text, as the Pushgateway's; its admin API's refusal is Prometheus's JSON."""
    if isinstance(exc, PermissionDeniedError):
        return prometheus_error(exc, status)
    return text_error(exc, status)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


def _health(app: web.Application) -> None:
    app.router.add_get("/-/healthy", _ok)
    app.router.add_get("/-/ready", _ok)


async def persist_periodically(store: PushStore, interval_s: float) -> None:
    """Write the pushed groups at most every ``interval_s`` after a change, as the Pushgateway's
    ``--persistence.interval`` does: right away when the last write is older, else when it is that old."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(max(last + interval_s - time.monotonic(), _PERSIST_POLL_S))
        if store.dirty:
            last = time.monotonic()
            await _persist(store)


async def _persist(store: PushStore) -> None:
    try:
        if await asyncio.to_thread(store.persist):
            PERSISTED.set(time.time())
    except Exception as exc:  # noqa: BLE001 - the loop must go on; the next interval retries
        PERSIST_ERRORS.inc()
        log.error("cannot write the pushed groups to %s: %s: %s", store.path, type(exc).__name__, exc)


async def serve(config: Config, *, stop: asyncio.Event | None = None) -> None:
    """Run the receiver until ``stop`` is set (or SIGTERM/SIGINT); then persist the pushed groups."""
    if config.receiver is None:
        raise ConfigError("receiver: the section is missing, so there is no receiver to run")
    rc = config.receiver
    forwarder = Forwarder(config.shards.nodes, config.ingest, sender_id=f"receiver.{uuid.uuid4().hex[:12]}",
                          replication_factor=config.shards.replication_factor, conn=ShardConnection.of(config))
    store = await asyncio.to_thread(PushStore, rc.persistence_file, max_groups=rc.max_push_groups,
                                    limits=rc.label_limits)
    receiver = Receiver(config, forwarder, store)
    web_config = config.web_config()
    runners = [await listen(receiver.app(web_config), rc.http_address, "receiver.http_address", web_config)]
    if rc.pushgateway_address:
        runners.append(await listen(receiver.pushgateway_app(web_config), rc.pushgateway_address,
                                    "receiver.pushgateway_address", web_config))
    persister = asyncio.create_task(persist_periodically(store, rc.persistence_interval / 1000))
    log.info("receiver serving remote_write on %s, the push API on %s", rc.http_address, rc.pushgateway_address)
    try:
        await wait_until_stopped(stop)
    finally:
        persister.cancel()
        for r in runners:
            await r.cleanup()
        await _persist(store)  # After the listeners stopped: no push can come after it.
        receiver.close()
        await forwarder.close()
    log.info("receiver stopped")
