"""The scrape loop: one per target, pulling ``/metrics`` over HTTP as Prometheus does.

Each loop scrapes at fixed points in time, ``offset + k * interval`` where the offset comes from the
target's hash, so a scraper's targets spread over the interval and a target keeps its phase when it
moves or its scraper restarts. A scrape's samples go to an :class:`~model.storage.Appender` as one
columnar batch, together with the synthetic series ``up``, ``scrape_duration_seconds``,
``scrape_samples_scraped`` and ``scrape_samples_post_metric_relabeling``.

A failed scrape is state, not an exception: ``up`` is 0 and the target's ``last_error`` says why.
Series that vanish from a target, and all series of a target whose scrape fails or which is removed,
get a staleness marker, so queries stop seeing them at once rather than five minutes later.

Series labels are derived once per series (the parser's per-target cache): the target's labels are
attached, and on a conflict the exposed label is renamed ``exported_<name>`` unless ``honor_labels``
is set, as in Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

import aiohttp
import numpy as np

from ingest import metrics
from ingest.exposition import NO_TIMESTAMP, SeriesCache, parse_text
from ingest.target import Target
from model.errors import ExpositionError
from model.hashing import offset_ms
from model.labels import METRIC_NAME, Labels, series_id_of
from model.samples import F64, I64, STALE_NAN, U32, U64, SampleBatch, SeriesTable
from model.storage import Appender

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
USER_AGENT = "Shardmon/0.1"
METADATA_REFRESH_S = 600.0
# The 0.0.4 type names as /api/v1/metadata shows them ("untyped" is "unknown" there).
_METADATA_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
                   "untyped": "unknown"}
SYNTHETIC = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling")


class TargetHealth(NamedTuple):
    """What the last scrape of a target found (as Prometheus's /api/v1/targets reports it)."""

    url: str
    labels: dict[str, str]
    health: str  # "up", "down" or "unknown"
    last_error: str
    last_scrape_ms: int
    last_duration_s: float
    samples: int


def attach_target_labels(exposed: Labels, target: Target) -> Labels:
    """The final labels of an exposed series: the target's labels added, conflicts per honor_labels."""
    d = dict(exposed)
    for name, value in target.labels:
        if name in d:
            if target.honor_labels:
                continue
            d[f"exported_{name}"] = d[name]
        d[name] = value
    return Labels.from_dict(d)


class _Table:
    """The series a target exposes, in the parser cache's order, then the synthetic series.

    Rebuilt only when the parser cache gains series or renumbers them; between those, every scrape
    sends the same :class:`SeriesTable` object, so the forwarder's split by shard is computed once.
    """

    def __init__(self, syn_ids: np.ndarray, syn_keys: list[bytes]) -> None:
        self.ids = np.empty(0, U64)  # cache part only
        self.keys: list[bytes] = []
        self.generation = -1
        self.syn_ids, self.syn_keys = syn_ids, syn_keys
        self.table = SeriesTable.from_keys(syn_ids, syn_keys)

    @property
    def n_cache(self) -> int:
        return len(self.keys)

    def sync(self, cache: SeriesCache, target: Target) -> bool:
        """Follow the cache; returns True when the table was rebuilt with a new numbering."""
        renumbered = self.generation != cache.generation
        if renumbered:
            self.ids, self.keys, self.generation = np.empty(0, U64), [], cache.generation
        labels = cache.labels
        if len(self.keys) < len(labels):
            new_keys = [attach_target_labels(ls, target).canonical() for ls in labels[len(self.keys) :]]
            self.keys.extend(new_keys)
            self.ids = np.concatenate((self.ids, np.fromiter((series_id_of(k) for k in new_keys), U64, len(new_keys))))
            self.table = SeriesTable.from_keys(np.concatenate((self.ids, self.syn_ids)), self.keys + self.syn_keys)
        elif renumbered:
            self.table = SeriesTable.from_keys(self.syn_ids, self.syn_keys)
        return renumbered


class ScrapeLoop:
    """Scrapes one target until stopped."""

    def __init__(self, target: Target, appender: Appender, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.appender = appender
        self.session = session
        self.cache = SeriesCache()
        syn_keys = [target.labels.with_(**{METRIC_NAME: name}).canonical() for name in SYNTHETIC]
        syn_ids = np.array([series_id_of(k) for k in syn_keys], U64)
        self._syn_only = SeriesTable.from_keys(syn_ids, syn_keys)
        self._table = _Table(syn_ids, syn_keys)
        # The series of the last successful scrape: a table and which of its cache part were present.
        self._prev: tuple[SeriesTable, np.ndarray] | None = None
        self.health = TargetHealth(target.url, target.labels.to_dict(), "unknown", "", 0, 0.0, 0)
        self.scrapes = 0
        self._metadata_sent: tuple[dict, dict] | None = None
        self._metadata_at = 0.0
        self._task: asyncio.Task | None = None

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"scrape {self.target.url}")

    async def stop(self, *, mark_stale: bool = True) -> None:
        """Stop the loop; with ``mark_stale``, end the target's series with staleness markers."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if mark_stale:
            now = int(time.time() * 1000)
            self._append_stale_prev(None, now)
            self.appender.append(_stale(self._syn_only, np.arange(len(self._syn_only)), now))

    def next_scrape_ms(self, now_ms: int) -> int:
        """The first scrape point at or after ``now_ms`` on this target's grid."""
        iv = self.target.interval_ms
        off = offset_ms(self.target.key, iv)
        return now_ms + ((off - now_ms) % iv)

    async def _run(self) -> None:
        while True:
            at = self.next_scrape_ms(int(time.time() * 1000))
            await asyncio.sleep(max(0.0, at / 1000 - time.time()))
            try:
                await self.scrape_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not end the loop; it is logged loudly.
                log.exception("scrape of %s failed unexpectedly", self.target.url)
            # Never scrape twice on one grid point, even if the scrape was instant.
            await asyncio.sleep(max(0.0, (at + 1) / 1000 - time.time()))

    # -- one scrape --------------------------------------------------------------------------------

    async def _fetch(self) -> bytes:
        timeout_s = self.target.timeout_ms / 1000
        headers = {
            "Accept": ACCEPT,
            "User-Agent": USER_AGENT,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout_s:g}",
        }
        async with self.session.get(
            self.target.url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            if resp.status != 200:
                raise _ScrapeError(f"server returned HTTP status {resp.status} {resp.reason}")
            return await resp.read()

    async def scrape_once(self) -> TargetHealth:
        start_s = time.time()
        ts_ms = int(start_s * 1000)
        t0 = time.perf_counter()
        error = ""
        parsed = None
        try:
            body = await self._fetch()
            parsed = parse_text(body, self.cache)
        except asyncio.TimeoutError:
            error = f"Get \"{self.target.url}\": context deadline exceeded"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"Get \"{self.target.url}\": {exc}"
        except (_ScrapeError, ExpositionError) as exc:
            error = str(exc)
        duration = time.perf_counter() - t0
        self.scrapes += 1
        if parsed is None:
            # Prometheus ends every series of a failed target at once.
            n = 0
            self._append_stale_prev(None, ts_ms)
            self._prev = None
            syn = np.array([0.0, duration, 0.0, 0.0])
            self.appender.append(
                SampleBatch(self._syn_only, np.arange(4, dtype=U32), np.full(4, ts_ms, I64), syn)
            )
        else:
            n = int(parsed.refs.shape[0])
            # Metadata first, so that it travels with this scrape's samples.
            self._send_metadata(parsed.types, parsed.helps, start_s)
            self.appender.append(self._batch(parsed.refs, parsed.timestamps_ms, parsed.values, ts_ms, duration))
        metrics.SCRAPES.labels("error" if error else "ok").inc()
        metrics.SCRAPE_DURATION.observe(duration)
        metrics.SAMPLES_SCRAPED.inc(n)
        self.health = TargetHealth(
            self.target.url, self.target.labels.to_dict(), "down" if error else "up", error, ts_ms, duration, n
        )
        if error:
            log.debug("scrape of %s failed: %s", self.target.url, error)
        return self.health

    def _send_metadata(self, types: dict[str, str], helps: dict[str, str], now_s: float) -> None:
        """Pass the target's # TYPE and # HELP on when they change, and every METADATA_REFRESH_S."""
        send = getattr(self.appender, "append_metadata", None)
        if send is None:
            return
        if self._metadata_sent == (types, helps) and now_s - self._metadata_at < METADATA_REFRESH_S:
            return
        self._metadata_sent, self._metadata_at = (types, helps), now_s
        send([(name, _METADATA_TYPES.get(types.get(name, "untyped"), "unknown"), helps.get(name, ""), "")
              for name in sorted(set(types) | set(helps))])

    def _batch(self, refs: np.ndarray, stamps: np.ndarray, values: np.ndarray, ts_ms: int, duration: float) -> SampleBatch:
        """One batch: the scraped samples and the synthetic ones, on the target's series table."""
        t = self._table
        renumbered = t.sync(self.cache, self.target)
        n, n_cache = refs.shape[0], t.n_cache
        present = np.zeros(n_cache, bool)
        present[refs] = True
        self._append_stale_prev(present, ts_ms, renumbered)
        self._prev = (t.table, present)

        sample_series = np.empty(n + 4, U32)
        sample_series[:n] = refs
        sample_series[n:] = np.arange(n_cache, n_cache + 4)
        ts = np.full(n + 4, ts_ms, I64)
        if self.target.honor_timestamps:
            ts[:n] = np.where(stamps == NO_TIMESTAMP, ts_ms, stamps)
        vals = np.empty(n + 4, F64)
        vals[:n] = values
        vals[n:] = (1.0, duration, n, n)
        return SampleBatch(t.table, sample_series, ts, vals)

    def _append_stale_prev(self, present: np.ndarray | None, ts_ms: int, renumbered: bool = False) -> None:
        """Staleness markers for the last scrape's series that are missing now.

        ``present`` marks the series of this scrape by position in the current table (None: no
        series now, e.g. the scrape failed). Positions compare directly unless the cache
        ``renumbered`` its series in between; then series ids are compared.
        """
        if self._prev is None:
            return
        table, prev_present = self._prev
        if present is None:
            positions = np.flatnonzero(prev_present)
        elif not renumbered:
            positions = np.flatnonzero(prev_present & ~present[: prev_present.shape[0]])
        else:
            was = np.flatnonzero(prev_present)
            now_ids = self._table.table.ids[: present.shape[0]][present]
            positions = was[~np.isin(table.ids[was], now_ids)]
        if positions.shape[0]:
            self.appender.append(_stale(table, positions, ts_ms))


def _stale(table: SeriesTable, positions: np.ndarray, ts_ms: int) -> SampleBatch:
    n = positions.shape[0]
    return SampleBatch(table.take(positions), np.arange(n, dtype=U32), np.full(n, ts_ms, I64), np.full(n, STALE_NAN, F64))


class _ScrapeError(Exception):
    pass
