"""Where the rulers' metrics are, for self-monitoring: the ruler service's ``GET /api/v1/rulers``.

Each ruler actor serves its own ``/metrics`` (``shardmon_rule_*``, ``shardmon_notifications_*``) on a free
port of its node, and that address changes when Ray restarts it. With ``ingest.self_monitoring`` and rule
files, the coordinator asks the ruler service for its rulers now and then (as it learns its scrapers'
addresses from the scrapers) and scrapes each as job ``shardmon``, ``component="ruler"``. The service's own
listener is a static component (:func:`shardmon.ingest.target.static_components`).

While the service does not answer, the last addresses it gave stay (a ruler that went away shows as a
down target, which is what self-monitoring is for); every failed ask is counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
from prometheus_client import Counter

from shardmon.model.config import Config
from shardmon.model.httpclient import InternalClient

log = logging.getLogger(__name__)

#: How often the coordinator asks the ruler service for its rulers (every supervision round while it knows none).
POLL_INTERVAL_S = 10.0
TIMEOUT_S = 3.0

ASKS = Counter("shardmon_coordinator_ruler_lookups_total",
               "Asks to the ruler service for its rulers' metrics addresses (self-monitoring), by result.", ["result"])


def rulers_url(config: Config) -> str | None:
    """``GET /api/v1/rulers`` of the ruler service, when self-monitoring has rulers to look for."""
    if not (config.ingest.self_monitoring and config.rule_files and config.rules.http_address):
        return None
    return f"{InternalClient.from_config(config.internal_client).scheme}://{config.rules.http_address}/api/v1/rulers"


def metrics_addresses(document: dict) -> list[str]:
    """The rulers' metrics addresses in a ``GET /api/v1/rulers`` answer, in ruler order."""
    rulers = sorted(document.get("data") or [], key=lambda r: str(r.get("id", "")))
    return [str(r["metrics_address"]) for r in rulers if r.get("metrics_address")]


class RulerWatch:
    """The rulers' metrics addresses as last learnt from the ruler service."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self._asked_at = 0.0

    def components(self) -> list[tuple[str, str, str]]:
        """Self-monitoring components (:func:`shardmon.ingest.target.self_targets`), one per ruler."""
        return [("ruler", address, "/metrics") for address in self.addresses]

    async def refresh(self, config: Config) -> bool:
        """Ask the ruler service again if :data:`POLL_INTERVAL_S` passed; True when the addresses changed."""
        url = rulers_url(config)
        if url is None:
            changed, self.addresses = bool(self.addresses), []
            return changed
        if self.addresses and time.monotonic() - self._asked_at < POLL_INTERVAL_S:
            return False
        self._asked_at = time.monotonic()
        settings = InternalClient.from_config(config.internal_client).settings
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), **settings.request_kwargs()) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                found = metrics_addresses(json.loads(await resp.read()))
        except (aiohttp.ClientError, OSError, ValueError, KeyError, TypeError, asyncio.TimeoutError) as exc:
            ASKS.labels("error").inc()
            log.debug("the ruler service at %s did not list its rulers: %s", url, exc)
            return False
        ASKS.labels("ok").inc()
        changed, self.addresses = found != self.addresses, found
        return changed
