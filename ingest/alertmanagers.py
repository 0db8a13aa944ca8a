"""The Alertmanagers of one ``alerting.alertmanagers`` entry and how a batch of alerts is posted to them,
as Prometheus 2.42's ``notifier.alertmanagerSet``.

:func:`alertmanager_urls` turns target groups (static or discovered) into Alertmanager URLs: each target's
labels (its own, then ``__scheme__`` set to the entry's ``scheme`` and ``__alerts_path__`` to
``<path_prefix>/api/v2/alerts``, then the group's labels it lacks) go through the entry's
``relabel_configs``; one relabeled to nothing is dropped; the URL is
``<__scheme__>://<__address__><__alerts_path__>`` (an address holding a ``/`` is an error for the whole
group, as in Prometheus). :class:`AlertmanagerSet` keeps the deduplicated URLs of an entry's current groups
and posts a JSON body to one of them with the entry's timeout and ``<http_config>`` (basic auth,
authorization, TLS, proxy: the settings scrapes use, :class:`shardmon.model.httpclient.ClientSettings`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import aiohttp
import yarl

from shardmon.ingest.discovery.targetgroup import TargetGroup
from shardmon.ingest.relabel import process as relabel
from shardmon.model.alerting_config import ALERTS_PATH_LABEL, AlertmanagerConfig
from shardmon.model.errors import NotificationError
from shardmon.model.httpclient import ClientSettings

log = logging.getLogger(__name__)

__all__ = ["AlertmanagerSet", "alertmanager_urls", "post_alerts"]

ADDRESS = "__address__"
SCHEME = "__scheme__"
USER_AGENT = "Shardmon/0.1"


def alertmanager_urls(group: TargetGroup, cfg: AlertmanagerConfig) -> tuple[list[str], list[dict[str, str]]]:
    """The URLs of a group's Alertmanagers and the label sets relabeling dropped (Prometheus's
    ``AlertmanagerFromGroup``); a ValueError for an address that is a URL."""
    kept: list[str] = []
    dropped: list[dict[str, str]] = []
    for target in group.targets:
        lb = dict(target)
        lb[SCHEME] = cfg.scheme
        lb[ALERTS_PATH_LABEL] = cfg.alerts_path()
        for name, value in group.labels.items():
            if name not in target:
                lb[name] = value
        out = relabel(lb, cfg.relabel_configs) if cfg.relabel_configs else lb
        if out is None:
            dropped.append(lb)
            continue
        out = dict(out)
        address = out.get(ADDRESS, "")
        if "/" in address:
            raise ValueError(f"{address!r} is not a valid hostname")
        kept.append(f"{out.get(SCHEME, '')}://{address}{out.get(ALERTS_PATH_LABEL, '')}")
    return kept, dropped


class AlertmanagerSet:
    """One ``alertmanagers`` entry: its configuration, HTTP client settings and current Alertmanagers."""

    def __init__(self, cfg: AlertmanagerConfig) -> None:
        self.cfg = cfg
        self.client = ClientSettings.from_http_config(cfg.http_client_config())
        self.urls: list[str] = []
        self.dropped: list[dict[str, str]] = []

    def sync(self, groups: Iterable[TargetGroup]) -> list[str]:
        """Take the Alertmanagers of these groups (a group with a bad address is skipped, logged, as in
        Prometheus); returns the URLs, deduplicated in order."""
        urls: list[str] = []
        dropped: list[dict[str, str]] = []
        for g in groups:
            try:
                kept, gone = alertmanager_urls(g, self.cfg)
            except ValueError as exc:
                log.error("creating discovered Alertmanagers of group %r failed: %s", g.source, exc)
                continue
            urls += kept
            dropped += gone
        self.urls = list(dict.fromkeys(urls))
        self.dropped = dropped
        return self.urls

    async def post(self, session: aiohttp.ClientSession, url: str, body: bytes) -> None:
        """Post ``body`` to one Alertmanager; raises :class:`NotificationError` unless it answers 2xx."""
        await post_alerts(session, url, body, self.client, self.cfg.timeout / 1000)


async def post_alerts(session: aiohttp.ClientSession, url: str, body: bytes, client: ClientSettings,
                      timeout_s: float) -> None:
    """``POST url`` with a JSON ``body``; :class:`NotificationError` on a non-2xx answer, a timeout or a
    connection failure, worded as Prometheus words them."""
    kwargs = client.request_kwargs({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        async with session.post(yarl.URL(url, encoded=True), data=body, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                **kwargs) as resp:
            await resp.read()
            if resp.status // 100 != 2:
                raise NotificationError(f"bad response status {resp.status} {resp.reason or ''}".rstrip())
    except asyncio.TimeoutError:
        raise NotificationError(f"Post \"{url}\": context deadline exceeded") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise NotificationError(f"Post \"{url}\": {exc}") from None
