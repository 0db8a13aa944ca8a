"""``http_sd_configs``: target groups fetched from an HTTP endpoint, as Prometheus's ``discovery/http``.

The endpoint is queried at once and then every ``refresh_interval`` (the request timeout is the
refresh interval, as in Prometheus). It must answer 200 with ``Content-Type: application/json`` and a
JSON list of ``{"targets": [...], "labels": {...}}``. The i-th group has source ``"<url>:i"`` and the
group label ``__meta_url``; groups beyond the new length are removed. A failed refresh (connection,
status, content type, body) keeps the last groups, is logged and counted in
``shardmon_sd_http_failures_total``. The request sends ``Accept: application/json`` and
``X-Prometheus-Refresh-Interval-Seconds``, with the configured authentication and TLS settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence

import aiohttp

from shardmon.ingest.discovery.metrics import HTTP_FAILURES
from shardmon.ingest.discovery.targetgroup import TargetGroup, groups_with_meta, parse_groups
from shardmon.model.errors import DiscoveryError
from shardmon.model.httpclient import ClientSettings
from shardmon.model.sd_config import HTTPSDConfig

log = logging.getLogger(__name__)

META_URL = "__meta_url"
_CONTENT_TYPE = re.compile(r'^(?i:application/json(;\s*charset=("utf-8"|utf-8))?)$')

Send = Callable[[Sequence[TargetGroup]], None]


class HTTPDiscoveryError(DiscoveryError):
    """A refresh that failed; the last groups stay."""


class HTTPDiscoverer:
    """Runs one ``http_sd_configs`` entry; :meth:`run` sends group updates until cancelled."""

    def __init__(self, cfg: HTTPSDConfig) -> None:
        self.cfg = cfg
        self.settings = ClientSettings.from_http_config(cfg)
        self._last_len = 0

    async def fetch(self, session: aiohttp.ClientSession) -> list[TargetGroup]:
        """One refresh: the updates to send. Raises :class:`HTTPDiscoveryError` on any failure."""
        interval_s = self.cfg.refresh_interval / 1000
        try:
            kwargs = self.settings.request_kwargs({
                "Accept": "application/json",
                "X-Prometheus-Refresh-Interval-Seconds": _seconds(interval_s),
            })
            async with session.get(self.cfg.url, timeout=aiohttp.ClientTimeout(total=interval_s), **kwargs) as resp:
                if resp.status != 200:
                    raise HTTPDiscoveryError(f"server returned HTTP status {resp.status} {resp.reason or ''}".rstrip())
                ctype = resp.headers.get("Content-Type", "").strip()
                if not _CONTENT_TYPE.match(ctype):
                    raise HTTPDiscoveryError(f"unsupported content type {ctype!r}")
                body = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise HTTPDiscoveryError(f"{type(exc).__name__}: {exc}") from exc
        try:
            data = json.loads(body)
            parsed = parse_groups(data, yaml_scalars=False, strict_fields=False)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise HTTPDiscoveryError(str(exc)) from exc
        groups = groups_with_meta(parsed, self.cfg.url, META_URL)
        n = len(groups)
        removed = [TargetGroup.empty(f"{self.cfg.url}:{i}") for i in range(n, self._last_len)]
        self._last_len = n
        return groups + removed

    async def run(self, send: Send) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    updates = await self.fetch(session)
                except HTTPDiscoveryError as exc:
                    HTTP_FAILURES.inc()
                    log.error("http_sd: refresh of %s failed: %s", self.cfg.url, exc)
                except Exception:  # a bug must not end discovery for the job
                    HTTP_FAILURES.inc()
                    log.exception("http_sd: refresh of %s failed", self.cfg.url)
                else:
                    send(updates)
                await asyncio.sleep(self.cfg.refresh_interval / 1000)


def _seconds(s: float) -> str:
    # As Go's strconv.FormatFloat(s, 'f', -1, 64): "60", "0.5".
    return repr(s).removesuffix(".0") if s == int(s) else repr(s)
