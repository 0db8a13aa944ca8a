"""The ruler: a Ray actor (async, restarted by Ray when it dies) evaluating the rule groups it owns.

It queries through the querier's engine over the shard fan-out (``shardmon.querier.server.build``, as the
querier process builds them), writes rule output synchronously through the shards' write path (the
:class:`~shardmon.ingest.forwarder.Forwarder`'s ``write_now``, as the receiver writes, so a rule's output is
visible to the rules after it; :mod:`shardmon.rules.appender`), and hands alerts to an :class:`~shardmon.ingest.notifier.Notifier`
configured from ``alerting``. Its groups are those the rule files and the number of rulers give its id
(:mod:`shardmon.rules.assignment`); it reads both from the service's state (:mod:`shardmon.rules.checkpoint`)
when it starts, so a restarted ruler comes back with its current groups, whose alerts restore their ``for``
state. Its own metrics (``shardmon_rule_*``, ``shardmon_notifications_*``, ``shardmon_ruler_*``) are served
on a free port of its node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import ray

from shardmon.ingest.forwarder import Forwarder
from shardmon.ingest.notifier import Notifier
from shardmon.ingest.ray_cluster import node_ip, serve_own_metrics
from shardmon.model.config import Config
from shardmon.model.errors import RuleFileError
from shardmon.querier.rules import engine_query_func
from shardmon.querier.rules.api_json import group_alerts, group_json
from shardmon.querier.server import build
from shardmon.rules import assignment
from shardmon.rules.appender import LoopAppender
from shardmon.rules.checkpoint import load_state
from shardmon.rules.runner import GroupRunner, now_ms
from shardmon.shards.client import ShardConnection

log = logging.getLogger(__name__)


class Ruler:
    """The actor's logic (wrapped by ``ray.remote`` in :mod:`shardmon.rules.service`)."""

    def __init__(self, config: Config, ruler_id: str, run_id: str, rulers: int, texts: dict[str, str]) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        state = load_state(run_id) if run_id else None
        if state is not None:
            config, rulers, texts = state["config"], state["rulers"], state["texts"]
        self.ruler_id, self.run_id = ruler_id, run_id
        self.config, self.rulers, self.texts = config, rulers, texts
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self.started_at = time.time()
        self.metrics_address = serve_own_metrics("ruler", config)
        self.engine, self.fanout = build(config)
        loop = asyncio.get_running_loop()
        self.forwarder = Forwarder(config.shards.nodes, config.ingest, sender_id=f"{ruler_id}.{uuid.uuid4().hex[:12]}",
                                   replication_factor=config.shards.replication_factor,
                                   conn=ShardConnection.of(config))
        self.notifier = Notifier(config.alerting, config.global_.external_labels)
        self.runner = GroupRunner(query=engine_query_func(self.engine), appender=LoopAppender(self.forwarder, loop),
                                  querier=self.fanout, notifier=self.notifier)
        self.last_error = ""
        self._ready = loop.create_task(self._start())

    async def _start(self) -> None:
        await self.notifier.apply_config(self.config.alerting, self.config.global_.external_labels)
        await self._apply(self.config, self.rulers, self.texts)
        log.info("%s %s with %d groups", self.ruler_id, "restarted" if self.restarted else "started",
                 len(self.runner.running))

    async def _apply(self, config: Config, rulers: int, texts: dict[str, str]) -> dict:
        try:
            groups = await asyncio.to_thread(self.runner.load, config, texts)
        except RuleFileError as exc:
            self.last_error = str(exc)
            log.error("%s: rule files not loaded, the running groups stay: %s", self.ruler_id, exc)
            raise
        if config.alerting != self.config.alerting or config.global_.external_labels != self.config.global_.external_labels:
            await self.notifier.apply_config(config.alerting, config.global_.external_labels)
        self.config, self.rulers, self.texts, self.last_error = config, rulers, texts, ""
        counts = await self.runner.apply(groups, assignment.owned(groups.keys(), self.ruler_id, rulers))
        return {"ruler": self.ruler_id, **counts, "groups": len(self.runner.running)}

    async def ready(self) -> dict:
        """Wait until the ruler runs its groups; its :meth:`info`."""
        return await self.info()

    async def apply(self, config: Config, rulers: int, texts: dict[str, str]) -> dict:
        """Evaluate the groups the rule files (``texts``: path -> text, read by the service) and ``rulers`` give
        this ruler (a reload or a rescale):
        counts of groups started, kept, moved away and removed. RuleFileError keeps the running groups."""
        await self._ready
        return await self._apply(config, rulers, texts)

    async def info(self) -> dict:
        """This ruler for ``/api/v1/rulers`` (once it runs its groups)."""
        await self._ready
        return {"id": self.ruler_id, "pid": os.getpid(), "node_ip": node_ip(), "metrics_address": self.metrics_address,
                "groups": sorted(self.runner.running), "restarted": self.restarted,
                "started_at": self.started_at, "last_error": self.last_error,
                "notification_queue": self.notifier.queue_length()}

    async def groups(self) -> list[dict]:
        """``/api/v1/rules`` group objects of this ruler's groups."""
        now = now_ms()
        return [group_json(g, now) for g in self.runner.groups()]

    async def alerts(self) -> list[dict]:
        """``/api/v1/alerts`` alert objects of this ruler's active alerts."""
        return [a for g in self.runner.groups() for a in group_alerts(g)]

    async def evaluated_at(self) -> dict[str, int]:
        """Per group key, the slot (ms) of its last evaluation begun here."""
        return dict(self.runner.evaluated_at)

    async def stop(self) -> None:
        """Stop evaluating (no staleness markers: shutdown or scale-down, the groups live on), send the
        queued notifications and writes."""
        await self._ready
        await self.runner.stop()
        try:
            await self.notifier.flush(5)
        except TimeoutError:
            log.warning("%s: notifications still queued at stop", self.ruler_id)
        await self.notifier.stop()
        await self.forwarder.close()
        self.fanout.close()
