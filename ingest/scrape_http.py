"""The HTTP request of a scrape, as Prometheus sends it, and how its failures are worded.

:class:`TargetClient` fetches one target's body: Prometheus 2.53's ``Accept`` header, built from the
target's ``scrape_protocols`` with descending q-values (:func:`accept_header`; by default OpenMetrics
1.0.0, then 0.0.1, then the text format 0.0.4, and the protobuf format first with native histograms),
``Accept-Encoding: gzip``, ``X-Prometheus-Scrape-Timeout-Seconds``,
the scrape config's authentication (credential files re-read on every scrape), proxy, redirects and TLS
settings (the CA, certificate and key files re-read when they change). ``body_size_limit`` counts
uncompressed bytes; a body of the limit or more fails the scrape. Every failure is a
:class:`ScrapeError` worded as Prometheus words it (``Get "<url>": context deadline exceeded``,
``server returned HTTP status 500 Internal Server Error``...), which becomes the target's
``last_error``. Which parser reads the body is the scrape loop's choice (:mod:`shardmon.ingest.scrape_loop`),
from the ``Content-Type`` returned with it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import aiohttp
import yarl

from shardmon.ingest import metrics
from shardmon.ingest.target import Target
from shardmon.model.errors import ShardmonError
from shardmon.model.http_config import TLSConfig
from shardmon.model.httpclient import ClientSettings, authorization_from_config, ssl_context
from shardmon.model.scrape_config import DEFAULT_SCRAPE_PROTOCOLS, SCRAPE_PROTOCOL_HEADERS


def accept_header(protocols: Sequence[str]) -> str:
    """The Accept header Prometheus 2.53 sends for ``scrape_protocols`` (its ``acceptHeader``): each
    protocol's media type with q=0.<w>, w counting down from one more than the number of known
    protocols, then ``*/*`` with the next weight."""
    weight = len(SCRAPE_PROTOCOL_HEADERS) + 1
    parts = []
    for p in protocols:
        parts.append(f"{SCRAPE_PROTOCOL_HEADERS[p]};q=0.{weight}")
        weight -= 1
    parts.append(f"*/*;q=0.{weight}")
    return ",".join(parts)


#: What Prometheus 2.53 asks for by default (without native histograms).
ACCEPT = accept_header(DEFAULT_SCRAPE_PROTOCOLS)
OPENMETRICS = "application/openmetrics-text"
PROTOBUF = "application/vnd.google.protobuf"
USER_AGENT = "Shardmon/0.1"


class ScrapeError(ShardmonError):
    """A scrape that got no body: the message is the target's ``last_error`` (the scrape loop turns it
    into the target's state; it never leaves the loop)."""


def timeout_header(timeout_ms: int) -> str:
    """Seconds as Go's ``strconv.FormatFloat(s, 'f', -1, 64)`` writes them ("10", "1.5")."""
    seconds, ms = divmod(timeout_ms, 1000)
    return f"{seconds}" + (f".{ms:03d}".rstrip("0") if ms else "")


class TargetClient:
    """Fetches the bodies of one target with its scrape config's HTTP settings."""

    def __init__(self, target: Target, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session
        self._client = ClientSettings()
        self._tls: _TLS | None = None
        self.accept = accept_header(target.options.scrape_protocols)
        http = target.options.http
        if http is not None:
            self._client = ClientSettings(authorization=authorization_from_config(http),
                                          server_hostname=http.tls_config.server_name or None,
                                          proxy=http.proxy_url, follow_redirects=http.follow_redirects)
            if http.tls_config != TLSConfig():
                self._tls = _TLS(http.tls_config)

    async def fetch(self) -> tuple[bytes, str]:
        """The body (uncompressed) and Content-Type of one scrape; raises :class:`ScrapeError`."""
        try:
            return await self._fetch()
        except asyncio.TimeoutError:
            raise ScrapeError(f"Get \"{self.target.url}\": context deadline exceeded") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ScrapeError(f"Get \"{self.target.url}\": {exc}") from None

    async def _fetch(self) -> tuple[bytes, str]:
        timeout_s = self.target.timeout_ms / 1000
        kwargs = self._client.request_kwargs({
            "Accept": self.accept,
            "Accept-Encoding": "gzip",
            "User-Agent": USER_AGENT,
            "X-Prometheus-Scrape-Timeout-Seconds": timeout_header(self.target.timeout_ms),
        })
        if self._tls is not None:
            kwargs["ssl"] = self._tls.context()
        url = yarl.URL(self.target.url, encoded=True)
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s), auto_decompress=True,
                                    **kwargs) as resp:
            if resp.status != 200:
                raise ScrapeError(f"server returned HTTP status {resp.status} {resp.reason or ''}".rstrip())
            limit = self.target.options.body_size_limit
            if not limit:
                body = await resp.read()
            else:
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= limit:  # As Prometheus: a body of exactly the limit fails too.
                        metrics.LIMIT_EXCEEDED.labels("body_size_limit").inc()
                        raise ScrapeError("body size limit exceeded")
                body = b"".join(chunks)
            return body, resp.headers.get("Content-Type", "")


class _TLS:
    """The SSL context of a ``tls_config``, made again when the content of one of its files changes (as
    Prometheus reloads the CA and the client certificate; the files are small, reading them per scrape is
    cheap and, unlike their mtime, cannot miss a change)."""

    def __init__(self, tls: TLSConfig) -> None:
        self.tls = tls
        self._seen: tuple | None = None
        self._ctx: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        seen = tuple(_read(p) for p in (self.tls.ca_file, self.tls.cert_file, self.tls.key_file))
        if self._ctx is None or seen != self._seen:
            self._ctx, self._seen = ssl_context(self.tls), seen
        return self._ctx


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None  # ssl_context() reports it
