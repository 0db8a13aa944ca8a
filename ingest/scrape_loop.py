"""The scrape loop: one per target, pulling ``/metrics`` over HTTP as Prometheus does (2.42's loop, with
2.53's negotiation and native histograms).

Each loop scrapes at fixed points in time, ``offset + k * interval`` where the offset comes from the
target's hash, so a scraper's targets spread over the interval and a target keeps its phase when it
moves or its scraper restarts. A scrape's samples go to an :class:`~shardmon.model.storage.Appender` as one
columnar batch, together with the synthetic series ``up``, ``scrape_duration_seconds``,
``scrape_samples_scraped``, ``scrape_samples_post_metric_relabeling`` and ``scrape_series_added``.

The request is Prometheus's (:mod:`shardmon.ingest.scrape_http`). The response's ``Content-Type`` picks the
parser (:mod:`shardmon.ingest.exposition`): OpenMetrics for ``application/openmetrics-text``, the protobuf
format for ``application/vnd.google.protobuf``, the text format for anything else (Prometheus's fallback).

Native histograms (the protobuf format, with ``native_histograms``, Prometheus's feature flag) travel in the
batch's ``histograms`` columns. Each counts as one sample (``scrape_samples_scraped``, ``sample_limit``), is
fitted to ``native_histogram_bucket_limit`` (:mod:`shardmon.ingest.histogram_limits`), is tracked for
staleness as a float series is, and ends with a float staleness marker, as in Prometheus.

A failed scrape is state, not an exception: ``up`` is 0 and the target's ``last_error`` says why, and
no sample of it is stored. The counts reported for it are Prometheus's: a malformed body counts the
samples before the bad line, a series over a label limit those up to it, and ``sample_limit`` all of
them (``sample limit exceeded``). Series that vanish from a target, and all series of a target whose
scrape fails, get a staleness marker, so queries stop seeing them at once; a sample exposed with its
own timestamp is exempt (Prometheus tracks only the others). A target that goes away (or moves to
another scraper) is ended as Prometheus ends it: see :meth:`ScrapeLoop.stop`.

Series labels are derived once per series (the parser's per-target cache), never per sample: see
:mod:`shardmon.ingest.target_series`. A series repeated within one scrape (or two that relabeling made one)
keeps its first sample; Prometheus drops the others silently, Shardmon counts them in
``shardmon_scraper_samples_duplicate_total``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import NamedTuple

import aiohttp
import numpy as np

from shardmon.ingest import metrics
from shardmon.ingest.exposition import (
    NO_TIMESTAMP,
    BodyError,
    SeriesCache,
    parse_openmetrics,
    parse_protobuf,
    parse_text,
)
from shardmon.ingest.histogram_limits import BUCKET_LIMIT_ERROR, fit_bucket_limit
from shardmon.ingest.relabel import Relabeler
from shardmon.ingest.scrape_http import OPENMETRICS, PROTOBUF, ScrapeError, TargetClient
from shardmon.ingest.target import Target
from shardmon.ingest.target_series import INVALID, N_SYNTHETIC, TargetSeries
from shardmon.model.hashing import offset_ms
from shardmon.model.histogram import HistogramColumns
from shardmon.model.histogram_buckets import bucket_count
from shardmon.model.samples import F64, I64, STALE_NAN, U32, SampleBatch, SeriesTable
from shardmon.model.storage import Appender

log = logging.getLogger(__name__)

METADATA_REFRESH_S = 600.0
# The type names as /api/v1/metadata shows them ("untyped" is "unknown" there).
_METADATA_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
                   "untyped": "unknown", "unknown": "unknown", "gaugehistogram": "gaugehistogram", "info": "info",
                   "stateset": "stateset"}
#: The NaN Prometheus's parsers store for every exposed NaN (value.NormalNaN).
NORMAL_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
# Stale markers still to be written for stopped loops (asyncio keeps only weak references to tasks).
_END_OF_RUN: set[asyncio.Task] = set()


class TargetHealth(NamedTuple):
    """What the last scrape of a target found (as Prometheus's /api/v1/targets reports it)."""

    url: str
    labels: dict[str, str]
    health: str  # "up", "down" or "unknown"
    last_error: str
    last_scrape_ms: int
    last_duration_s: float
    samples: int


class _Outcome(NamedTuple):
    """What a scrape found, before its duration is known."""

    error: str
    scraped: int  # scrape_samples_scraped
    added: int  # scrape_samples_post_metric_relabeling
    series_added: int  # scrape_series_added
    pos: np.ndarray | None = None  # per sample kept: table position
    ts: np.ndarray | None = None
    values: np.ndarray | None = None
    stale_present: np.ndarray | None = None  # per table position: tracked for staleness this scrape
    renumbered: bool = False
    repeats: bool = False  # some (position, timestamp) may occur twice
    hpos: np.ndarray | None = None  # per native histogram kept: table position
    hts: np.ndarray | None = None
    hists: list | None = None


def _failure(error: str, scraped: int = 0, added: int = 0, series_added: int = 0) -> _Outcome:
    return _Outcome(error, scraped, added, series_added)


def first_of_each(pos: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Mask of the samples to keep: the first (in batch order) of each (series, timestamp)."""
    order = np.lexsort((np.arange(pos.shape[0]), ts, pos))
    p, t = pos[order], ts[order]
    later = np.zeros(pos.shape[0], bool)
    later[1:] = (p[1:] == p[:-1]) & (t[1:] == t[:-1])
    keep = np.ones(pos.shape[0], bool)
    keep[order[later]] = False
    return keep


class ScrapeLoop:
    """Scrapes one target until stopped."""

    def __init__(self, target: Target, appender: Appender, session: aiohttp.ClientSession,
                 native_histograms: bool = False) -> None:
        self.target = target
        #: ingest.native_histograms (Prometheus's --enable-feature=native-histograms).
        self.native_histograms = native_histograms
        self.appender = appender
        self._http = TargetClient(target, session)
        opts = target.options
        relabeler = Relabeler(opts.metric_relabel_configs, maxsize=0) if opts.metric_relabel_configs else None
        self._format = ""  # "text", "openmetrics" or "protobuf": the cache holds series texts of one format only
        self.cache = SeriesCache()
        self._table = TargetSeries(target, relabeler)
        # The series of the last successful scrape tracked for staleness: a table and a mask over it.
        self._prev: tuple[SeriesTable, np.ndarray] | None = None
        # Table positions Prometheus's scrape cache would hold now (for scrape_series_added), and the series
        # texts it would hold that the parser cache lacks (met before the bad line of a failed scrape).
        self._known = np.zeros(N_SYNTHETIC, bool)
        self._known_texts: set[bytes] = set()
        self.health = TargetHealth(target.url, target.labels.to_dict(), "unknown", "", 0, 0.0, 0)
        self.scrapes = 0
        self._metadata_sent: tuple | None = None
        self._metadata_at = 0.0
        self._task: asyncio.Task | None = None
        self._current: asyncio.Future | None = None  # the scrape under way
        #: Set before start() when the target was taken over from another scraper: when that one last
        #: scraped it (ms; 0 if never).
        self.catch_up_since_ms: int | None = None
        self.end_of_run: asyncio.Task | None = None
        #: Called with each fetched body and its Content-Type (tests compare what was stored with it).
        self.on_body = None

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"scrape {self.target.url}")

    async def stop(self, *, mark_stale: bool = True) -> None:
        """Stop scraping. With ``mark_stale``, end the target's series as Prometheus ends those of a
        target that went away: staleness markers for the series of the last scrape and the synthetic
        ones, timestamped when the next scrape would have been, and written just over one interval after
        that (in the background, :attr:`end_of_run`; nothing if the loop never scraped).

        Written that late and that old, the markers arrive out of order, and the shards drop them, when
        the target is scraped on elsewhere (it moved to another scraper, which keeps its phase), so its
        series go on without a gap; for a target that is gone they end its series. (Prometheus writes
        none when it shuts down; pass ``mark_stale=False`` for that.)
        """
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._current is not None and not self._current.done():
            try:  # The scrape under way ends (within its timeout) and is stored.
                await self._current
            except Exception:  # noqa: BLE001 - its outcome is in the loop's health already
                pass
        self._current = None
        if mark_stale and self.scrapes and self.end_of_run is None:
            task = asyncio.create_task(self._end_of_run(int(time.time() * 1000)), name=f"stale {self.target.url}")
            self.end_of_run = task
            _END_OF_RUN.add(task)
            task.add_done_callback(_END_OF_RUN.discard)

    async def _end_of_run(self, stopped_ms: int) -> None:
        iv = self.target.interval_ms
        stale_ms = self.next_scrape_ms(stopped_ms + 1)
        await asyncio.sleep(max(0.0, (stale_ms + iv + iv / 10) / 1000 - time.time()))
        self._append_stale_prev(None, stale_ms)
        self._prev = None
        t = self._table.table
        self.appender.append(SampleBatch(t, np.arange(N_SYNTHETIC, dtype=U32), np.full(N_SYNTHETIC, stale_ms, I64),
                                         np.full(N_SYNTHETIC, STALE_NAN, F64)))

    async def _scrape_shielded(self) -> None:
        """One scrape that a stop lets finish (see :meth:`stop`): a scrape cut off halfway would be lost
        to the target's next owner too, which resumes at the next grid point."""
        self._current = asyncio.ensure_future(self.scrape_once())
        await asyncio.shield(self._current)

    def next_scrape_ms(self, now_ms: int) -> int:
        """The first scrape point at or after ``now_ms`` on this target's grid."""
        iv = self.target.interval_ms
        off = offset_ms(self.target.key, iv)
        return now_ms + ((off - now_ms) % iv)

    async def _run(self) -> None:
        since = self.catch_up_since_ms
        if since is not None:
            # Taken over from another scraper, which last scraped the target at ``since``: a grid point
            # that passed after that was nobody's. Scrape now for it, if now is still in the first half
            # of its interval (so the next grid point stays more than half an interval away).
            now = int(time.time() * 1000)
            last = self.next_scrape_ms(now) - self.target.interval_ms
            if since < last and now - last < self.target.interval_ms / 2:
                await self._scrape_shielded()
        while True:
            at = self.next_scrape_ms(int(time.time() * 1000))
            await asyncio.sleep(max(0.0, at / 1000 - time.time()))
            try:
                await self._scrape_shielded()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not end the loop; it is logged loudly.
                log.exception("scrape of %s failed unexpectedly", self.target.url)
            # Never scrape twice on one grid point, even if the scrape was instant.
            await asyncio.sleep(max(0.0, (at + 1) / 1000 - time.time()))

    # -- one scrape --------------------------------------------------------------------------------

    async def _fetch(self) -> tuple[bytes, str]:
        """The body (uncompressed) and Content-Type of one scrape; raises :class:`ScrapeError`."""
        return await self._http.fetch()

    async def scrape_once(self) -> TargetHealth:
        start_s = time.time()
        ts_ms = int(start_s * 1000)
        t0 = time.perf_counter()
        outcome = await self._scrape()
        duration = time.perf_counter() - t0
        self.scrapes += 1
        self._report(outcome, ts_ms, duration)
        error = outcome.error
        metrics.SCRAPES.labels("error" if error else "ok").inc()
        metrics.SCRAPE_DURATION.observe(duration)
        metrics.SAMPLES_SCRAPED.inc(outcome.scraped)
        self.health = TargetHealth(self.target.url, self.target.labels.to_dict(), "down" if error else "up", error,
                                   ts_ms, duration, outcome.scraped)
        if error:
            log.debug("scrape of %s failed: %s", self.target.url, error)
        return self.health

    async def _scrape(self) -> _Outcome:
        if self.target.error:  # target_limit: not fetched at all, as Prometheus.
            return _failure(self.target.error)
        try:
            body, content_type = await self._fetch()
        except ScrapeError as exc:
            return _failure(str(exc))
        if self.on_body is not None:
            self.on_body(body, content_type)
        return self._ingest(body, content_type)

    def _ingest(self, body: bytes, content_type: str) -> _Outcome:
        """Parse and check one body; what the scrape found (nothing is appended yet)."""
        media = content_type.split(";", 1)[0].strip().lower()
        fmt = "openmetrics" if media == OPENMETRICS else "protobuf" if media == PROTOBUF else "text"
        switched = fmt != self._format
        if switched:  # A target that changed its format: start over (series compared by id below).
            self._format = fmt
            self.cache = SeriesCache()
            self._table.generation = -1
        try:
            if fmt == "protobuf":
                parsed = parse_protobuf(body, self.cache, native=self.native_histograms,
                                        classic=self.target.options.scrape_classic_histograms)
            else:
                parsed = (parse_openmetrics if fmt == "openmetrics" else parse_text)(body, self.cache)
        except BodyError as exc:
            return self._parse_failure(exc)
        t = self._table
        renumbered = self._sync()
        pos = t.pos_of[parsed.refs]
        n = pos.shape[0]
        ph = parsed.histograms
        hpos = t.pos_of[ph.refs] if ph is not None else np.empty(0, np.int64)
        if ph is not None:
            metrics.HISTOGRAMS_SCRAPED.inc(len(ph.histograms))
        if t.errors:  # A series over a label limit (or without a name): the first one in the body fails it all.
            both = pos if ph is None else np.concatenate((pos, hpos))
            invalid = both == INVALID
            if invalid.any():
                j = int(np.argmax(invalid))
                before = both[:j][both[:j] >= 0]
                ref = parsed.refs[j] if j < n else ph.refs[j - n]
                metrics.LIMIT_EXCEEDED.labels("label_limits").inc()
                return self._failed_after(t.errors[int(ref)], j + 1, before)
        kept = pos >= 0
        all_kept = bool(kept.all())
        kpos = pos if all_kept else pos[kept]
        hkept = np.flatnonzero(hpos >= 0)
        khpos = hpos[hkept]
        limit = self.target.options.sample_limit
        if limit and kpos.shape[0] + khpos.shape[0] > limit:
            metrics.LIMIT_EXCEEDED.labels("sample_limit").inc()
            return self._failed_after("sample limit exceeded", n + hpos.shape[0], np.concatenate((kpos, khpos)))
        hists = None
        if ph is not None:
            hists = [ph.histograms[j] for j in hkept.tolist()]
            bucket_limit = self.target.options.native_histogram_bucket_limit
            if bucket_limit:
                for j, h in enumerate(hists):
                    if bucket_count(h) > bucket_limit:
                        fitted = fit_bucket_limit(h, bucket_limit)
                        if fitted is None:
                            metrics.LIMIT_EXCEEDED.labels("native_histogram_bucket_limit").inc()
                            return self._failed_after(BUCKET_LIMIT_ERROR, n + hpos.shape[0], kpos)
                        metrics.HISTOGRAMS_REDUCED.inc()
                        hists[j] = fitted
        values = parsed.values if all_kept else parsed.values[kept]
        stamps = parsed.timestamps_ms if all_kept else parsed.timestamps_ms[kept]
        nan = np.isnan(values)
        if nan.any():
            values = values.copy()
            values[nan] = NORMAL_NAN
        self._send_metadata(parsed.types, parsed.helps, parsed.units, time.time())
        size = len(t.table)
        hstamps = ph.timestamps_ms[hkept] if ph is not None else np.empty(0, np.int64)
        present = np.zeros(size, bool)
        present[kpos] = True
        present[khpos] = True
        repeats = (int(present.sum()) < kpos.shape[0] + khpos.shape[0]) or bool(present[:N_SYNTHETIC].any())
        if self.target.honor_timestamps and ((stamps != NO_TIMESTAMP).any() or (hstamps != NO_TIMESTAMP).any()):
            # A sample with its own timestamp is not tracked for staleness (as Prometheus).
            stale_present = np.zeros(size, bool)
            stale_present[kpos[stamps == NO_TIMESTAMP]] = True
            stale_present[khpos[hstamps == NO_TIMESTAMP]] = True
        else:
            stale_present = present.copy()
        stale_present[:N_SYNTHETIC] = False
        known = self._grow_known(size)
        if self._known_texts:  # Met in a failed scrape: Prometheus cached them then, so they are not new now.
            for key in self._known_texts:
                i = self.cache.index_of(key)
                if i is not None and t.pos_of[i] >= 0:
                    known[t.pos_of[i]] = True
            self._known_texts = set()
        series_added = self._count_new(np.concatenate((kpos, khpos)) if khpos.shape[0] else kpos, known)
        self._known = present  # Prometheus's cache keeps what this scrape saw.
        return _Outcome("", n + hpos.shape[0], kpos.shape[0] + khpos.shape[0], series_added, kpos, stamps, values,
                        stale_present, renumbered or switched, repeats, khpos, hstamps, hists)

    def _sync(self) -> bool:
        """Bring the table up to the cache; on a renumbering, carry ``_known`` over by series id."""
        size = len(self._table.ids)
        old_ids = self._table.ids[self._grow_known(size)[:size]]
        renumbered = self._table.sync(self.cache)
        if renumbered:
            self._known = np.isin(self._table.ids, old_ids)
        return renumbered

    def _grow_known(self, size: int) -> np.ndarray:
        if self._known.shape[0] < size:
            self._known = np.concatenate((self._known, np.zeros(size - self._known.shape[0], bool)))
        return self._known

    @staticmethod
    def _count_new(positions: np.ndarray, known: np.ndarray) -> int:
        fresh = positions[~known[positions]]
        return int(np.unique(fresh).shape[0]) if fresh.shape[0] else 0

    def _failed_after(self, error: str, scraped: int, appended: np.ndarray, new_samples: int = 0,
                      new_series: int = 0) -> _Outcome:
        """A scrape that failed after Prometheus had appended ``appended`` (table positions, kept ones)
        and counted ``scraped`` samples: those count, and join Prometheus's cache (up to sample_limit)."""
        limit = self.target.options.sample_limit
        counted = appended[:limit] if limit else appended
        known = self._grow_known(len(self._table.table))
        series_added = self._count_new(counted, known) + new_series
        known[counted] = True
        return _failure(error, scraped, appended.shape[0] + new_samples, series_added)

    def _parse_failure(self, exc: BodyError) -> _Outcome:
        self._sync()
        pos = self._table.pos_of[exc.refs_before] if exc.refs_before.shape[0] else exc.refs_before
        new = set(exc.new_keys) - self._known_texts
        self._known_texts |= new
        return self._failed_after(str(exc), exc.samples, pos[pos >= 0], exc.new_samples, len(new))

    def _report(self, outcome: _Outcome, ts_ms: int, duration: float) -> None:
        """Append the scrape's samples, its staleness markers and the synthetic series."""
        t = self._table
        syn_values = np.array([0.0 if outcome.error else 1.0, duration, outcome.scraped, outcome.added,
                               outcome.series_added], F64)
        if outcome.error or outcome.pos is None:
            # Prometheus ends every series of a failed target at once.
            self._append_stale_prev(None, ts_ms)
            self._prev = None
            self.appender.append(SampleBatch(t.table, np.arange(N_SYNTHETIC, dtype=U32), np.full(N_SYNTHETIC, ts_ms, I64),
                                             syn_values))
            return
        self._append_stale_prev(outcome.stale_present, ts_ms, outcome.renumbered)
        self._prev = (t.table, outcome.stale_present)
        n = outcome.pos.shape[0]
        pos = np.empty(n + N_SYNTHETIC, np.int64)
        pos[:n] = outcome.pos
        pos[n:] = np.arange(N_SYNTHETIC)
        ts = np.full(n + N_SYNTHETIC, ts_ms, I64)
        if self.target.honor_timestamps:
            ts[:n] = np.where(outcome.ts == NO_TIMESTAMP, ts_ms, outcome.ts)
        vals = np.empty(n + N_SYNTHETIC, F64)
        vals[:n] = outcome.values
        vals[n:] = syn_values
        if outcome.hists:
            self.appender.append(self._with_histograms(outcome, pos, ts, vals, ts_ms))
            return
        if outcome.repeats:
            keep = first_of_each(pos, ts)
            dropped = int((~keep).sum())
            if dropped:
                metrics.DUPLICATE_SAMPLES.inc(dropped)
                pos, ts, vals = pos[keep], ts[keep], vals[keep]
        self.appender.append(SampleBatch(t.table, pos.astype(U32), ts, vals))

    def _with_histograms(self, outcome: _Outcome, pos: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                         ts_ms: int) -> SampleBatch:
        """The scrape's batch with its native histograms: of a series' samples at one timestamp (floats
        first, then histograms, in body order) the first is kept, the others counted as duplicates."""
        hpos, hts = outcome.hpos, outcome.hts.copy()
        if self.target.honor_timestamps:
            hts[hts == NO_TIMESTAMP] = ts_ms
        else:
            hts[:] = ts_ms
        n = pos.shape[0]
        keep = first_of_each(np.concatenate((pos, hpos)), np.concatenate((ts, hts)))
        dropped = int((~keep).sum())
        if dropped:
            metrics.DUPLICATE_SAMPLES.inc(dropped)
        fk, hk = keep[:n], np.flatnonzero(keep[n:])
        hists = outcome.hists
        columns = HistogramColumns.of(hpos[hk], hts[hk], [hists[j] for j in hk.tolist()])
        return SampleBatch(self._table.table, pos[fk].astype(U32), ts[fk], vals[fk], columns)

    def _send_metadata(self, types: dict[str, str], helps: dict[str, str], units: dict[str, str], now_s: float) -> None:
        """Pass the target's # TYPE, # HELP and # UNIT on when they change, and every METADATA_REFRESH_S."""
        send = getattr(self.appender, "append_metadata", None)
        if send is None:
            return
        if self._metadata_sent == (types, helps, units) and now_s - self._metadata_at < METADATA_REFRESH_S:
            return
        self._metadata_sent, self._metadata_at = (types, helps, units), now_s
        send([(name, _METADATA_TYPES.get(types.get(name, "untyped"), "unknown"), helps.get(name, ""), units.get(name, ""))
              for name in sorted(set(types) | set(helps) | set(units))])

    def _append_stale_prev(self, present: np.ndarray | None, ts_ms: int, renumbered: bool = False) -> None:
        """Staleness markers for the last scrape's series that are missing now.

        ``present`` marks the series of this scrape by position in the current table (None: no
        series now, e.g. the scrape failed). Positions compare directly unless the table was rebuilt
        with a new numbering in between; then series ids are compared.
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

