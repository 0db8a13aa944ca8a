"""The scrape coordinator: a Ray actor that owns the target list and the scrapers.

It creates ``ingest.scrapers`` scraper actors (:mod:`shardmon.ingest.scraper_actor`, restarted by Ray when they
die), assigns each target to one scraper on the hash ring of the scraper ids (a placement hash of the
target's URL and labels; :func:`shardmon.model.hashing.ring_owners`), and supervises: every ``SUPERVISE_INTERVAL_S`` it pings each scraper and gives its targets back to
any that came back as a new incarnation (or never got them). It runs service discovery, scales the
scrapers and reloads the configuration at runtime, and answers the ingest service's API (:mod:`shardmon.ingest.api`).

On a Ray cluster of several nodes the scrapers are spread round-robin over the alive nodes that have
CPUs (:mod:`shardmon.ingest.placement`), each pinned with a *soft* node affinity. The coordinator watches the
node list every round. When a node leaves, the targets of the scrapers that were on it go at once to the
scrapers on the remaining nodes (the ring of the scrapers still there moves only those
targets, and without staleness markers: their series go on). Ray meanwhile restarts the lost scrapers on
the remaining nodes (the affinity is soft); once they answer from there, their targets go back to them.
The coordinator itself runs on the head node, which lives as long as the cluster does (the scrapers are
its actors: they would die with it).

The coordinator survives its own restart: it checkpoints what changes at runtime (the last reloaded
configuration and the last ``set_scrapers(N)``) in Ray's internal key-value store, under a run id the
ingest service gives it (:mod:`shardmon.ingest.coordinator_checkpoint`). A restarted coordinator (same run id)
resumes from the checkpoint and starts its scrapers at once; a new ingest service (a new run id) starts
from its configuration file.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import ray
from prometheus_client import Counter, Gauge, Histogram
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from shardmon.ingest.coordinator_checkpoint import delete_state, load_state, save_state
from shardmon.ingest.discovery import DiscoveryManager, TargetGroup
from shardmon.ingest.placement import is_head, place_scrapers, scraper_nodes
from shardmon.ingest.ray_cluster import NAMESPACE, alive_nodes, connect_ray, serve_own_metrics
from shardmon.ingest.ruler_watch import RulerWatch
from shardmon.ingest.scraper_actor import Scraper
from shardmon.ingest.target import (
    Target,
    TargetError,
    apply_target_limit,
    assign_targets,
    populate_target,
    scrape_options,
    self_targets,
    static_components,
    targets_from_config,
)
from shardmon.ingest.target_status import targets_data
from shardmon.model.config import Config
from shardmon.model.errors import BadRequestError

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL_S = 2.0
PING_TIMEOUT_S = 5.0  # a busy scraper on a loaded machine can take seconds to answer


TARGETS = Gauge("shardmon_coordinator_targets", "Targets assigned to scrapers (configured and Shardmon's own).")
SCRAPERS = Gauge("shardmon_coordinator_scrapers", "Scrapers by state at the last supervision round.", ["state"])
RESTARTS = Counter("shardmon_coordinator_scraper_restarts_total", "Scrapers seen coming back as a new incarnation.")
ASSIGNMENTS = Counter("shardmon_coordinator_assignments_total", "Assignments sent to scrapers, by outcome.", ["outcome"])
NODES = Gauge("shardmon_coordinator_ray_nodes", "Alive Ray nodes at the last supervision round, by whether scrapers go there.",
              ["eligible"])
NODES_LEFT = Counter("shardmon_coordinator_ray_nodes_left_total", "Ray nodes seen leaving the cluster.")
SCRAPER_COUNT = Gauge("shardmon_coordinator_scrapers_wanted", "Scrapers the coordinator runs (ingest.scrapers, or as scaled).")
SCALINGS = Counter("shardmon_coordinator_scalings_total", "Changes of the number of scrapers at runtime.")
RELOADS = Counter("shardmon_coordinator_reloads_total", "Configurations applied at runtime.")
RESUMED = Gauge("shardmon_coordinator_resumed",
                "1 when this coordinator process is a restart that resumed from its checkpoint (scaling, reloaded "
                "configuration), else 0.")
CHECKPOINT_FAILURES = Counter("shardmon_coordinator_checkpoint_failures_total",
                              "Checkpoints of the runtime state (scaling, reloaded configuration) not written.")
VERSION = Gauge("shardmon_coordinator_assignment_version", "The version of the current target assignment.")
ROUND = Histogram("shardmon_coordinator_supervision_duration_seconds", "Time of one supervision round.",
                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class ScrapeCoordinator:
    """Owns targets and scrapers; run as an async Ray actor (see :func:`start_coordinator`)."""

    def __init__(self, config: Config, run_id: str = "") -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        #: Names this ingest service's run; a restart of this actor keeps it (Ray passes the same arguments).
        self.run_id = run_id
        scrapers = config.ingest.scrapers
        resumed = None
        if run_id and ray.get_runtime_context().was_current_actor_reconstructed:
            try:
                resumed = load_state(run_id)
            except Exception:  # noqa: BLE001 - no checkpoint to read: the configuration's state, and say so.
                log.exception("coordinator restarted, but its checkpoint could not be read")
        if resumed is not None:
            config, scrapers = resumed["config"], resumed["scrapers"]
            log.info("coordinator restarted: resuming with %d scrapers and the configuration last applied", scrapers)
        self.resumed = resumed is not None
        RESUMED.set(1 if self.resumed else 0)
        self.config = config
        # Static targets at once; service discovery (static groups included) takes over per job as it reports.
        self.configured = targets_from_config(config)
        #: Per job, what discovery found: (discovered labels, the target or None when relabeling dropped it).
        self._discovered: dict[str, list[tuple[dict[str, str], Target | None]]] = {}
        self._job_targets: dict[str, list[Target]] = {}
        self._sd: DiscoveryManager | None = None
        self._rulers = RulerWatch()  # the rulers' metrics addresses, for self-monitoring
        self.scraper_ids = [f"scraper-{i}" for i in range(scrapers)]
        self.metrics_address = serve_own_metrics("coordinator", config)
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
        self._running: dict[str, frozenset[bytes]] = {}  # scraper id -> keys of the targets it was last given
        #: The assignment's keys, computed once per assignment version (a key costs about a microsecond,
        #: and the supervision round would otherwise remake them all every round).
        self._keys: dict[str, frozenset[bytes]] = {}
        self._all_keys: frozenset[bytes] = frozenset()
        self._handover: dict[bytes, int] = {}  # while targets move: key -> when its old scraper last scraped it
        self._lock = asyncio.Lock()  # one change of scrapers or assignment at a time
        self._start_lock = asyncio.Lock()  # start() is idempotent, also when called twice at once
        self._task: asyncio.Task | None = None
        self._refresh_targets()
        self._checkpoint()
        if self.resumed:
            # Start the scrapers now rather than at the service's next nudge (an async actor's
            # constructor runs on its event loop).
            asyncio.get_running_loop().create_task(self.start())

    def _checkpoint(self) -> None:
        """Save what a restart must resume with: the configuration in force and the number of scrapers."""
        if not self.run_id:
            return
        try:
            save_state(self.run_id, self.config, len(self.scraper_ids))
        except Exception:  # noqa: BLE001 - the running state stays right; only a restart would lose it.
            CHECKPOINT_FAILURES.inc()
            log.exception("coordinator checkpoint not written; a restart would resume an older state")

    def _refresh_targets(self) -> None:
        """The configured targets plus, with ``ingest.self_monitoring``, Shardmon's own components
        (scrapers as their metrics addresses become known). A new target set is a new assignment
        version; the hash ring moves only the targets that must move."""
        targets = list(self.configured)
        if self.config.ingest.self_monitoring:
            components = static_components(self.config) + [("coordinator", self.metrics_address, "/metrics")]
            components += [("scraper", info["metrics_address"], "/metrics")
                           for info in self._seen.values() if info.get("metrics_address")]
            components += self._rulers.components()
            targets += self_targets(self.config, components)
        # Targets go to the scrapers that can run them: all of them, but those whose node left (unless
        # that is all of them). The ring moves only the lost scrapers' targets, and moves
        # them back when the scrapers return.
        members = [sid for sid in self.scraper_ids if sid not in self._lost] or list(self.scraper_ids)
        if (self.targets is None or members != self._members
                or (targets != self.targets and [t.key for t in targets] != [t.key for t in self.targets])):
            self.targets = targets
            self._members = members
            self.assignment = assign_targets(targets, members)
            self._keys = {sid: frozenset(t.key for t in ts) for sid, ts in self.assignment.items()}
            self._all_keys = frozenset().union(*self._keys.values())
            self.version += 1
            VERSION.set(self.version)
            TARGETS.set(len(targets))

    def _watch_nodes(self) -> None:
        """Refresh the alive-node list; log nodes that joined or left. The scrapers a leaving node took
        with it are *lost* until they answer again from an alive node: meanwhile their targets go to
        the other scrapers (see :meth:`_refresh_targets`)."""
        nodes = alive_nodes()
        if not nodes:
            return
        eligible = {n["NodeID"] for n in scraper_nodes(nodes, self.config.ingest.scraper_num_cpus)}
        here = ray.get_runtime_context().get_node_id()
        now = {n["NodeID"]: {"node_ip": n.get("NodeManagerAddress", ""), "eligible": n["NodeID"] in eligible,
                             "head": is_head(n), "coordinator": n["NodeID"] == here} for n in nodes}
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
        nodes = scraper_nodes(alive_nodes(), self.config.ingest.scraper_num_cpus)
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
        async with self._start_lock:
            self._place()
            for sid in self.scraper_ids:
                self._scraper(sid)
            await self._supervise_once()
            if self._sd is None:  # Discovery once the scrapers run (static targets are already theirs).
                self._sd = DiscoveryManager(self._on_discovery,
                                            update_interval=self.config.ingest.discovery_update_interval / 1000)
                await self._sd.apply_config(self.config.scrape_configs)
            if self._task is None:
                self._task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_S)
            try:
                await self._supervise_once()
            except Exception:  # noqa: BLE001 - supervision must go on whatever one round met.
                log.exception("supervision round failed")

    async def _check(self, sid: str, withheld: frozenset[bytes] = frozenset()) -> None:
        """Ping ``sid`` and give it its targets if its assignment is not the current one. ``withheld``
        targets are left out for now (another scraper may still run them): the scraper is then given
        the assignment under version -1, so the next round gives it the rest."""
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
                mine = [t for t in self.assignment.get(sid, []) if t.key not in withheld]
                version = self.version if len(mine) == len(self.assignment.get(sid, [])) else -1
                handover = {t.key: self._handover[t.key] for t in mine if t.key in self._handover}
                given_back = await asyncio.wait_for(
                    h.assign.remote(version, mine, self._moving(sid, info.get("targets")), handover), 10 * PING_TIMEOUT_S) or {}
                for key in handover:
                    self._handover.pop(key, None)
                self._handover.update(given_back)
            except (RayError, asyncio.TimeoutError) as exc:
                ASSIGNMENTS.labels("error").inc()
                self._seen[sid] = {"scraper_id": sid, "state": f"assign failed: {exc}"}
                return
            ASSIGNMENTS.labels("ok").inc()
            info = dict(info, assignment_version=version, targets=len(mine))
            self._running[sid] = self._keys.get(sid, frozenset()) if version == self.version else frozenset(t.key for t in mine)
        else:
            self._running[sid] = self._keys.get(sid, frozenset())
        self._seen[sid] = dict(info, state="running")

    def _moving(self, sid: str, running: int | None = None) -> list[bytes]:
        """The keys of the targets that another scraper runs now: should ``sid`` have run them, it
        stops them without staleness markers (their series go on, scraped by the other scraper).
        Only those ``sid`` was last given, when that is known (not after a coordinator restart): a
        scraper's share, rather than every other scraper's targets for each scraper. ``running``: how
        many targets the scraper said it runs (0: nothing to stop, as a new scraper)."""
        own, known = self._keys.get(sid, frozenset()), self._running.get(sid)
        if known is None and running == 0:
            return []
        if known is None:
            return [k for k in self._all_keys if k not in own]
        return [k for k in known if k in self._all_keys and k not in own]

    async def _apply(self) -> None:
        """Give every scraper its part of the current assignment, in two phases: first the scrapers that
        lose targets stop them, then the others start theirs. A moved target is so never scraped by two
        scrapers at once; it resumes at its next phase point (its scrape times hang on its hash, not on
        the scraper), so no interval is skipped but the one a stop may straddle."""
        wanted = {sid: self._keys.get(sid, frozenset()) for sid in self.scraper_ids}
        losing = [sid for sid in self.scraper_ids if self._running.get(sid, frozenset()) - wanted[sid]]
        await asyncio.gather(*(self._check(sid) for sid in losing))
        # A loser that did not answer may still scrape what it lost (unless its node is gone): those
        # targets wait for the next round rather than be scraped twice.
        withheld = frozenset().union(*(self._running.get(sid, frozenset()) - wanted[sid]
                                       for sid in losing if sid not in self._lost))
        if withheld:
            log.info("%d moving targets wait for their old scrapers to let them go", len(withheld))
        # The others start the moved targets, each told when its old scraper last scraped it.
        await asyncio.gather(*(self._check(sid, withheld) for sid in self.scraper_ids if sid not in losing))
        # Entries of scrapers that did not answer stay for the next round (they are few and bounded).
        for key in [k for k in self._handover if k not in self._all_keys]:
            del self._handover[key]

    async def _supervise_once(self) -> None:
        async with self._lock:
            await self._supervise_round()

    async def _supervise_round(self) -> None:
        with ROUND.time():
            await self._rulers.refresh(self.config)
            self._watch_nodes()
            self._refresh_targets()
            await self._apply()
            members = self._members
            self._refresh_targets()
            if self._members != members:  # A lost scraper is back: its targets go back to it now.
                await self._apply()
            states: dict[str, int] = {}
            for info in self._seen.values():
                state = info.get("state", "?").split(":")[0]
                states[state] = states.get(state, 0) + 1
            for state in ("running", "unavailable", "assign failed"):
                SCRAPERS.labels(state).set(states.get(state, 0))
            SCRAPER_COUNT.set(len(self.scraper_ids))

    async def set_scrapers(self, count: int) -> dict:
        """Run ``count`` scrapers from now on (``scraper-0`` ... ``scraper-<count-1>``), moving only the
        targets that must move: to a new scraper, the ~1/N the hash ring gives it; from a
        removed one, its own. Removed scrapers stop their targets first (no staleness markers: the
        series go on elsewhere), then the others take them. Returns ``{"scrapers", "targets", "moved"}``.
        The count is checkpointed: a restarted coordinator resumes with it."""
        if count < 1:
            raise BadRequestError("at least one scraper is needed")
        if count > self.config.ingest.max_scrapers:
            raise BadRequestError(f"count {count} is more than ingest.max_scrapers ({self.config.ingest.max_scrapers})")
        async with self._lock:
            before = {t.key: sid for sid, ts in self.assignment.items() for t in ts}
            new_ids = [f"scraper-{i}" for i in range(count)]
            removed = [sid for sid in self.scraper_ids if sid not in new_ids]
            self.scraper_ids = new_ids
            self._lost -= set(removed)
            self._place()
            added = [sid for sid in new_ids if sid not in self._handles]
            for sid in new_ids:
                self._scraper(sid)
            # New scrapers must be up before targets move to them, or the moved targets would wait.
            for sid in added:
                try:
                    await asyncio.wait_for(self._handles[sid].ping.remote(), 120)
                except (RayError, asyncio.TimeoutError) as exc:
                    log.warning("new scraper %s not answering yet (%s); its targets wait for it", sid, exc)
            self._refresh_targets()
            for sid in removed:
                handle = self._handles.pop(sid, None)
                keys = list(self._running.pop(sid, frozenset()))
                if handle is not None:
                    try:
                        self._handover.update(await asyncio.wait_for(
                            handle.assign.remote(self.version, [], keys), 10 * PING_TIMEOUT_S) or {})
                        # Send what its last scrapes queued before it goes.
                        await asyncio.wait_for(handle.stop.remote(5.0), 10 * PING_TIMEOUT_S)
                    except (RayError, asyncio.TimeoutError) as exc:
                        log.warning("scraper %s did not stop its targets before removal: %s", sid, exc)
                    ray.kill(handle, no_restart=True)
                for table in (self._seen, self._placement, self._node_of):
                    table.pop(sid, None)
            await self._apply()
            after = {t.key: sid for sid, ts in self.assignment.items() for t in ts}
            moved = sum(1 for key, sid in after.items() if key in before and before[key] != sid)
            SCALINGS.inc()
            self._checkpoint()
            log.info("scrapers: %d (removed %s); %d of %d targets moved", count, removed or "none", moved, len(after))
            return {"scrapers": count, "targets": len(after), "moved": moved}

    # -- discovery and reload ----------------------------------------------------------------------

    async def _on_discovery(self, job: str, groups: list[TargetGroup]) -> None:
        """A job's target groups changed: rebuild its targets (relabeling, defaults, target_limit) and
        apply the new assignment at once."""
        sc = next((c for c in self.config.scrape_configs if c.job_name == job), None)
        found: list[tuple[dict[str, str], Target | None]] = []
        targets: list[Target] = []
        if sc is not None and groups:
            options = scrape_options(sc)
            seen: set[bytes] = set()
            for group in groups:
                for labels in group.label_sets():
                    try:
                        target = populate_target(sc, labels, options)
                    except TargetError as exc:  # Prometheus logs such a target and leaves it out
                        log.warning("job %s: target %s left out: %s", job, labels.get("__address__"), exc)
                        continue
                    found.append((dict(labels), target))
                    if target is not None and target.key not in seen:
                        seen.add(target.key)
                        targets.append(target)
        # The discovered targets and their assignment change together (no await in between), so that
        # /api/v1/targets never shows a discovered target without its scraper.
        async with self._lock:
            if sc is None or not groups:
                self._discovered.pop(job, None)
                self._job_targets.pop(job, None)
            else:
                self._discovered[job] = found
                self._job_targets[job] = apply_target_limit(targets, sc.target_limit)
            configured: list[Target] = []
            seen_keys: set[bytes] = set()
            for c in self.config.scrape_configs:
                for t in self._job_targets.get(c.job_name, []):
                    if t.key not in seen_keys:
                        seen_keys.add(t.key)
                        configured.append(t)
            self.configured = configured
            self._refresh_targets()
            await self._apply()

    async def reload(self, config: Config) -> dict:
        """Apply a new configuration: scrape configs (targets added, changed and removed; unchanged
        ones keep their scrape loops) and ``ingest.scrapers`` when the new configuration changes it (a
        runtime scaling otherwise stays; ``ingest.max_scrapers`` bounds it). Other sections need a
        restart. The configuration is checkpointed: a restarted coordinator resumes with it."""
        old = self.config
        self.config = config
        if self._sd is not None:
            await self._sd.apply_config(config.scrape_configs)
        want = config.ingest.scrapers if config.ingest.scrapers != old.ingest.scrapers else len(self.scraper_ids)
        want = min(want, config.ingest.max_scrapers)
        if want != len(self.scraper_ids):
            await self.set_scrapers(want)
        self._checkpoint()
        changed = [name for name in ("shards", "querier", "receiver") if getattr(old, name) != getattr(config, name)]
        if changed:
            log.warning("reload: changes to %s apply only after a restart", ", ".join(changed))
        RELOADS.inc()
        return {"jobs": [c.job_name for c in config.scrape_configs], "restart_needed_for": changed}

    async def targets_api(self, state: str = "any", scrape_pool: str = "") -> dict:
        """``/api/v1/targets``'s ``data``, as Prometheus's, plus each active target's ``scraper``."""
        assignment = self.assignment
        healths = await self.target_health()
        return targets_data(self.config, self._discovered, self.targets or [], assignment, healths, state, scrape_pool)

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
        """Stop supervising, stop every scraper (flushing its queue), then end the actors. The
        checkpoint goes: the next ingest service starts from its configuration file."""
        if self.run_id:
            try:
                delete_state()
            except Exception as exc:  # noqa: BLE001 - a stale checkpoint is ignored by the next run anyway.
                log.warning("coordinator checkpoint not deleted: %s", exc)
        if self._sd is not None:
            await self._sd.stop()
            self._sd = None
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
    Each call is a new run (a new run id): the coordinator resumes from a checkpoint only when Ray
    restarts this actor, never from an earlier service's.

    It runs on the head node: a worker node may leave, the head lives as long as the cluster does. This
    matters: the scrapers are the coordinator's actors and die with it, wherever they run. The affinity is
    hard because a soft one does not hold for an actor that reserves no CPU (Ray places those anywhere)."""
    head = next((n["NodeID"] for n in alive_nodes() if is_head(n)), None)
    strategy = NodeAffinitySchedulingStrategy(head, soft=False) if head else "DEFAULT"
    remote = ray.remote(ScrapeCoordinator)
    handle = remote.options(
        name="shardmon-coordinator", namespace=NAMESPACE, num_cpus=0, max_restarts=-1, max_concurrency=100,
        scheduling_strategy=strategy,
    ).remote(config, uuid.uuid4().hex)
    ray.get(handle.start.remote())
    return handle


def cluster_status(address: str, timeout_s: float = 30.0, token_file: str | None = None) -> dict:
    """Ask the coordinator running on the Ray cluster at ``address`` where its scrapers are: its
    ``scrapers()``, ``nodes()`` and ``assignments()``. Raises LookupError when no coordinator runs there."""
    connect_ray(address, token_file)
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
