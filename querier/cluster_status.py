"""``GET /api/v1/status/cluster``: Shardmon's own view of the distributed system, for the Cluster page.

Gathered at each call, concurrently and with a short timeout per request, from what the components
already expose (no RPC of their own): each shard's ``/metrics`` (``shards.nodes[].metrics_address``), the
ingest service's ``GET /api/v1/scrapers`` and then each scraper's ``/metrics``, the ruler service's
``GET /api/v1/rulers`` and each ruler's ``/metrics``, the receiver's ``/-/healthy``, and the querier's own
slow query log. Requests carry the ``internal_client`` settings (scheme, TLS, credentials), as the
querier's passthroughs do. A component that does not answer shows as ``down`` with its error; the
document never fails for it. Each read is counted in
``shardmon_querier_cluster_status_fetches_total{component, outcome}``.

The document (Prometheus's envelope, ``{"status": "success", "data": ...}``)::

    {"time", "replicationFactor",
     "components": [{"component", "address", "health", "lastError"}],   # querier, ingest, rulers, receiver
     "shards": [{"id", "address", "metricsAddress", "health", "lastError", "activeSeries", "series",
                 "samplesPerSecond", "walEntries", "blocks", "blockBytes", "bytesPerSample",
                 "redisMemoryBytes", "redisMaxMemoryBytes", "redisReplicas", "redisAppendOnly", "redisDataLost", ...}],
     "scrapers": [{"id", "state", "health", "lastError", "nodeId", "nodeIp", "pid", "targets",
                   "metricsAddress", "eventLoopLagSeconds", "queuedSamples", "samplesPerSecond", ...}],
     "rulers": [{"id", "health", "lastError", "nodeIp", "pid", "groups", "lagSeconds", "missedIterations", ...}],
     "totals": {"shards", "shardsUp", "activeSeries", "series", "samplesPerSecond", "redisMemoryBytes"},
     "slowQueries": {"thresholdSeconds", "size", "queries": [...]}}

``health`` is ``up`` (answered), ``down`` (did not: ``lastError`` says why) or ``unknown`` (nothing to ask:
a shard without ``metrics_address``). ``samplesPerSecond`` is the counter's increase since an earlier
call (over up to the last minute; None on the first call).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from shardmon.model.httpclient import InternalClient
from shardmon.querier import metrics
from shardmon.querier.cluster_figures import (
    RateKeeper,
    parse_metrics,
    ruler_figures,
    scraper_figures,
    shard_figures,
    totals,
)
from shardmon.querier.slow_queries import SlowQueryLog, rfc3339

#: How long one request to a component may take before it shows as down.
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ShardNode:
    id: int
    address: str
    metrics_address: str | None


@dataclass
class ClusterStatus:
    """Where the components are and how to ask them; :meth:`document` gathers the status."""

    shards: list[ShardNode]
    replication_factor: int = 1
    querier_address: str = ""
    ingest_api: str | None = None  # ingest.http_address (None: not configured)
    rules_api: str | None = None  # rules.http_address when there are rule files
    receiver_address: str | None = None  # receiver.http_address (None: no receiver section)
    client: InternalClient = field(default_factory=InternalClient)
    slow_queries: SlowQueryLog | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    rates: RateKeeper = field(default_factory=RateKeeper)

    @classmethod
    def from_config(cls, config, slow_queries: SlowQueryLog | None = None) -> ClusterStatus:
        return cls(
            shards=[ShardNode(n.id, n.address, n.metrics_address) for n in config.shards.nodes],
            replication_factor=config.shards.replication_factor,
            querier_address=config.querier.http_address,
            ingest_api=config.ingest.http_address,
            rules_api=config.rules.http_address if config.rule_files else None,
            receiver_address=config.receiver.http_address if config.receiver else None,
            client=InternalClient.from_config(config.internal_client),
            slow_queries=slow_queries,
        )

    # -- reading the components ---------------------------------------------------------------------

    async def _get(self, session: aiohttp.ClientSession, address: str, path: str, component: str) -> str:
        """The body of ``GET path`` at ``address``; raises RuntimeError with a person's words when it fails."""
        url = f"{self.client.scheme}://{address}{path}"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                   **self.client.settings.request_kwargs()) as resp:
                body = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"GET {url}: HTTP {resp.status}: {body.strip()[:200]}")
        except asyncio.TimeoutError:
            metrics.CLUSTER_FETCHES.labels(component, "error").inc()
            raise RuntimeError(f"GET {url}: no answer within {self.timeout_s:g}s") from None
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            metrics.CLUSTER_FETCHES.labels(component, "error").inc()
            raise RuntimeError(str(exc) if isinstance(exc, RuntimeError) else f"GET {url}: {exc}") from None
        metrics.CLUSTER_FETCHES.labels(component, "ok").inc()
        return body

    async def _api_data(self, session, address: str, path: str, component: str):
        body = await self._get(session, address, path, component)
        try:
            doc = json.loads(body)
            return doc["data"]
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(f"GET {address}{path}: not a Prometheus API answer: {body[:200]!r}") from None

    async def _metrics(self, session, address: str, component: str):
        text = await self._get(session, address, "/metrics", component)
        try:
            return parse_metrics(text)
        except ValueError as exc:
            raise RuntimeError(f"{address}/metrics: not a Prometheus text exposition: {exc}") from None

    async def _shard(self, session, node: ShardNode) -> dict:
        out = {"id": node.id, "address": node.address, "metricsAddress": node.metrics_address or "",
               "health": "unknown", "lastError": "", "samplesPerSecond": None}
        if not node.metrics_address:
            out["lastError"] = f"shards.nodes: shard {node.id} has no metrics_address to read"
            return out
        try:
            samples = await self._metrics(session, node.metrics_address, "shard")
        except RuntimeError as exc:
            return dict(out, health="down", lastError=str(exc))
        figures = shard_figures(samples)
        rate = self.rates.rate(("shard", node.id), time.monotonic(), figures["samplesAppendedTotal"])
        return dict(out, **figures, health="up", samplesPerSecond=rate)

    async def _scraper(self, session, info: dict) -> dict:
        sid = str(info.get("scraper_id", ""))
        state = str(info.get("state", "unknown"))
        out = {"id": sid, "state": state, "health": "up" if state == "running" else "down",
               "lastError": "" if state == "running" else state, "nodeId": info.get("node_id") or "",
               "nodeIp": info.get("node_ip") or "", "placedOn": info.get("placed_on") or "",
               "pid": info.get("pid"), "incarnation": info.get("incarnation"), "targets": info.get("targets"),
               "metricsAddress": info.get("metrics_address") or "", "eventLoopLagSeconds": None,
               "queuedSamples": None, "samplesDroppedTotal": None, "samplesPerSecond": None}
        if state != "running" or not out["metricsAddress"]:
            return out
        try:
            samples = await self._metrics(session, out["metricsAddress"], "scraper")
        except RuntimeError as exc:
            return dict(out, health="down", lastError=str(exc))
        figures = scraper_figures(samples)
        rate = self.rates.rate(("scraper", sid, out["incarnation"]), time.monotonic(), figures.pop("samplesScrapedTotal"))
        return dict(out, **figures, samplesPerSecond=rate)

    async def _ruler(self, session, info: dict) -> dict:
        out = {"id": str(info.get("id", "")), "health": "up", "lastError": info.get("last_error") or "",
               "nodeIp": info.get("node_ip") or "", "pid": info.get("pid"), "groups": list(info.get("groups") or []),
               "restarted": info.get("restarted"), "notificationQueue": info.get("notification_queue"),
               "metricsAddress": info.get("metrics_address") or "", "lagSeconds": None, "missedIterations": None,
               "evaluationFailures": None}
        if not out["metricsAddress"]:
            return out
        try:
            samples = await self._metrics(session, out["metricsAddress"], "ruler")
        except RuntimeError as exc:
            return dict(out, health="down", lastError=str(exc))
        return dict(out, **ruler_figures(samples, time.time()))

    async def _list_then_each(self, session, address: str | None, path: str, component: str, each) -> tuple[dict, list]:
        """A service's list (``/api/v1/scrapers``, ``/api/v1/rulers``), then each member read concurrently."""
        status = {"component": component, "address": address or "", "health": "unknown", "lastError": ""}
        if not address:
            return dict(status, lastError="not configured"), []
        try:
            listed = await self._api_data(session, address, path, component)
        except RuntimeError as exc:
            return dict(status, health="down", lastError=str(exc)), []
        members = await asyncio.gather(*(each(session, m) for m in listed if isinstance(m, dict)))
        return dict(status, health="up"), list(members)

    async def _receiver(self, session) -> dict:
        status = {"component": "receiver", "address": self.receiver_address or "", "health": "unknown",
                  "lastError": ""}
        if not self.receiver_address:
            return dict(status, lastError="not configured")
        try:
            await self._get(session, self.receiver_address, "/-/healthy", "receiver")
        except RuntimeError as exc:
            return dict(status, health="down", lastError=str(exc))
        return dict(status, health="up")

    # -- the document ---------------------------------------------------------------------------------

    async def document(self) -> dict:
        """The whole status, every component asked at once; never raises for a component."""
        async with aiohttp.ClientSession() as session:
            shards, (ingest, scrapers), (rulers_api, rulers), receiver = await asyncio.gather(
                asyncio.gather(*(self._shard(session, n) for n in self.shards)),
                self._list_then_each(session, self.ingest_api, "/api/v1/scrapers", "ingest", self._scraper),
                self._list_then_each(session, self.rules_api, "/api/v1/rulers", "rulers", self._ruler),
                self._receiver(session),
            )
        shards = list(shards)
        self.rates.forget({("shard", s["id"]) for s in shards}
                          | {("scraper", s["id"], s["incarnation"]) for s in scrapers})
        querier = {"component": "querier", "address": self.querier_address, "health": "up", "lastError": ""}
        return {
            "time": rfc3339(time.time()),
            "replicationFactor": self.replication_factor,
            "components": [querier, ingest, rulers_api, receiver],
            "shards": shards,
            "scrapers": sorted(scrapers, key=lambda s: s["id"]),
            "rulers": sorted(rulers, key=lambda r: r["id"]),
            "totals": totals(shards),
            "slowQueries": self.slow_queries.to_json() if self.slow_queries is not None
            else {"thresholdSeconds": 0, "size": 0, "queries": []},
        }

    async def handler(self, request: web.Request) -> web.Response:
        """``GET /api/v1/status/cluster``."""
        data = await self.document()
        return web.Response(text=json.dumps({"status": "success", "data": data}), content_type="application/json")


__all__ = ["DEFAULT_TIMEOUT_S", "ClusterStatus", "ShardNode"]
