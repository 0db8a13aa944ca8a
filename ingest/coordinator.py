"""The scrape coordinator: a Ray actor that owns the target list and the scrapers.

It creates ``ingest.scrapers`` scraper actors (restarted by Ray when they die), assigns each target
to one scraper by rendezvous hashing of the target's key over the scraper ids, and supervises: every
``SUPERVISE_INTERVAL_S`` it pings each scraper and gives its targets back to any that came back as a
new incarnation (or never got them). This module and :mod:`ingest.scraper` are the only ones of
ingest that know Ray.

On a Ray cluster of several nodes the scrapers are spread round-robin over the alive nodes that have
CPUs (:func:`place_scrapers`; worker nodes first, so a head started with ``--num-cpus 0`` gets none),
each pinned with a *soft* node affinity. The coordinator watches the node list every round. When a node
leaves, the targets of the scrapers that were on it go at once to the scrapers on the remaining nodes
(rendezvous hashing over the scrapers still there moves only those targets, and without staleness
markers: their series go on). Ray meanwhile restarts the lost scrapers on the remaining nodes (the
affinity is soft); once they answer from there, their targets go back to them. The coordinator itself
runs on the head node, which lives as long as the cluster does (the scrapers are its actors: they would
die with it).
"""

from __future__ import annotations

import asyncio
import logging
import os

import ray
from prometheus_client import Counter, Gauge, Histogram
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

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
NODES = Gauge("shardmon_coordinator_ray_nodes", "Alive Ray nodes at the last supervision round, by whether scrapers go there.",
              ["eligible"])
NODES_LEFT = Counter("shardmon_coordinator_ray_nodes_left_total", "Ray nodes seen leaving the cluster.")
VERSION = Gauge("shardmon_coordinator_assignment_version", "The version of the current target assignment.")
ROUND = Histogram("shardmon_coordinator_supervision_duration_seconds", "Time of one supervision round.",
                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def connect_ray(address: str = "local") -> None:
    """Join (or, with ``"local"``, start) the Ray cluster the scrapers run on.

    A cluster address is either the head's GCS address (``host:6379``; this machine must then be a node
    of the cluster, as with ``ray start --address``) or a Ray Client address (``ray://host:10001``,
    from a machine that is no node, as the compose file's ingest container).
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict = {"namespace": NAMESPACE, "log_to_driver": False}
    if address == "local":
        # Keep a local Ray on loopback and quiet (see MEASURED.md). Only for a Ray of our own: on a
        # cluster this would make the driver look for a node on 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        kwargs.update(include_dashboard=False, object_store_memory=128 * 1024 * 1024, _node_ip_address="127.0.0.1")
    if not address.startswith("ray://"):
        kwargs["configure_logging"] = False  # Not a Ray Client option.
    ray.init(address=address, **kwargs)


def _is_head(node: dict) -> bool:
    return "node:__internal_head__" in node.get("Resources", {})


def scraper_nodes(nodes: list[dict], num_cpus: float) -> list[dict]:
    """The nodes scrapers may go to, in placement order: alive, with at least ``num_cpus`` CPUs; worker
    nodes before the head, then by address and id (so the order does not depend on ``ray.nodes()``'s).
    ``nodes`` are as ``ray.nodes()`` returns them."""
    ok = [n for n in nodes if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= num_cpus]
    return sorted(ok, key=lambda n: (_is_head(n), n.get("NodeManagerAddress", ""), n.get("NodeManagerPort", 0),
                                     n["NodeID"]))


def place_scrapers(scraper_ids: list[str], node_ids: list[str]) -> dict[str, str | None]:
    """Scraper id -> the node it should start on: round-robin over ``node_ids`` in order, so N nodes
    each get ``len(scraper_ids) / N`` scrapers, give or take one. ``None`` (no eligible node) leaves
    the choice to Ray."""
    if not node_ids:
        return {sid: None for sid in scraper_ids}
    return {sid: node_ids[i % len(node_ids)] for i, sid in enumerate(scraper_ids)}


def _alive_nodes() -> list[dict]:
    try:
        return [n for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # noqa: BLE001 - the GCS busy or restarting: Ray's own choice then.
        log.warning("could not list the Ray nodes: %s", exc)
        return []


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
        self._nodes: dict[str, dict] = {}  # alive node id -> {"node_ip", "eligible", "head", "coordinator"}
        self._placement: dict[str, str | None] = {}
        # Scrapers whose node left the cluster, until they answer again from an alive node (Ray restarts
        # them elsewhere): their targets go to the other scrapers meanwhile.
        self._lost: set[str] = set()
        self._node_of: dict[str, str] = {}  # scraper id -> the node it last answered from
        self._members: list[str] = list(self.scraper_ids)
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
        # Targets go to the scrapers that can run them: all of them, but those whose node left (unless
        # that is all of them). Rendezvous hashing moves only the lost scrapers' targets, and moves
        # them back when the scrapers return.
        members = [sid for sid in self.scraper_ids if sid not in self._lost] or list(self.scraper_ids)
        if (self.targets is None or members != self._members
                or [t.key for t in targets] != [t.key for t in self.targets]):
            self.targets = targets
            self._members = members
            self.assignment = assign_targets(targets, members)
            self.version += 1
            VERSION.set(self.version)
            TARGETS.set(len(targets))

    def _watch_nodes(self) -> None:
        """Refresh the alive-node list; log nodes that joined or left. The scrapers a leaving node took
        with it are *lost* until they answer again from an alive node: meanwhile their targets go to
        the other scrapers (see :meth:`_refresh_targets`)."""
        nodes = _alive_nodes()
        if not nodes:
            return
        eligible = {n["NodeID"] for n in scraper_nodes(nodes, self.config.ingest.scraper_num_cpus)}
        here = ray.get_runtime_context().get_node_id()
        now = {n["NodeID"]: {"node_ip": n.get("NodeManagerAddress", ""), "eligible": n["NodeID"] in eligible,
                             "head": _is_head(n), "coordinator": n["NodeID"] == here} for n in nodes}
        if self._nodes:
            for node_id in self._nodes.keys() - now.keys():
                NODES_LEFT.inc()
                lost = [sid for sid, nid in self._node_of.items() if nid == node_id]
                log.warning("Ray node %s (%s) left; its scrapers %s restart on the remaining nodes",
                            node_id, self._nodes[node_id]["node_ip"], lost or "(none)")
                for sid in lost:
                    self._seen[sid] = dict(self._seen[sid], state="unavailable: node left")
                self._lost.update(lost)
            for node_id in now.keys() - self._nodes.keys():
                log.info("Ray node %s (%s) joined", node_id, now[node_id]["node_ip"])
        self._nodes = now
        NODES.labels("true").set(len(eligible))
        NODES.labels("false").set(len(now) - len(eligible))

    def _place(self) -> None:
        """Choose a node for every scraper not created yet (see :func:`place_scrapers`)."""
        missing = [sid for sid in self.scraper_ids if sid not in self._handles]
        if not missing:
            return
        nodes = scraper_nodes(_alive_nodes(), self.config.ingest.scraper_num_cpus)
        # Round-robin over all scrapers, so that recreating some keeps the spread of the rest.
        placement = place_scrapers(self.scraper_ids, [n["NodeID"] for n in nodes])
        for sid in missing:
            self._placement[sid] = placement[sid]

    def _scraper(self, sid: str):
        h = self._handles.get(sid)
        if h is None:
            node_id = self._placement.get(sid)
            # Soft: should the node be gone or full (now, or when Ray restarts the scraper after its
            # node left), Ray runs the scraper on another node.
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "SPREAD"
            remote = ray.remote(Scraper)
            h = remote.options(
                name=f"shardmon-{sid}",
                namespace=NAMESPACE,
                get_if_exists=True,
                max_restarts=-1,
                max_task_retries=0,
                num_cpus=self.config.ingest.scraper_num_cpus,
                scheduling_strategy=strategy,
                max_concurrency=1000,
            ).remote(sid, self.config, ray.get_runtime_context().current_actor)
            self._handles[sid] = h
        return h

    async def start(self) -> None:
        """Create the scrapers, give them their targets, and keep supervising them."""
        self._place()
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
        if info.get("node_id"):
            self._node_of[sid] = info["node_id"]
        if sid in self._lost and info.get("node_id") in self._nodes:
            self._lost.discard(sid)  # Back, on an alive node: it gets its targets back next round.
            log.info("scraper %s is back on node %s", sid, info.get("node_id"))
        if info["assignment_version"] != self.version:
            try:
                await asyncio.wait_for(h.assign.remote(self.version, self.assignment.get(sid, []), self._moving(sid)),
                                       10 * PING_TIMEOUT_S)
            except (RayError, asyncio.TimeoutError) as exc:
                ASSIGNMENTS.labels("error").inc()
                self._seen[sid] = {"scraper_id": sid, "state": f"assign failed: {exc}"}
                return
            ASSIGNMENTS.labels("ok").inc()
            info = dict(info, assignment_version=self.version, targets=len(self.assignment.get(sid, [])))
        self._seen[sid] = dict(info, state="running")

    def _moving(self, sid: str) -> list[bytes]:
        """The keys of the targets that another scraper runs now: should ``sid`` have run them, it
        stops them without staleness markers (their series go on, scraped by the other scraper)."""
        return [t.key for other, ts in self.assignment.items() if other != sid for t in ts]

    async def _supervise_once(self) -> None:
        with ROUND.time():
            self._watch_nodes()
            self._refresh_targets()
            await asyncio.gather(*(self._check(sid) for sid in self.scraper_ids))
            members = self._members
            self._refresh_targets()
            if self._members != members:  # A lost scraper is back: its targets go back to it now.
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
        """The latest known state of every scraper (id, incarnation, pid, node id and IP, targets), with
        the node it was first placed on (``placed_on``; None when Ray chose)."""
        return [dict(self._seen.get(sid, {"scraper_id": sid, "state": "starting"}), placed_on=self._placement.get(sid))
                for sid in self.scraper_ids]

    async def nodes(self) -> dict[str, dict]:
        """The alive Ray nodes at the last supervision round: node id -> node IP, whether scrapers go
        there (``eligible``), whether it is the head, whether the coordinator runs there, and the ids of
        the scrapers running there."""
        out = {nid: dict(info, scrapers=[]) for nid, info in self._nodes.items()}
        for sid in self.scraper_ids:
            info = self._seen.get(sid, {})
            if info.get("state") == "running" and info.get("node_id") in out:
                out[info["node_id"]]["scrapers"].append(sid)
        return out

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
    """Create the coordinator actor (in the current Ray cluster) and start it; returns its handle.

    It runs on the head node: a worker node may leave, the head lives as long as the cluster does. This
    matters: the scrapers are the coordinator's actors and die with it, wherever they run. The affinity is
    hard because a soft one does not hold for an actor that reserves no CPU (Ray places those anywhere)."""
    head = next((n["NodeID"] for n in _alive_nodes() if _is_head(n)), None)
    strategy = NodeAffinitySchedulingStrategy(head, soft=False) if head else "DEFAULT"
    remote = ray.remote(ScrapeCoordinator)
    handle = remote.options(
        name="shardmon-coordinator", namespace=NAMESPACE, num_cpus=0, max_restarts=-1, max_concurrency=100,
        scheduling_strategy=strategy,
    ).remote(config)
    ray.get(handle.start.remote())
    return handle


def cluster_status(address: str, timeout_s: float = 30.0) -> dict:
    """Ask the coordinator running on the Ray cluster at ``address`` where its scrapers are: its
    ``scrapers()``, ``nodes()`` and ``assignments()``. Raises LookupError when no coordinator runs there."""
    connect_ray(address)
    try:
        try:
            coordinator = ray.get_actor("shardmon-coordinator", namespace=NAMESPACE)
        except ValueError as exc:
            raise LookupError(f"no Shardmon coordinator on the Ray cluster at {address}") from exc
        scrapers = ray.get(coordinator.scrapers.remote(), timeout=timeout_s)
        nodes = ray.get(coordinator.nodes.remote(), timeout=timeout_s)
        assignments = ray.get(coordinator.assignments.remote(), timeout=timeout_s)
        return {"scrapers": scrapers, "nodes": nodes, "assignments": assignments}
    finally:
        ray.shutdown()
