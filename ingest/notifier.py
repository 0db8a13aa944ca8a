"""The Alertmanager notifier, as Prometheus 2.42's ``notifier.Manager``: alerts in, batches out to
every Alertmanager.

:meth:`Notifier.send` takes a list of :class:`shardmon.model.notification.Alert` (what a rule evaluator
hands over; thread-safe, never blocks): each alert gets the external labels it lacks (a label with an
empty value counts as missing), then ``alert_relabel_configs`` (an alert relabeled to nothing is dropped
and counted in ``shardmon_notifications_relabel_dropped_total``), then joins a bounded queue
(``alerting.notification_queue_capacity``); when it is full the oldest alerts are dropped and counted in
``shardmon_notifications_dropped_total``.

:meth:`Notifier.run` (an asyncio task) takes batches of at most :data:`MAX_BATCH_SIZE` alerts off the
queue and posts each, as one Alertmanager API v2 JSON body, to every current Alertmanager of every
``alertmanagers`` entry in parallel, each with its entry's timeout and HTTP settings. A batch no
Alertmanager took is dropped and counted (``shardmon_notifications_dropped_total``, as Prometheus: also
when there is no Alertmanager at all); each failed post counts in ``..._errors_total{alertmanager}``.
``..._sent_total{alertmanager}`` counts the alerts of every post, failed ones included, exactly as
Prometheus counts ``prometheus_notifications_sent_total``.

The Alertmanagers come from each entry's ``static_configs`` and service discovery, run by a
:class:`~shardmon.ingest.discovery.manager.DiscoveryManager` (entry ``i`` is the discovery job
``config-i``, Prometheus's name), through :mod:`shardmon.ingest.alertmanagers`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import aiohttp
from prometheus_client import Counter, Gauge, Summary

from shardmon.ingest.alertmanagers import AlertmanagerSet
from shardmon.ingest.discovery.manager import DiscoveryManager
from shardmon.ingest.discovery.targetgroup import TargetGroup
from shardmon.ingest.relabel import Relabeler
from shardmon.model.alerting_config import AlertingConfig
from shardmon.model.errors import NotificationError
from shardmon.model.notification import Alert, openapi_json

__all__ = ["MAX_BATCH_SIZE", "Notifier", "with_external_labels"]

log = logging.getLogger(__name__)

#: Alerts per request, at most (Prometheus's ``maxBatchSize``).
MAX_BATCH_SIZE = 64

LATENCY = Summary("shardmon_notifications_latency_seconds",
                  "Latency of sending alert notifications, per Alertmanager.", ["alertmanager"])
ERRORS = Counter("shardmon_notifications_errors_total",
                 "Total number of errors sending alert notifications, per Alertmanager.", ["alertmanager"])
SENT = Counter("shardmon_notifications_sent_total",
               "Total number of alerts sent, per Alertmanager (failed sends included, as Prometheus counts).",
               ["alertmanager"])
DROPPED = Counter("shardmon_notifications_dropped_total",
                  "Total number of alerts dropped: the queue was full, or no Alertmanager took their batch.")
RELABEL_DROPPED = Counter("shardmon_notifications_relabel_dropped_total",
                          "Alerts not sent because alert_relabel_configs dropped them.")
QUEUE_LENGTH = Gauge("shardmon_notifications_queue_length", "The number of alert notifications in the queue.")
QUEUE_CAPACITY = Gauge("shardmon_notifications_queue_capacity", "The capacity of the alert notifications queue.")
DISCOVERED = Gauge("shardmon_notifications_alertmanagers_discovered",
                   "The number of alertmanagers discovered and active.")


def with_external_labels(labels: Mapping[str, str], external: Mapping[str, str]) -> dict[str, str]:
    """``labels`` with each external label it lacks or has empty (Prometheus's ``Manager.Send``)."""
    out = dict(labels)
    for name, value in external.items():
        if not out.get(name):
            out[name] = value
    return out


class Notifier:
    """Sends alerts to Alertmanagers; see the module docstring. Create it, ``await apply_config(...)``
    inside a running event loop (starts discovery and the sending task), ``send`` alerts from any
    thread, ``await stop()`` at the end."""

    def __init__(self, alerting: AlertingConfig | None = None, external_labels: Mapping[str, str] | None = None, *,
                 discovery_update_interval: float = 5.0) -> None:
        alerting = alerting or AlertingConfig()
        self._lock = threading.Lock()
        self._queue: deque[Alert] = deque()
        self._capacity = alerting.notification_queue_capacity
        self._external = dict(external_labels or {})
        self._relabel = Relabeler(alerting.alert_relabel_configs)
        self._sets: dict[str, AlertmanagerSet] = {}
        self._discovery_update_interval = discovery_update_interval
        self._discovery: DiscoveryManager | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._more: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self.alerting = alerting
        QUEUE_CAPACITY.set(self._capacity)
        QUEUE_LENGTH.set_function(self.queue_length)
        DISCOVERED.set_function(lambda: len(self.alertmanagers()))

    # --- configuration -----------------------------------------------------------------------------

    async def apply_config(self, alerting: AlertingConfig, external_labels: Mapping[str, str] | None = None) -> None:
        """Take a (new) ``alerting`` section and external labels; (re)start discovery of the Alertmanagers
        and, the first time, the sending task. Alerts already queued stay queued."""
        self._start()
        with self._lock:
            self.alerting = alerting
            self._external = dict(external_labels or {})
            self._relabel = Relabeler(alerting.alert_relabel_configs)
            self._capacity = alerting.notification_queue_capacity
        QUEUE_CAPACITY.set(self._capacity)
        self._sets = {f"config-{i}": AlertmanagerSet(cfg) for i, cfg in enumerate(alerting.alertmanagers)}
        if self._discovery is None:
            self._discovery = DiscoveryManager(self._on_groups, update_interval=self._discovery_update_interval)
        jobs = [SimpleNamespace(job_name=name, **{f: getattr(s.cfg, f) for f in _SD_FIELDS})
                for name, s in self._sets.items()]
        await self._discovery.apply_config(jobs)  # type: ignore[arg-type]

    def _on_groups(self, job: str, groups: list[TargetGroup]) -> None:
        ams = self._sets.get(job)
        if ams is None:
            log.error("couldn't sync alert manager set: invalid id: %s", job)
            return
        for url in ams.sync(groups):
            SENT.labels(url)  # Prometheus initialises both counters at 0 for every Alertmanager.
            ERRORS.labels(url)

    def alertmanagers(self) -> list[str]:
        """The URLs alerts are posted to now, entry by entry."""
        return [url for s in list(self._sets.values()) for url in s.urls]

    def dropped_alertmanagers(self) -> list[dict[str, str]]:
        """The label sets of the Alertmanagers relabeling dropped."""
        return [lb for s in list(self._sets.values()) for lb in s.dropped]

    # --- the queue ---------------------------------------------------------------------------------

    def queue_length(self) -> int:
        return len(self._queue)

    def send(self, alerts: Sequence[Alert]) -> None:
        """Queue alerts for sending (external labels and alert relabeling applied now); any thread."""
        with self._lock:
            out: list[Alert] = []
            for a in alerts:
                labels = self._relabel(with_external_labels(a.labels, self._external))
                if labels is None:
                    RELABEL_DROPPED.inc()
                    continue
                out.append(Alert(labels.to_dict(), a.annotations, a.starts_at_ms, a.ends_at_ms, a.generator_url))
            if not out:
                return
            over = len(out) - self._capacity
            if over > 0:
                log.warning("alert batch larger than queue capacity, dropping %d alerts", over)
                DROPPED.inc(over)
                out = out[over:]
            over = len(self._queue) + len(out) - self._capacity
            if over > 0:
                log.warning("alert notification queue full, dropping %d alerts", over)
                DROPPED.inc(over)
                for _ in range(over):
                    self._queue.popleft()
            self._queue.extend(out)
        self._signal()

    def next_batch(self) -> list[Alert]:
        """Take the oldest :data:`MAX_BATCH_SIZE` alerts (or all) off the queue."""
        with self._lock:
            n = min(MAX_BATCH_SIZE, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _signal(self) -> None:
        loop, more = self._loop, self._more
        if loop is None or more is None or loop.is_closed():
            return  # not started: the alerts wait in the queue
        try:
            if asyncio.get_running_loop() is loop:
                more.set()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(more.set)

    # --- sending -----------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._more = asyncio.Event()
        self._idle = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self.run(), name="notifier")
        if self._queue:
            self._more.set()

    async def run(self) -> None:
        """Send batches while there are alerts (Prometheus's ``Manager.Run``)."""
        assert self._more is not None and self._idle is not None
        while True:
            if not self._queue:
                self._idle.set()
            await self._more.wait()
            self._more.clear()
            self._idle.clear()
            batch = self.next_batch()
            try:
                ok = await self.send_all(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sending a batch of %d alerts failed", len(batch))
                ok = False
            if not ok:
                DROPPED.inc(len(batch))
            if self._queue:
                self._more.set()

    async def send_all(self, batch: Sequence[Alert]) -> bool:
        """Post one batch to every Alertmanager in parallel; True if at least one took it."""
        if not batch:
            return True
        assert self._session is not None
        body = openapi_json(batch)
        begin = time.monotonic()

        async def one(ams: AlertmanagerSet, url: str) -> bool:
            try:
                await ams.post(self._session, url, body)  # type: ignore[arg-type]
                ok = True
            except NotificationError as exc:
                log.error("error sending %d alerts to %s: %s", len(batch), url, exc)
                ERRORS.labels(url).inc()
                ok = False
            LATENCY.labels(url).observe(time.monotonic() - begin)
            SENT.labels(url).inc(len(batch))
            return ok

        results = await asyncio.gather(*(one(s, url) for s in list(self._sets.values()) for url in list(s.urls)))
        return any(results)

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the queue is empty and the last batch has been handled (tests, shutdown)."""
        assert self._idle is not None and self._more is not None
        deadline = time.monotonic() + timeout_s
        while self._queue or not self._idle.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("the notification queue did not drain")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop sending and discovering (alerts still queued are not sent)."""
        if self._discovery is not None:
            await self._discovery.stop()
            self._discovery = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._loop = None

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


_SD_FIELDS = ("static_configs", "file_sd_configs", "http_sd_configs", "kubernetes_sd_configs")
