"""The scrape coordinator: a Ray actor that owns the target list and the scrapers.

It creates ``ingest.scrapers`` scraper actors (restarted by Ray when they die), assigns each target
to one scraper by rendezvous hashing of the target's key over the scraper ids, and supervises: every
``SUPERVISE_INTERVAL_S`` it pings each scraper and gives its targets back to any that came back as a
new incarnation (or never got them). This module and :mod:`ingest.scraper` are the only ones of
ingest that know Ray.
"""

from __future__ import annotations

import asyncio
import logging
import os

import ray
from prometheus_client import Counter, Gauge, Histogram
from ray.exceptions import RayError

from ingest.scraper import Scraper, serve_own_metrics
from ingest.target import assign_targets, self_targets, static_components, targets_from_config
from model.config import Config

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL_S = 2.0
PING_TIMEOUT_S = 2.0
NAMESPACE = "shardmon"


TARGETS = Gauge("shardmon_coordinator_targets", "Targets assigned to scrapers (configured and Shardmon's own).")
SCRAPERS = Gauge("shardmon_coordinator_scrapers", "Scrapers by state at the last supervision round.", ["state"])
RESTARTS = Counter("shardmon_coordinator_scraper_restarts_total", "Scrapers seen coming back as a new incarnation.")
ASSIGNMENTS = Counter("shardmon_coordinator_assignments_total", "Assignments sent to scrapers, by outcome.", ["outcome"])
VERSION = Gauge("shardmon_coordinator_assignment_version", "The version of the current target assignment.")
ROUND = Histogram("shardmon_coordinator_supervision_duration_seconds", "Time of one supervision round.",
                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def connect_ray(address: str = "local") -> None:
    """Join (or, with ``"local"``, start) the Ray cluster the scrapers run on."""
    if ray.is_initialized():
        return
    # Keep a local Ray on loopback and quiet (see MEASURED.md); a cluster address is used as given.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict = {"namespace": NAMESPACE, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        kwargs.update(include_dashboard=False, object_store_memory=128 * 1024 * 1024, _node_ip_address="127.0.0.1")
    ray.init(address=address, **kwargs)


class ScrapeCoordinator:
    """Owns targets and scrapers; run as an async Ray actor (see :func:`start_coordinator`)."""

    def __init__(self, config: Config) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.config = config
        self.configured = targets_from_config(config)
        self.scraper_ids = [f"scraper-{i}" for i in range(config.ingest.scrapers)]
        self.metrics_address = serve_own_metrics()
        self.version = 0
        self.targets: list | None = None  # None until the first refresh, which always assigns
        self.assignment: dict[str, list] = {}
        self._handles: dict[str, ray.actor.ActorHandle] = {}
        self._seen: dict[str, dict] = {}
        self._task: asyncio.Task | None = None
        self._refresh_targets()

    def _refresh_targets(self) -> None:
        """The configured targets plus, with ``ingest.self_monitoring``, Shardmon's own components
        (scrapers as their metrics addresses become known). A new target set is a new assignment
        version; rendezvous hashing moves only the targets that must move."""
        targets = list(self.configured)
        if self.config.ingest.self_monitoring:
            components = static_components(self.config) + [("coordinator", self.metrics_address, "/metrics")]
            components += [("scraper", info["metrics_address"], "/metrics")
                           for info in self._seen.values() if info.get("metrics_address")]
            targets += self_targets(self.config, components)
        if self.targets is None or [t.key for t in targets] != [t.key for t in self.targets]:
            self.targets = targets
            self.assignment = assign_targets(targets, self.scraper_ids)
            self.version += 1
            VERSION.set(self.version)
            TARGETS.set(len(targets))

    def _scraper(self, sid: str):
        h = self._handles.get(sid)
        if h is None:
            remote = ray.remote(Scraper)
            h = remote.options(
                name=f"shardmon-{sid}",
                namespace=NAMESPACE,
                get_if_exists=True,
                max_restarts=-1,
                max_task_retries=0,
                num_cpus=self.config.ingest.scraper_num_cpus,
                scheduling_strategy="SPREAD",
                max_concurrency=1000,
            ).remote(sid, self.config, ray.get_runtime_context().current_actor)
            self._handles[sid] = h
        return h

    async def start(self) -> None:
        """Create the scrapers, give them their targets, and keep supervising them."""
        for sid in self.scraper_ids:
            self._scraper(sid)
        await self._supervise_once()
        if self._task is None:
            self._task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_S)
            try:
                await self._supervise_once()
            except Exception:  # noqa: BLE001 - supervision must go on whatever one round met.
                log.exception("supervision round failed")

    async def _check(self, sid: str) -> None:
        h = self._scraper(sid)
        try:
            info = await asyncio.wait_for(h.ping.remote(), PING_TIMEOUT_S)
        except (RayError, asyncio.TimeoutError) as exc:
            # Restarting (ActorUnavailableError) or busy; Ray brings it back, we retry next round.
            self._seen[sid] = {"scraper_id": sid, "state": f"unavailable: {type(exc).__name__}"}
            return
        prev = self._seen.get(sid, {})
        if prev.get("incarnation") not in (None, info["incarnation"]):
            RESTARTS.inc()
            log.info("scraper %s restarted (incarnation %s)", sid, info["incarnation"])
        if info["assignment_version"] != self.version:
            try:
                await asyncio.wait_for(h.assign.remote(self.version, self.assignment[sid]), 10 * PING_TIMEOUT_S)
            except (RayError, asyncio.TimeoutError) as exc:
                ASSIGNMENTS.labels("error").inc()
                self._seen[sid] = {"scraper_id": sid, "state": f"assign failed: {exc}"}
                return
            ASSIGNMENTS.labels("ok").inc()
            info = dict(info, assignment_version=self.version, targets=len(self.assignment[sid]))
        self._seen[sid] = dict(info, state="running")

    async def _supervise_once(self) -> None:
        with ROUND.time():
            self._refresh_targets()
            await asyncio.gather(*(self._check(sid) for sid in self.scraper_ids))
            states: dict[str, int] = {}
            for info in self._seen.values():
                state = info.get("state", "?").split(":")[0]
                states[state] = states.get(state, 0) + 1
            for state in ("running", "unavailable", "assign failed"):
                SCRAPERS.labels(state).set(states.get(state, 0))

    async def assignment_for(self, sid: str) -> tuple[int, list]:
        """The current assignment version and the targets of scraper ``sid`` (asked by a restarted scraper)."""
        return self.version, self.assignment.get(sid, [])

    async def scrapers(self) -> list[dict]:
        """The latest known state of every scraper (id, incarnation, pid, node, targets)."""
        return [self._seen.get(sid, {"scraper_id": sid, "state": "starting"}) for sid in self.scraper_ids]

    async def assignments(self) -> dict[str, list[str]]:
        """Scraper id -> the URLs of its targets."""
        return {sid: [t.url for t in ts] for sid, ts in self.assignment.items()}

    async def target_health(self) -> list:
        refs = [self._scraper(sid).targets.remote() for sid in self.scraper_ids]
        out = []
        for r in refs:
            try:
                out.extend(await asyncio.wait_for(r, PING_TIMEOUT_S))
            except (RayError, asyncio.TimeoutError):
                continue
        return out

    async def stats(self) -> list[dict]:
        out = []
        for sid in self.scraper_ids:
            try:
                out.append(await asyncio.wait_for(self._scraper(sid).stats.remote(), PING_TIMEOUT_S))
            except (RayError, asyncio.TimeoutError) as exc:
                out.append({"scraper_id": sid, "error": str(exc)})
        return out

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop supervising, stop every scraper (flushing its queue), then end the actors."""
        if self._task:
            self._task.cancel()
            self._task = None
        refs = [self._scraper(sid).stop.remote(flush_timeout_s) for sid in self.scraper_ids]
        for r in refs:
            try:
                await asyncio.wait_for(r, flush_timeout_s + 5)
            except (RayError, asyncio.TimeoutError):
                pass
        for h in self._handles.values():
            ray.kill(h, no_restart=True)
        self._handles.clear()


def start_coordinator(config: Config):
    """Create the coordinator actor (in the current Ray cluster) and start it; returns its handle."""
    remote = ray.remote(ScrapeCoordinator)
    handle = remote.options(
        name="shardmon-coordinator", namespace=NAMESPACE, num_cpus=0, max_restarts=-1, max_concurrency=100
    ).remote(config)
    ray.get(handle.start.remote())
    return handle
