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
from model.samples import F64, I64, STALE_NAN, U32, U64, SampleBatch, concat
from model.storage import Appender

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
USER_AGENT = "Shardmon/0.1"
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


class _SeriesTable:
    """Final series ids and keys aligned with the parser cache's indices."""

    def __init__(self) -> None:
        self.ids = np.empty(0, U64)
        self.keys: list[bytes] = []
        self.generation = -1


class ScrapeLoop:
    """Scrapes one target until stopped."""

    def __init__(self, target: Target, appender: Appender, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.appender = appender
        self.session = session
        self.cache = SeriesCache()
        self._table = _SeriesTable()
        self._prev_ids = np.empty(0, U64)
        self._prev_keys: list[bytes] = []
        syn = [target.labels.with_(**{METRIC_NAME: name}).canonical() for name in SYNTHETIC]
        self._syn_keys = syn
        self._syn_ids = np.array([series_id_of(k) for k in syn], U64)
        self.health = TargetHealth(target.url, target.labels.to_dict(), "unknown", "", 0, 0.0, 0)
        self.scrapes = 0
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
            ids = np.concatenate((self._prev_ids, self._syn_ids))
            keys = self._prev_keys + self._syn_keys
            self._append_stale(ids, keys, now)

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
        batch = None
        try:
            body = await self._fetch()
            parsed = parse_text(body, self.cache)
            batch = self._batch(parsed.refs, parsed.timestamps_ms, parsed.values, ts_ms)
        except asyncio.TimeoutError:
            error = f"Get \"{self.target.url}\": context deadline exceeded"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"Get \"{self.target.url}\": {exc}"
        except (_ScrapeError, ExpositionError) as exc:
            error = str(exc)
        duration = time.perf_counter() - t0
        self.scrapes += 1
        n = batch.num_samples if batch is not None else 0
        if batch is None:
            # Prometheus ends every series of a failed target at once.
            batch = self._stale_batch(self._prev_ids, self._prev_keys, ts_ms)
            self._prev_ids, self._prev_keys = np.empty(0, U64), []
        batch = _with_synthetic(batch, self._syn_ids, self._syn_keys, ts_ms, [0.0 if error else 1.0, duration, n, n])
        self.appender.append(batch)
        metrics.SCRAPES.labels("error" if error else "ok").inc()
        metrics.SCRAPE_DURATION.observe(duration)
        metrics.SAMPLES_SCRAPED.inc(n)
        self.health = TargetHealth(
            self.target.url, self.target.labels.to_dict(), "down" if error else "up", error, ts_ms, duration, n
        )
        if error:
            log.debug("scrape of %s failed: %s", self.target.url, error)
        return self.health

    def _sync_table(self) -> None:
        t = self._table
        if t.generation != self.cache.generation:
            t.ids, t.keys, t.generation = np.empty(0, U64), [], self.cache.generation
        labels = self.cache.labels
        if len(t.keys) < len(labels):
            new_keys = [attach_target_labels(ls, self.target).canonical() for ls in labels[len(t.keys) :]]
            t.keys.extend(new_keys)
            t.ids = np.concatenate((t.ids, np.fromiter((series_id_of(k) for k in new_keys), U64, len(new_keys))))

    def _batch(self, refs: np.ndarray, stamps: np.ndarray, values: np.ndarray, ts_ms: int) -> SampleBatch:
        self._sync_table()
        t = self._table
        n_cache = len(t.keys)
        if refs.shape[0] == n_cache and np.array_equal(refs, np.arange(n_cache)):
            ids, keys, sample_series = t.ids, t.keys, refs.astype(U32)
        else:
            uniq, inverse = np.unique(refs, return_inverse=True)
            ids = t.ids[uniq]
            keys = [t.keys[i] for i in uniq.tolist()]
            sample_series = inverse.astype(U32)
        if self.target.honor_timestamps:
            ts = np.where(stamps == NO_TIMESTAMP, ts_ms, stamps).astype(I64)
        else:
            ts = np.full(refs.shape[0], ts_ms, I64)
        batch = SampleBatch(ids, keys, sample_series, ts, np.asarray(values, F64))
        # Series present last time and missing now get a staleness marker.
        if self._prev_ids.shape[0]:
            gone = ~np.isin(self._prev_ids, ids)
            if gone.any():
                idx = np.flatnonzero(gone)
                stale = self._stale_batch(self._prev_ids[idx], [self._prev_keys[i] for i in idx.tolist()], ts_ms)
                batch = concat([batch, stale])
        self._prev_ids, self._prev_keys = ids, list(keys)
        return batch

    def _stale_batch(self, ids: np.ndarray, keys: list[bytes], ts_ms: int) -> SampleBatch:
        n = len(keys)
        return SampleBatch(ids, keys, np.arange(n, dtype=U32), np.full(n, ts_ms, I64), np.full(n, STALE_NAN, F64))

    def _append_stale(self, ids: np.ndarray, keys: list[bytes], ts_ms: int) -> None:
        if keys:
            self.appender.append(self._stale_batch(ids, keys, ts_ms))


class _ScrapeError(Exception):
    pass


def _with_synthetic(batch: SampleBatch, ids: np.ndarray, keys: list[bytes], ts_ms: int, values) -> SampleBatch:
    n = len(keys)
    syn = SampleBatch(ids, keys, np.arange(n, dtype=U32), np.full(n, ts_ms, I64), np.asarray(values, F64))
    return concat([batch, syn])
