"""The scraper actor: an async Ray actor running the scrape loops (:mod:`shardmon.ingest.scrape_loop`) of the
targets assigned to it.

The coordinator assigns targets with :meth:`Scraper.assign`; the scraper starts loops for new
targets, stops (with staleness markers) loops of targets taken away and leaves the rest running.
Samples go through the scraper's own :class:`~shardmon.ingest.forwarder.Forwarder` to the shards over gRPC,
never through Ray.

Ray restarts a scraper that dies (``max_restarts=-1``); the new incarnation starts empty, asks the
coordinator for its targets at once (and the coordinator's supervision, which sees a new
``incarnation`` id, gives them back too should that ask fail).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

import aiohttp

from shardmon.ingest import metrics
from shardmon.ingest.forwarder import Forwarder
from shardmon.ingest.ray_cluster import node_id, node_ip, serve_own_metrics
from shardmon.ingest.scrape_loop import ScrapeLoop, TargetHealth
from shardmon.ingest.target import Target
from shardmon.model.config import Config
from shardmon.shards.client import ShardConnection

log = logging.getLogger(__name__)


class Scraper:
    """The actor's logic (wrapped by ``ray.remote`` in :mod:`shardmon.ingest.coordinator`)."""

    def __init__(self, scraper_id: str, config: Config, coordinator=None) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.scraper_id = scraper_id
        self.config = config
        self.incarnation = uuid.uuid4().hex[:12]
        self.assignment_version = -1
        self._loops: dict[bytes, ScrapeLoop] = {}
        self._forwarder: Forwarder | None = None
        self._session: aiohttp.ClientSession | None = None
        self._assign_lock = asyncio.Lock()
        self.metrics_address = serve_own_metrics("scraper", config)
        loop = asyncio.get_running_loop()
        self._lag_task = loop.create_task(_measure_loop_lag())
        if coordinator is not None:
            # An async actor's __init__ runs on its event loop: after a restart, fetch the targets now
            # rather than at the coordinator's next supervision round.
            asyncio.get_running_loop().create_task(self._fetch_assignment(coordinator))

    async def _fetch_assignment(self, coordinator) -> None:
        try:
            version, targets = await asyncio.wait_for(coordinator.assignment_for.remote(self.scraper_id), 10)
        except Exception as exc:  # noqa: BLE001 - supervision will assign instead.
            log.warning("could not fetch my assignment: %s", exc)
            return
        if self.assignment_version == -1:
            await self.assign(version, targets)

    def _ensure_started(self) -> None:
        if self._forwarder is None:
            self._forwarder = Forwarder(
                self.config.shards.nodes,
                self.config.ingest,
                sender_id=f"{self.scraper_id}.{self.incarnation}",
                replication_factor=self.config.shards.replication_factor,
                conn=ShardConnection.of(self.config),
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300), auto_decompress=True
            )

    async def ping(self) -> dict:
        """Who is answering: id, incarnation, process id and the assignment it runs."""
        return {
            "scraper_id": self.scraper_id,
            "incarnation": self.incarnation,
            "pid": os.getpid(),
            "node_id": node_id(),
            "node_ip": node_ip(),
            "assignment_version": self.assignment_version,
            "targets": len(self._loops),
            "metrics_address": self.metrics_address,
        }

    async def assign(self, version: int, targets: list[Target], moved: list[bytes] = (),
                     handover: dict[bytes, int] | None = None) -> dict[bytes, int]:
        """Run exactly these targets from now on. A target taken away ends its series with staleness
        markers, unless its key is in ``moved``: another scraper runs it now and the series go on.

        Returns, for each target taken away, when it was last scraped here (ms, 0 if never): what its
        next scraper gets as ``handover``, so that it scrapes at once for a grid point nobody took."""
        async with self._assign_lock:
            self._ensure_started()
            wanted = {t.key: t for t in targets}
            moved_keys = set(moved)
            gone = {key: self._loops.pop(key) for key in [k for k in self._loops if k not in wanted]}
            await asyncio.gather(*(loop.stop(mark_stale=key not in moved_keys) for key, loop in gone.items()))
            last_scraped = {key: loop.health.last_scrape_ms for key, loop in gone.items()}
            for key, target in wanted.items():
                running = self._loops.get(key)
                since = handover.get(key) if handover else None
                if running is not None and running.target != target:
                    # Same series, new settings (interval, timeout, limits...): a new loop, no markers.
                    await self._loops.pop(key).stop(mark_stale=False)
                    since = running.health.last_scrape_ms
                if key not in self._loops:
                    loop = ScrapeLoop(target, self._forwarder, self._session,  # type: ignore[arg-type]
                                      native_histograms=self.config.ingest.native_histograms)
                    loop.catch_up_since_ms = since
                    loop.start()
                    self._loops[key] = loop
            self.assignment_version = version
            metrics.TARGETS.set(len(self._loops))
            return last_scraped

    async def targets(self) -> list[TargetHealth]:
        return [loop.health for loop in self._loops.values()]

    async def stats(self) -> dict:
        return {
            "scraper_id": self.scraper_id,
            "incarnation": self.incarnation,
            "targets": len(self._loops),
            "scrapes": sum(loop.scrapes for loop in self._loops.values()),
            "forwarder": self._forwarder.stats() if self._forwarder else {},
        }

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop every loop and send what is queued. No staleness markers: Prometheus writes none when it
        shuts down (the targets are not gone), and the scraper's would come after its queue closed."""
        await asyncio.gather(*(loop.stop(mark_stale=False) for loop in self._loops.values()))
        self._loops.clear()
        if self._forwarder is not None:
            await self._forwarder.close(flush_timeout_s)
        if self._session is not None:
            await self._session.close()
        self._forwarder = None
        self._session = None
        self.assignment_version = -1


async def _measure_loop_lag() -> None:
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(1.0)
        metrics.EVENT_LOOP_LAG.set(max(0.0, loop.time() - t0 - 1.0))

