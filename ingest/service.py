"""The ingest service: the Ray driver that starts the coordinator and keeps it going.

``shardmon ingest`` runs :func:`run`: join (or start) Ray, start the coordinator actor, and until
SIGTERM/SIGINT, nudge it every few seconds (``start`` is idempotent; a coordinator that Ray restarted
starts itself again too, with the scaling and configuration it had: see :mod:`shardmon.ingest.coordinator`).
On stop, the scrapers flush their queues before Ray shuts down (no staleness markers: as Prometheus on
shutdown, the targets are not gone).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import RayError

from shardmon.ingest.api import Coordinator, IngestAPI, serve
from shardmon.ingest.coordinator import start_coordinator
from shardmon.ingest.ray_cluster import connect_service
from shardmon.model.config import Config
from shardmon.model.errors import ConfigError, QueryUnavailableError, ShardmonError

log = logging.getLogger(__name__)

KEEPALIVE_S = 10.0


def run(config: Config, stop: threading.Event | None = None, ready_file: str | None = None,
        reload_config: Callable[[], Config] | None = None) -> None:
    """Run the ingest service until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None).

    ``ready_file`` is created once the coordinator has given every scraper its targets. SIGHUP and
    ``POST /-/reload`` call ``reload_config`` (which reads the configuration file again, raising
    ``ConfigError`` for a bad one) and apply what it returns; ``ingest.http_address`` serves the API of
    :mod:`shardmon.ingest.api`.
    """
    stop, reload_requested = connect_service(config, stop)
    coordinator = start_coordinator(config)
    log.info("ingest running: %d scrapers", config.ingest.scrapers)
    reload_lock = threading.Lock()
    running = [config]  # the configuration in force, as the last reload left it

    def reload() -> dict:
        if reload_config is None:
            raise ConfigError("this ingest service was started without a configuration file to reload")
        with reload_lock:
            new = reload_config()  # ConfigError: the running configuration stays
            result = ray.get(coordinator.reload.remote(new), timeout=120)
            running[0] = new
            log.info("configuration reloaded")
            return result

    def ask(ref, timeout_s: float = 120.0):
        try:
            return ray.get(ref, timeout=timeout_s)
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ShardmonError):  # the coordinator's own answer (e.g. a bound), not Ray's
                raise cause from exc
            raise QueryUnavailableError(f"coordinator: {exc}") from exc

    def reload_api() -> dict:
        try:
            return reload()
        except RayError as exc:
            raise QueryUnavailableError(f"coordinator: {exc}") from exc

    stop_api = None
    if config.ingest.http_address:
        api = Coordinator(
            targets=lambda state, pool: ask(coordinator.targets_api.remote(state, pool)),
            scrapers=lambda: ask(coordinator.scrapers.remote()),
            scale=lambda n: ask(coordinator.set_scrapers.remote(n), 300),
            reload=reload_api,
        )
        stop_api = serve(IngestAPI(api, lambda: running[0]), config.ingest.http_address, config.web_config())
    if ready_file:
        Path(ready_file).write_text("ready\n")
    try:
        while True:
            stop.wait(KEEPALIVE_S)
            if reload_requested.is_set():  # SIGHUP: it also woke the wait up
                reload_requested.clear()
                stop.clear()
                try:
                    reload()
                except (ConfigError, RayError) as exc:
                    log.error("reload failed, the running configuration stays: %s", exc)
                continue
            if stop.is_set():
                break
            try:
                ray.get(coordinator.start.remote(), timeout=30)
            except RayError as exc:
                log.warning("coordinator not answering: %s", exc)
    finally:
        if stop_api is not None:
            stop_api()
        try:
            ray.get(coordinator.stop.remote(), timeout=30)
        except RayError as exc:
            log.warning("coordinator stop failed: %s", exc)
        ray.shutdown()
        log.info("ingest stopped")
