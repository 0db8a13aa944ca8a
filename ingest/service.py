"""The ingest service: the Ray driver that starts the coordinator and keeps it going.

``shardmon ingest`` runs :func:`run`: join (or start) Ray, start the coordinator actor, and until
SIGTERM/SIGINT, nudge it every few seconds (``start`` is idempotent, so a coordinator that Ray
restarted picks its scrapers up again). On stop, the scrapers end their series with staleness
markers and flush their queues before Ray shuts down.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import ray
from ray.exceptions import RayError

from ingest.coordinator import connect_ray, start_coordinator
from model.config import Config

log = logging.getLogger(__name__)

KEEPALIVE_S = 10.0


def run(config: Config, stop: threading.Event | None = None, ready_file: str | None = None) -> None:
    """Run the ingest service until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None).

    ``ready_file`` is created once the coordinator has given every scraper its targets.
    """
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    connect_ray(config.ingest.ray_address)
    coordinator = start_coordinator(config)
    log.info("ingest running: %d scrapers", config.ingest.scrapers)
    if ready_file:
        Path(ready_file).write_text("ready\n")
    try:
        while not stop.wait(KEEPALIVE_S):
            try:
                ray.get(coordinator.start.remote(), timeout=30)
            except RayError as exc:
                log.warning("coordinator not answering: %s", exc)
    finally:
        try:
            ray.get(coordinator.stop.remote(), timeout=30)
        except RayError as exc:
            log.warning("coordinator stop failed: %s", exc)
        ray.shutdown()
        log.info("ingest stopped")
