"""The querier's status APIs, in Prometheus 2.42's exact JSON (``web/api/v1/api.go``):

- ``GET /api/v1/status/runtimeinfo``: ``startTime`` (when the querier began serving), ``CWD``, ``reloadConfigSuccess``, ``lastConfigTime``,
  ``corruptionCount``, ``goroutineCount`` (the process's Python threads), ``GOMAXPROCS`` (the cores it may
  use), ``GOGC`` (Python's garbage-collector thresholds, ``700,10,10``), ``GODEBUG`` (the ``PYTHONDEVMODE``
  / ``PYTHONWARNINGS`` environment, as Go's is an environment variable), ``storageRetention`` (the shards');
- ``GET /api/v1/status/config``: ``{"yaml": ...}``, the running configuration with every secret shown as
  ``<secret>`` (:mod:`shardmon.model.config_yaml`);
- ``GET /api/v1/status/flags``: Shardmon's settings under the names of Prometheus's flags that do the same
  (``query.lookback-delta``, ``storage.tsdb.retention.time``, ``web.listen-address``...), and the querier's
  own settings under their configuration paths (``querier.max_series``, ``shards.replication_factor``: the
  sections ``querier.`` and ``shards.``, which no Prometheus flag starts with); every value a string.

The querier reads its configuration once at start (it does not reload), so ``lastConfigTime`` is then and
``reloadConfigSuccess`` is true.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from shardmon.model.config import Config
from shardmon.model.config_yaml import config_yaml
from shardmon.model.units import format_duration_ms, format_size_bytes


def go_time(seconds: float) -> str:
    """A time as Go's ``time.Time`` marshals to JSON (RFC 3339 with nanoseconds, trailing zeros cut)."""
    t = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def storage_retention(config: Config) -> str:
    """``storageRetention`` as Prometheus writes it: ``15d``, ``512MiB`` or ``15d or 512MiB``."""
    s = config.shards
    out = format_duration_ms(s.retention_time) if s.retention_time else ""
    if s.retention_size:
        out = (out + " or " if out else "") + format_size_bytes(s.retention_size)
    return out


def flags(config: Config, config_file: str | None = None) -> dict[str, str]:
    """``/api/v1/status/flags``'s ``data``: Prometheus's flag names for Shardmon's equivalent settings,
    then the querier's own under their configuration paths; every value a string, as Go prints flags."""
    q, s, r, w = config.querier, config.shards, config.rules, config.web

    def b(v: bool) -> str:
        return "true" if v else "false"

    out = {
        "config.file": config_file or "",
        "web.listen-address": q.http_address,
        "web.external-url": w.external_url or "",
        "web.config.file": config.web_config_file or "",
        "web.enable-lifecycle": b(w.enable_lifecycle),
        "web.enable-admin-api": b(w.enable_admin_api),
        "query.lookback-delta": format_duration_ms(q.lookback_delta),
        "query.timeout": format_duration_ms(q.query_timeout),
        "query.max-samples": str(q.max_samples),
        "storage.tsdb.retention.time": format_duration_ms(s.retention_time or 0),
        "storage.tsdb.retention.size": format_size_bytes(s.retention_size),
        "storage.tsdb.min-block-duration": format_duration_ms(s.block_duration),
        "storage.tsdb.max-block-duration": format_duration_ms(s.max_block_duration or 0),
        "rules.alert.for-outage-tolerance": format_duration_ms(r.for_outage_tolerance),
        "rules.alert.for-grace-period": format_duration_ms(r.for_grace_period),
        "rules.alert.resend-delay": format_duration_ms(r.resend_delay),
        "alertmanager.notification-queue-capacity": str(config.alerting.notification_queue_capacity),
        # Shardmon's own, without a Prometheus flag: their configuration paths (under querier. and shards.).
        "querier.grpc_address": q.grpc_address,
        "querier.max_series": str(q.max_series),
        "querier.max_query_length": format_size_bytes(q.max_query_length),
        "querier.max_query_depth": str(q.max_query_depth),
        "querier.shard_response_timeout": format_duration_ms(q.shard_response_timeout),
        "querier.partial_response": q.partial_response,
        "querier.aggregation_pushdown": b(q.aggregation_pushdown),
        "querier.enable_experimental_functions": b(q.enable_experimental_functions),
        "querier.subquery_step": format_duration_ms(q.subquery_step or config.global_.evaluation_interval),
        "querier.slow_query_threshold": format_duration_ms(q.slow_query_threshold),
        "querier.slow_query_log_size": str(q.slow_query_log_size),
        "shards.replication_factor": str(s.replication_factor),
    }
    return out


class StatusAPI:
    """The status routes over the querier's configuration (read once, at start)."""

    def __init__(self, config: Config, *, config_file: str | None = None, started: float | None = None) -> None:
        self.config = config
        self.config_file = config_file
        #: When the process started, and when it read its configuration (the same moment: it does not reload).
        self.started = started if started is not None else time.time()
        self._yaml = config_yaml(config)
        self._flags = flags(config, config_file)

    def runtimeinfo(self) -> dict:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        debug = ",".join(f"{k}={os.environ[k]}" for k in ("PYTHONDEVMODE", "PYTHONWARNINGS") if os.environ.get(k))
        return {
            "startTime": go_time(self.started),
            "CWD": os.getcwd(),
            "reloadConfigSuccess": True,
            "lastConfigTime": go_time(int(self.started)),  # Prometheus keeps whole seconds here
            "corruptionCount": 0,
            "goroutineCount": threading.active_count(),
            "GOMAXPROCS": cores,
            "GOGC": ",".join(str(t) for t in gc.get_threshold()),
            "GODEBUG": debug,
            "storageRetention": storage_retention(self.config),
        }

    def add_routes(self, app: web.Application) -> None:
        """The three routes (GET, as Prometheus 2.42 routes them)."""
        for path, data in (("/api/v1/status/runtimeinfo", self.runtimeinfo),
                           ("/api/v1/status/config", lambda: {"yaml": self._yaml}),
                           ("/api/v1/status/flags", lambda: self._flags)):
            app.router.add_get(path, _handler(data))


def _handler(data: Callable[[], object]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A GET handler answering ``data()`` in Prometheus's success envelope."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"status": "success", "data": data()}), content_type="application/json")

    return handler


__all__ = ["StatusAPI", "flags", "go_time", "storage_retention"]
