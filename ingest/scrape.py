"""The scrape loop: one per target, pulling ``/metrics`` over HTTP as Prometheus 2.42 does.

Each loop scrapes at fixed points in time, ``offset + k * interval`` where the offset comes from the
target's hash, so a scraper's targets spread over the interval and a target keeps its phase when it
moves or its scraper restarts. A scrape's samples go to an :class:`~model.storage.Appender` as one
columnar batch, together with the synthetic series ``up``, ``scrape_duration_seconds``,
``scrape_samples_scraped``, ``scrape_samples_post_metric_relabeling`` and ``scrape_series_added``.

The request is Prometheus's: its ``Accept`` header (OpenMetrics 1.0.0, then 0.0.1, then the text format
0.0.4), ``Accept-Encoding: gzip``, ``X-Prometheus-Scrape-Timeout-Seconds``, the scrape config's
authentication (credential files re-read on every scrape) and TLS settings (the CA, certificate and key
files re-read when they change). The response's ``Content-Type`` picks the parser: OpenMetrics for
``application/openmetrics-text``, the text format for anything else (the protobuf format is refused).
``body_size_limit`` counts uncompressed bytes; a body of the limit or more fails the scrape.

A failed scrape is state, not an exception: ``up`` is 0 and the target's ``last_error`` says why, and
no sample of it is stored. The counts reported for it are Prometheus's: a malformed body counts the
samples before the bad line, a series over a label limit those up to it, and ``sample_limit`` all of
them (``sample limit exceeded``). Series that vanish from a target, and all series of a target whose
scrape fails, get a staleness marker, so queries stop seeing them at once; a sample exposed with its
own timestamp is exempt (Prometheus tracks only the others). A target that goes away (or moves to
another scraper) is ended as Prometheus ends it: see :meth:`ScrapeLoop.stop`.

Series labels are derived once per series (the parser's per-target cache), never per sample: the
target's labels are attached (on a conflict the exposed label is renamed ``exported_<name>``, or
``exported_exported_<name>``..., unless ``honor_labels``), then ``metric_relabel_configs`` may rename
or drop the series, then the label limits are checked. A series repeated within one scrape (or two
that relabeling made one) keeps its first sample; Prometheus drops the others silently, Shardmon counts
them in ``shardmon_scraper_samples_duplicate_total``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from typing import NamedTuple

import aiohttp
import numpy as np
import yarl

from ingest import metrics
from ingest.exposition import NO_TIMESTAMP, BodyError, SeriesCache, parse_openmetrics, parse_text
from ingest.relabel import Relabeler
from ingest.target import Target
from model.hashing import offset_ms
from model.http_config import TLSConfig
from model.httpclient import ClientSettings, authorization_from_config, ssl_context
from model.label_limits import LabelLimits
from model.labels import METRIC_NAME, Labels, series_id_of
from model.samples import F64, I64, STALE_NAN, U32, U64, SampleBatch, SeriesTable
from model.storage import Appender

log = logging.getLogger(__name__)

#: What Prometheus 2.42 asks for (it sends exactly this header).
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OPENMETRICS = "application/openmetrics-text"
PROTOBUF = "application/vnd.google.protobuf"
USER_AGENT = "Shardmon/0.1"
METADATA_REFRESH_S = 600.0
# The type names as /api/v1/metadata shows them ("untyped" is "unknown" there).
_METADATA_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
                   "untyped": "unknown", "unknown": "unknown", "gaugehistogram": "gaugehistogram", "info": "info",
                   "stateset": "stateset"}
SYNTHETIC = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
             "scrape_series_added")
N_SYNTHETIC = len(SYNTHETIC)
#: The NaN Prometheus's parsers store for every exposed NaN (value.NormalNaN).
NORMAL_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
_DROPPED, _INVALID = -1, -2
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


def attach_target_labels(exposed: Labels, target: Target) -> Labels:
    """The labels of an exposed series once the target's are attached, as Prometheus's
    ``mutateSampleLabels`` does before metric relabeling.

    With ``honor_labels`` an exposed label wins (even an empty one, which then vanishes). Otherwise the
    target's label wins and a non-empty exposed one is kept as ``exported_<name>``, prefixed again while
    that name is taken by an exposed label, a target label or an earlier renamed one.
    """
    d = dict(exposed)
    if target.honor_labels:
        for name, value in target.labels:
            d.setdefault(name, value)
        return Labels.from_dict(d)
    conflicts = [(name, d[name]) for name, _ in target.labels if d.get(name)]
    d.update(target.labels)
    if conflicts:
        conflicts.sort(key=lambda c: len(c[0]))  # As Prometheus: shorter names pick their new names first.
        taken = {name for name, _ in exposed} | {name for name, _ in target.labels}
        for name, value in conflicts:
            new = "exported_" + name
            while new in taken:
                new = "exported_" + new
            taken.add(new)
            d[new] = value
    return Labels.from_dict(d)


def check_series(labels: Labels, target: Target) -> str:
    """Why a series (final labels) fails the scrape, as Prometheus checks each new series; "" if it does not."""
    if not labels.get(METRIC_NAME):
        return f"missing metric name ({METRIC_NAME} label)"
    o = target.options
    over = LabelLimits(o.label_limit, o.label_name_length_limit, o.label_value_length_limit).check(labels)
    return over[1] if over else ""


class _Table:
    """The series a target exposes, as one :class:`SeriesTable`: the synthetic series at positions
    0..4, then every distinct final series in the order the parser cache met it.

    ``pos_of[i]`` is the table position of cache entry ``i``, or ``_DROPPED`` (metric relabeling dropped
    it) or ``_INVALID`` (``errors[i]`` says why it fails the scrape). Rebuilt only when the cache gains
    series or renumbers them; between those, every scrape sends the same table object, so the forwarder's
    split by shard is computed once. A dropped or invalid series never enters the table.
    """

    def __init__(self, target: Target, relabeler: Relabeler | None) -> None:
        self.target, self.relabeler = target, relabeler
        self.generation = -1
        self._reset()

    def _reset(self) -> None:
        keys = [self.target.labels.with_(**{METRIC_NAME: name}).canonical() for name in SYNTHETIC]
        self.keys: list[bytes] = keys
        self.ids = np.array([series_id_of(k) for k in keys], U64)
        self.pos_by_key = {k: i for i, k in enumerate(keys)}
        self.pos_of = np.empty(0, np.int64)
        self.errors: dict[int, str] = {}
        self.table = SeriesTable.from_keys(self.ids, self.keys)

    def sync(self, cache: SeriesCache) -> bool:
        """Follow the cache; returns True when the table was rebuilt with a new numbering."""
        renumbered = self.generation != cache.generation
        if renumbered:
            self.generation = cache.generation
            self._reset()
        start, labels = self.pos_of.shape[0], cache.labels
        if start == len(labels):
            return renumbered
        new_pos = np.empty(len(labels) - start, np.int64)
        n_keys = len(self.keys)
        for j, exposed in enumerate(labels[start:]):
            final: Labels | None = attach_target_labels(exposed, self.target)
            if self.relabeler is not None:
                final = self.relabeler(final)  # metric_relabel_configs: once per new series, never per sample
            if final is None:
                new_pos[j] = _DROPPED
                continue
            problem = check_series(final, self.target)
            if problem:
                new_pos[j] = _INVALID
                self.errors[start + j] = problem
                continue
            key = final.canonical()
            pos = self.pos_by_key.get(key)
            if pos is None:
                pos = self.pos_by_key[key] = len(self.keys)
                self.keys.append(key)
            new_pos[j] = pos
        self.pos_of = np.concatenate((self.pos_of, new_pos))
        if len(self.keys) > n_keys:
            added = np.fromiter((series_id_of(k) for k in self.keys[n_keys:]), U64, len(self.keys) - n_keys)
            self.ids = np.concatenate((self.ids, added))
            self.table = SeriesTable.from_keys(self.ids, self.keys)
        return renumbered


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


def _failure(error: str, scraped: int = 0, added: int = 0, series_added: int = 0) -> _Outcome:
    return _Outcome(error, scraped, added, series_added)


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


def timeout_header(timeout_ms: int) -> str:
    """Seconds as Go's ``strconv.FormatFloat(s, 'f', -1, 64)`` writes them ("10", "1.5")."""
    seconds, ms = divmod(timeout_ms, 1000)
    return f"{seconds}" + (f".{ms:03d}".rstrip("0") if ms else "")


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

    def __init__(self, target: Target, appender: Appender, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.appender = appender
        self.session = session
        opts = target.options
        relabeler = Relabeler(opts.metric_relabel_configs, maxsize=0) if opts.metric_relabel_configs else None
        self._relabeler = relabeler
        self._client = ClientSettings()
        self._tls: _TLS | None = None
        if opts.http is not None:
            self._client = ClientSettings(authorization=authorization_from_config(opts.http),
                                          server_hostname=opts.http.tls_config.server_name or None,
                                          proxy=opts.http.proxy_url, follow_redirects=opts.http.follow_redirects)
            if opts.http.tls_config != TLSConfig():
                self._tls = _TLS(opts.http.tls_config)
        self._format = ""  # "text" or "openmetrics": the cache holds series texts of one format only
        self.cache = SeriesCache()
        self._table = _Table(target, relabeler)
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
        """The body (uncompressed) and Content-Type of one scrape."""
        timeout_s = self.target.timeout_ms / 1000
        kwargs = self._client.request_kwargs({
            "Accept": ACCEPT,
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
                raise _ScrapeError(f"server returned HTTP status {resp.status} {resp.reason or ''}".rstrip())
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
                        raise _ScrapeError("body size limit exceeded")
                body = b"".join(chunks)
            return body, resp.headers.get("Content-Type", "")

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
        except asyncio.TimeoutError:
            return _failure(f"Get \"{self.target.url}\": context deadline exceeded")
        except _ScrapeError as exc:
            return _failure(str(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _failure(f"Get \"{self.target.url}\": {exc}")
        if self.on_body is not None:
            self.on_body(body, content_type)
        return self._ingest(body, content_type)

    def _ingest(self, body: bytes, content_type: str) -> _Outcome:
        """Parse and check one body; what the scrape found (nothing is appended yet)."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media == PROTOBUF:
            return _failure(f"unsupported Content-Type {content_type!r}: the protobuf exposition format is not "
                            "supported (Shardmon asks for OpenMetrics or the text format)")
        fmt = "openmetrics" if media == OPENMETRICS else "text"
        switched = fmt != self._format
        if switched:  # A target that changed its format: start over (series compared by id below).
            self._format = fmt
            self.cache = SeriesCache()
            self._table.generation = -1
        try:
            parsed = (parse_openmetrics if fmt == "openmetrics" else parse_text)(body, self.cache)
        except BodyError as exc:
            return self._parse_failure(exc)
        t = self._table
        renumbered = self._sync()
        pos = t.pos_of[parsed.refs]
        n = pos.shape[0]
        if t.errors:  # A series over a label limit (or without a name): the first one in the body fails it all.
            invalid = pos == _INVALID
            if invalid.any():
                j = int(np.argmax(invalid))
                before = pos[:j][pos[:j] >= 0]
                metrics.LIMIT_EXCEEDED.labels("label_limits").inc()
                return self._failed_after(t.errors[int(parsed.refs[j])], j + 1, before)
        kept = pos >= 0
        all_kept = bool(kept.all())
        kpos = pos if all_kept else pos[kept]
        limit = self.target.options.sample_limit
        if limit and kpos.shape[0] > limit:
            metrics.LIMIT_EXCEEDED.labels("sample_limit").inc()
            return self._failed_after("sample limit exceeded", n, kpos)
        values = parsed.values if all_kept else parsed.values[kept]
        stamps = parsed.timestamps_ms if all_kept else parsed.timestamps_ms[kept]
        nan = np.isnan(values)
        if nan.any():
            values = values.copy()
            values[nan] = NORMAL_NAN
        self._send_metadata(parsed.types, parsed.helps, parsed.units, time.time())
        size = len(t.table)
        present = np.zeros(size, bool)
        present[kpos] = True
        repeats = int(present.sum()) < kpos.shape[0] or bool(present[:N_SYNTHETIC].any())
        if self.target.honor_timestamps and (stamps != NO_TIMESTAMP).any():
            # A sample with its own timestamp is not tracked for staleness (as Prometheus).
            stale_present = np.zeros(size, bool)
            stale_present[kpos[stamps == NO_TIMESTAMP]] = True
        else:
            stale_present = present.copy()
        stale_present[:N_SYNTHETIC] = False
        known = self._grow_known(size)
        if self._known_texts:  # Met in a failed scrape: Prometheus cached them then, so they are not new now.
            for key in self._known_texts:
                i = self.cache._index.get(key)
                if i is not None and t.pos_of[i] >= 0:
                    known[t.pos_of[i]] = True
            self._known_texts = set()
        series_added = self._count_new(kpos, known)
        self._known = present  # Prometheus's cache keeps what this scrape saw.
        return _Outcome("", n, kpos.shape[0], series_added, kpos, stamps, values, stale_present,
                        renumbered or switched, repeats)

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
        if outcome.repeats:
            keep = first_of_each(pos, ts)
            dropped = int((~keep).sum())
            if dropped:
                metrics.DUPLICATE_SAMPLES.inc(dropped)
                pos, ts, vals = pos[keep], ts[keep], vals[keep]
        self.appender.append(SampleBatch(t.table, pos.astype(U32), ts, vals))

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


class _ScrapeError(Exception):
    pass
