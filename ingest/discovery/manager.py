"""The discovery manager: runs the SD providers of every scrape config and tells a callback when a
job's target groups change (Prometheus's ``discovery.Manager``).

A provider is one SD config entry (all ``static_configs`` of a job together count as one). Each runs
as an asyncio task and sends group updates; the manager keeps, per provider, the latest non-empty
group of each source (an empty group removes its source). When a job's list of groups changes, the
job is marked dirty; a sender task delivers dirty jobs to ``on_update(job_name, groups)``, the first
change right away (after ``coalesce`` seconds to gather a burst) and then at most once every
``update_interval`` seconds (Prometheus: 5 s). A job's list is its providers' groups in configuration
order (static, file, HTTP, Kubernetes), each provider's in the order its sources first appeared. A job
is only delivered when its list differs from the last one delivered.

:meth:`DiscoveryManager.apply_config` may be called again with a new configuration: providers whose
job and configuration are unchanged keep running (and their groups), others are stopped or started;
a job that is gone gets a final ``on_update(job, [])``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shardmon.ingest.discovery.file import DEFAULT_POLL_INTERVAL_S, FileDiscoverer
from shardmon.ingest.discovery.http import HTTPDiscoverer
from shardmon.ingest.discovery.kubernetes import KubernetesDiscoverer
from shardmon.ingest.discovery.metrics import DISCOVERED_TARGETS, UPDATES
from shardmon.ingest.discovery.targetgroup import TargetGroup, static_groups
from shardmon.model.config import ScrapeConfig

log = logging.getLogger(__name__)

DEFAULT_UPDATE_INTERVAL_S = 5.0

OnUpdate = Callable[[str, list[TargetGroup]], Awaitable[None] | None]
Send = Callable[[Sequence[TargetGroup]], None]


class Discoverer(Protocol):
    """What a provider runs: sends group updates through ``send`` until cancelled (or returns)."""

    async def run(self, send: Send) -> None: ...


class StaticDiscoverer:
    """The ``static_configs`` of a job: sends its groups once."""

    def __init__(self, groups: list[TargetGroup]) -> None:
        self.groups = groups

    async def run(self, send: Send) -> None:
        send(self.groups)


@dataclass(eq=False)
class _Provider:
    job: str
    kind: str  # "static", "file", "http", "kubernetes"
    config: Any  # what decides whether a new configuration can keep this provider
    discoverer: Discoverer
    groups: dict[str, TargetGroup] = field(default_factory=dict)
    task: asyncio.Task | None = None


class DiscoveryManager:
    """Runs discovery for a set of scrape configs; see the module docstring.

    ``kubernetes_options`` are passed to every :class:`KubernetesDiscoverer` (e.g. ``backoff_min``,
    ``sa_dir``); ``file_poll_interval`` is how often files are checked for changes."""

    def __init__(self, on_update: OnUpdate, *, update_interval: float = DEFAULT_UPDATE_INTERVAL_S,
                 coalesce: float = 0.05, file_poll_interval: float = DEFAULT_POLL_INTERVAL_S,
                 kubernetes_options: dict[str, Any] | None = None) -> None:
        self.on_update = on_update
        self.update_interval = update_interval
        self.coalesce = min(coalesce, update_interval)
        self.file_poll_interval = file_poll_interval
        self.kubernetes_options = dict(kubernetes_options or {})
        self._providers: dict[str, list[_Provider]] = {}  # job -> providers in configuration order
        self._delivered: dict[str, list[TargetGroup]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task | None = None
        self._stopped = False

    # --- configuration ---------------------------------------------------------------------------

    def _wanted(self, sc: ScrapeConfig) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if sc.static_configs:
            out.append(("static", tuple(sc.static_configs)))
        out += [("file", c) for c in sc.file_sd_configs]
        out += [("http", c) for c in sc.http_sd_configs]
        out += [("kubernetes", c) for c in sc.kubernetes_sd_configs]
        return out

    def _discoverer(self, sc: ScrapeConfig, kind: str, config: Any) -> Discoverer:
        if kind == "static":
            return StaticDiscoverer(static_groups(sc))
        if kind == "file":
            return FileDiscoverer(config, poll_interval=self.file_poll_interval)
        if kind == "http":
            return HTTPDiscoverer(config)
        return KubernetesDiscoverer(config, **self.kubernetes_options)

    async def apply_config(self, scrape_configs: Sequence[ScrapeConfig]) -> None:
        """Start (or, called again, update) discovery for these scrape configs."""
        if self._stopped:
            raise RuntimeError("the discovery manager was stopped")
        new: dict[str, list[_Provider]] = {}
        to_stop: list[_Provider] = []
        for sc in scrape_configs:
            old = list(self._providers.get(sc.job_name, []))
            providers = []
            for kind, config in self._wanted(sc):
                kept = next((p for p in old if p.kind == kind and p.config == config), None)
                if kept is not None:
                    old.remove(kept)
                    providers.append(kept)
                else:
                    providers.append(_Provider(sc.job_name, kind, config, self._discoverer(sc, kind, config)))
            to_stop += old
            new[sc.job_name] = providers
        for job, providers in self._providers.items():
            if job not in new:
                to_stop += providers
        for p in to_stop:
            if p.task is not None:
                p.task.cancel()
        await asyncio.gather(*(p.task for p in to_stop if p.task is not None), return_exceptions=True)
        gone = set(self._providers) - set(new)
        self._providers = new
        self._dirty |= gone | set(new)
        for providers in new.values():
            for p in providers:
                if p.task is None:
                    p.task = asyncio.create_task(self._run(p), name=f"sd-{p.job}-{p.kind}")
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="sd-sender")
        self._wake.set()

    async def stop(self) -> None:
        """Stop every provider and the sender (no further callbacks)."""
        self._stopped = True
        tasks = [p.task for ps in self._providers.values() for p in ps if p.task is not None]
        if self._sender is not None:
            tasks.append(self._sender)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sender = None

    async def __aenter__(self) -> DiscoveryManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- state -----------------------------------------------------------------------------------

    def groups(self, job: str) -> list[TargetGroup]:
        """The job's current non-empty groups, in delivery order."""
        return [g for p in self._providers.get(job, []) for g in p.groups.values()]

    def jobs(self) -> list[str]:
        return list(self._providers)

    async def _run(self, p: _Provider) -> None:
        def send(updates: Sequence[TargetGroup]) -> None:
            if not any(q is p for q in self._providers.get(p.job, ())):
                return  # a provider being replaced
            changed = False
            for g in updates:
                if g.targets:
                    if p.groups.get(g.source) != g:
                        p.groups[g.source] = g
                        changed = True
                elif p.groups.pop(g.source, None) is not None:
                    changed = True
            if changed:
                self._dirty.add(p.job)
                self._wake.set()

        try:
            await p.discoverer.run(send)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("discovery provider %s of job %s failed; its groups stay as they are", p.kind, p.job)

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.coalesce)
            self._wake.clear()
            jobs, self._dirty = self._dirty, set()
            for job in sorted(jobs):
                await self._deliver(job)
            await asyncio.sleep(max(0.0, self.update_interval - self.coalesce))

    async def _deliver(self, job: str) -> None:
        groups = self.groups(job)
        if job not in self._providers:
            if job not in self._delivered:
                return
            self._delivered.pop(job)
            try:
                DISCOVERED_TARGETS.remove(job)
            except KeyError:
                pass
        elif self._delivered.get(job) == groups:
            return
        else:
            self._delivered[job] = groups
            DISCOVERED_TARGETS.labels(job=job).set(sum(len(g.targets) for g in groups))
        try:
            result = self.on_update(job, list(groups))
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            UPDATES.labels(outcome="error").inc()
            log.exception("discovery: on_update for job %s failed; it is retried at the next update", job)
            if job in self._providers:
                self._delivered.pop(job, None)
                self._dirty.add(job)
                self._wake.set()
        else:
            UPDATES.labels(outcome="ok").inc()
