"""Whole scrape bodies to sample columns, through a per-target :class:`SeriesCache`.

:func:`parse_text` and :func:`parse_openmetrics` are built for the steady state, where a target exposes
the same series scrape after scrape. The cache maps the raw text of a series (the bytes before the
value, such as ``http_requests_total{code="200"}``) to a small int, so a known series costs one dict
lookup and its labels are never parsed again; values are converted in bulk (numpy finds the lines and
spaces, ``json.loads`` reads the values). A body equal to the previous one in every byte but its
values is recognised by one numpy-built signature, and then only its values are read. Only lines the
bulk path cannot vouch for (new series and comments, unusual spacing, errors) go through the exact
line parsers, :mod:`.text` and :mod:`.openmetrics`.

A malformed line fails the whole body with :class:`BodyError` (an :class:`~shardmon.model.errors.ExpositionError`),
naming the line and quoting the bad bit, and saying how many samples came before it (Prometheus
reports those in ``scrape_samples_scraped`` even though it stores none of them). Only a fully parsed
body changes the cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from array import array
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import NamedTuple

import numpy as np

from shardmon.ingest.exposition.openmetrics import parse_openmetrics_line, parse_openmetrics_timestamp
from shardmon.ingest.exposition.text import cut_at_end_of_input, parse_text_line
from shardmon.ingest.exposition.tokens import NO_TIMESTAMP, LineError, fits_int64, parse_value
from shardmon.model.errors import ExpositionError
from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels, series_id_of

# The bytes a JSON array of numbers, NaN and Infinity needs. JSON numbers are a subset of Go's float
# syntax, and json.loads is several times faster per value than float() on this hot path.
_JSON_NUMBER_BYTES = b"0123456789-.eE,NaIfinty"
_UNSEEN = object()


class SeriesCache:
    """Per-target cache: raw series text -> stable small int index; holds each index's labels.

    ``labels[i]`` is the label set (``__name__`` included) of index ``i`` as the target exposed it.
    Two spellings of one series (label order, spacing) share an index. Indices only grow until the
    cache compacts itself, which happens when it holds far more entries than the latest scrape had
    series; then ``generation`` goes up, and arrays aligned with old indices must be rebuilt.

    Kept compact, as a scraper holds one per target: the labels are one byte string of canonical label
    bytes (decoded to :class:`Labels` when asked for, which is once per new series), and the body
    layout is remembered by a digest, not a copy of the body.
    """

    def __init__(self) -> None:
        self.generation: int = 0
        self._index: dict[bytes, int] = {}
        # Index i's canonical label bytes are _blob[_ends[i - 1]:_ends[i]]; _hashes[i] their xxhash64,
        # which finds the index of a second spelling of a known series.
        self._blob = bytearray()
        self._ends: array[int] = array("Q")
        self._hashes: array[int] = array("Q")
        # The outcome of each comment or blank line seen lately, and whether the target's previous
        # scrape mostly had timestamps; both only make steady scrapes cheaper.
        self._comments: dict[bytes, tuple[str, str, str] | None] = {}
        self._stamped = False
        # The layout of the last fully parsed body: when the next body differs only in its values,
        # nothing but the values is parsed (see _same_layout).
        self._layout: _Layout | None = None

    def __len__(self) -> int:
        """The number of cached series texts (at least ``len(labels)``)."""
        return len(self._index)

    @property
    def labels(self) -> _LabelsView:
        """Index -> exposed :class:`Labels` (a read-only sequence, decoded on access)."""
        return _LabelsView(self)

    def index_of(self, key: bytes) -> int | None:
        """The index of a series text (the bytes before the value, as exposed), None if unknown."""
        return self._index.get(key)

    def _canonical(self, i: int) -> bytes:
        return bytes(self._blob[self._ends[i - 1] if i else 0 : self._ends[i]])

    def _add_all(self, pending: dict[bytes, Labels]) -> None:
        """Give each new series text an index: a known label set's (another spelling), else a new one."""
        found = np.array(self._hashes, np.uint64)
        order = np.argsort(found, kind="stable")
        ranked = found[order]
        fresh: dict[int, list[int]] = {}  # hash -> indices added by this call
        for key, labels in pending.items():
            canonical = labels.canonical()
            h = series_id_of(canonical)
            index = None
            lo = int(np.searchsorted(ranked, np.uint64(h)))
            while lo < ranked.shape[0] and int(ranked[lo]) == h and index is None:
                if self._canonical(int(order[lo])) == canonical:
                    index = int(order[lo])
                lo += 1
            for i in fresh.get(h, ()):
                if index is None and self._canonical(i) == canonical:
                    index = i
            if index is None:
                index = len(self._ends)
                self._blob += canonical
                self._ends.append(len(self._blob))
                self._hashes.append(h)
                fresh.setdefault(h, []).append(index)
            self._index[key] = index

    def index_keys(self, keys: Sequence[bytes], new: dict[bytes, Labels]) -> np.ndarray:
        """The indices of the series texts ``keys`` (one per sample), those not known yet added with their
        labels from ``new``; compacts the cache as :func:`parse_text` does (the protobuf parser's door)."""
        if new:
            self._add_all(new)
        index = self._index
        refs = np.fromiter((index[k] for k in keys), np.int64, len(keys))
        if len(index) > 2 * len(refs) + 1000:
            live = np.unique(refs)
            if len(index) > 2 * len(live) + 1000:
                refs = self._compact(live, refs)
        self._layout = None
        return refs

    def _compact(self, live: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """Keep only the indices in ``live`` (sorted, unique), renumbered densely; return remapped refs."""
        remap = np.full(len(self._ends), -1, np.int64)
        remap[live] = np.arange(len(live))
        new = remap.tolist()
        self._index = {key: new[old] for key, old in self._index.items() if new[old] >= 0}
        kept = [self._canonical(i) for i in live.tolist()]
        self._blob = bytearray(b"".join(kept))
        self._ends = array("Q", itertools.accumulate(map(len, kept)))
        self._hashes = array("Q", np.array(self._hashes, np.uint64)[live].tolist())
        self.generation += 1
        return remap[refs]


class _LabelsView(Sequence):
    """A :class:`SeriesCache`'s labels by index, decoded from its canonical bytes when read."""

    def __init__(self, cache: SeriesCache) -> None:
        self._cache = cache

    def __len__(self) -> int:
        return len(self._cache._ends)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return Labels.from_canonical(self._cache._canonical(i))

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, (list, tuple, _LabelsView)) else NotImplemented


class ParsedScrape(NamedTuple):
    """One parsed body: samples as parallel arrays in body order, plus the metadata lines."""

    refs: np.ndarray  # int64 per sample line, index into cache.labels
    values: np.ndarray  # float64 per sample
    timestamps_ms: np.ndarray  # int64 per sample, NO_TIMESTAMP where the line has none
    types: dict[str, str]  # metric family name -> type, from # TYPE
    helps: dict[str, str]  # metric family name -> help text, from # HELP
    units: dict[str, str] = {}  # metric family name -> unit, from # UNIT (OpenMetrics only)
    #: Native histogram samples (the protobuf format only; None: none): refs, timestamps, histograms.
    histograms: ParsedHistograms | None = None


class ParsedHistograms(NamedTuple):
    """The native histogram samples of one body, in body order."""

    refs: np.ndarray  # int64 per histogram, index into cache.labels
    timestamps_ms: np.ndarray  # int64, NO_TIMESTAMP where the metric has none
    histograms: list[Histogram]


class BodyError(ExpositionError):
    """A body Prometheus would refuse, with what it would have counted before refusing it.

    ``samples`` is what Prometheus reports as ``scrape_samples_scraped`` for such a scrape: the sample
    lines before the bad line, plus the bad line when it parsed but its sample is invalid (a repeated
    label name). Of those, ``refs_before`` are the series the cache knew (their indices, one per
    sample) and ``new_samples`` the samples of series it did not know, whose texts are ``new_keys``; the
    cache is left as it was for those.
    """

    def __init__(self, message: str, line: int, *, samples: int = 0, refs_before: np.ndarray | None = None,
                 new_samples: int = 0, new_keys: tuple[bytes, ...] = (), where: str = "") -> None:
        super().__init__(message, line, where)
        self.samples = samples
        self.refs_before = refs_before if refs_before is not None else np.empty(0, np.int64)
        self.new_samples = new_samples
        self.new_keys = new_keys


class _Layout(NamedTuple):
    """What a body without timestamps looked like apart from its values, and what it meant."""

    signature: bytes  # Body.signature()
    n_lines: int
    rows: np.ndarray  # the sample lines (int32)
    refs: np.ndarray  # their series (int32)
    types: dict[str, str]
    helps: dict[str, str]
    units: dict[str, str]
    generation: int


def parse_text(body: bytes, cache: SeriesCache) -> ParsedScrape:
    """Parse a text-format scrape body, resolving series through (and adding new ones to) ``cache``.

    Raises :class:`BodyError` for the first malformed line; no series is then added to the cache.
    """
    return _parse(_Body(cut_at_end_of_input(body) if b"\x00" in body else body), cache)


def parse_openmetrics(body: bytes, cache: SeriesCache) -> ParsedScrape:
    """Parse an OpenMetrics 1.0 text body (``application/openmetrics-text``), as :func:`parse_text`.

    ``cache`` must only ever see OpenMetrics bodies: a series text known to it skips the line checks,
    and the text format accepts lines that OpenMetrics refuses.
    """
    # The first line starting "# EOF" ends the data; the line feed before it ends the last data line.
    if body.startswith(b"# EOF"):
        eof = 0
    else:
        eof = body.find(b"\n# EOF")
        eof += eof >= 0
    end = eof if eof >= 0 else len(body)
    data = body[: end - 1] if body[:end].endswith(b"\n") else body[:end]
    has_lines = end > 0  # "\n# EOF" has one (blank) data line; "# EOF" and "" have none.
    parsed = _parse(_Body(data, om=True), cache) if has_lines else _empty_parse()
    lines = data.count(b"\n") + 1 if has_lines else 0
    if eof < 0:
        raise BodyError("data does not end with # EOF", lines + 1, samples=len(parsed.refs), refs_before=parsed.refs)
    if body[eof + 5 :] not in (b"", b"\n"):
        raise BodyError("unexpected data after # EOF", lines + 1, samples=len(parsed.refs), refs_before=parsed.refs)
    return parsed


def _empty_parse() -> ParsedScrape:
    return ParsedScrape(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64), {}, {}, {})


def _parse(lines: _Body, cache: SeriesCache) -> ParsedScrape:
    same = _same_layout(lines, cache)
    if same is not None:
        return same
    meta, slow = lines.known_comments(cache)
    slow = sorted({*slow, *lines.known_samples(cache)})
    lines.refs[slow] = -1
    meta += lines.parse_slow_lines(slow, cache)
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    units: dict[str, str] = {}
    # In body order, so that of two HELP lines for one family the later wins, as in Prometheus.
    for _, (kind, name, text) in sorted(meta):
        (types if kind == "TYPE" else helps if kind == "HELP" else units)[name] = text
    take = np.flatnonzero(lines.refs >= 0)
    refs = lines.refs[take]
    if len(cache._index) > 2 * len(refs) + 1000:
        live = np.unique(refs)
        if len(cache._index) > 2 * len(live) + 1000:
            refs = cache._compact(live, refs)
    stamps = lines.stamps[take]
    cache._layout = None
    # The fast path reads each line's last token as its value: not for timestamps, nor exemplars.
    if not (stamps != NO_TIMESTAMP).any() and not (lines.om and b" # {" in lines.body):
        cache._layout = _Layout(lines.signature(), len(lines.starts), take.astype(np.int32), refs.astype(np.int32), dict(types), dict(helps), dict(units),
                                cache.generation)
    return ParsedScrape(refs, lines.values[take], stamps, types, helps, units)


def _same_layout(lines: _Body, cache: SeriesCache) -> ParsedScrape | None:
    """The parse of a body whose every byte but the values equals the last fully parsed body's.

    Targets expose the same series in the same order scrape after scrape; then the lines' series,
    comments and blank lines are known from last time, and only the value tokens are read (in bulk).
    Bodies with timestamps, and values the bulk path does not vouch for, take the full path.
    """
    lay = cache._layout
    if lay is None or lay.generation != cache.generation or lay.n_lines != len(lines.starts):
        return None
    if lines.signature() != lay.signature:
        return None
    rows = lay.rows
    if rows.shape[0] and lines.fill_values(lines.cut1()[rows] + 1, lines.ends[rows], rows):
        return None
    return ParsedScrape(lay.refs.astype(np.int64), lines.values[rows], np.full(rows.shape[0], NO_TIMESTAMP, np.int64),
                        dict(lay.types), dict(lay.helps), dict(lay.units))


class _Body:
    """A body being parsed: where its lines are, and per line the sample found there (ref -1: none).

    Line and space positions come from numpy, so a known line costs one bytes object (its series
    text, sliced and looked up lazily) rather than a line, its parts and a tuple.
    """

    def __init__(self, body: bytes, om: bool = False) -> None:
        self.body = body
        self.om = om  # OpenMetrics: its line parser and timestamps in seconds
        self.data = np.frombuffer(body, np.uint8)
        breaks = np.flatnonzero(self.data == 10)
        self.starts = np.concatenate(([0], breaks + 1))
        self.ends = np.concatenate((breaks, [len(body)]))
        first = self.data[np.minimum(self.starts, len(body) - 1)] if body else np.zeros(1, np.uint8)
        self.commented = (first == 35) & (self.starts < self.ends)  # Lines starting with "#".
        self.refs = np.full(len(self.starts), -1, np.int64)
        self.values = np.empty(len(self.starts))
        self.stamps = np.full(len(self.starts), NO_TIMESTAMP, np.int64)
        self._cut1: np.ndarray | None = None

    def cut1(self) -> np.ndarray:
        """Per line, the position of its last space (or its start when it has none)."""
        if self._cut1 is None:
            self._spaces = np.flatnonzero(self.data == 32)
            self._last = np.searchsorted(self._spaces, self.ends) - 1
            self._cut1 = _space_or_start(self._spaces, self._last, self.starts)
        return self._cut1

    def signature(self) -> bytes:
        """A digest (BLAKE2b, 128 bits) of every byte of the body but the value tokens (of lines
        without timestamps), the length of what is kept of each line, and which lines are comments:
        equal signatures mean bodies equal up to their values. A cryptographic digest, so no target can
        make two different layouts look equal; kept instead of the bytes, which a scraper would
        otherwise hold once more per target."""
        if not len(self.body):
            return b""
        cut = self.cut1()
        end = np.where(self.commented | (cut <= self.starts), self.ends, cut)
        # Keep the bytes inside [start, end) of every line, drop those from there to the next line.
        gaps = np.append(self.starts[1:], len(self.data)) - end
        runs = np.empty(2 * len(end), np.int64)
        runs[0::2], runs[1::2] = end - self.starts, gaps
        keep = np.repeat(np.tile(np.array([True, False]), len(end)), runs)
        digest = hashlib.blake2b(self.data[keep], digest_size=16)
        digest.update((end - self.starts).astype(np.int32))
        digest.update(self.commented)
        return digest.digest()

    def slices(self, begin: np.ndarray, end: np.ndarray) -> Iterator[bytes]:
        """Each ``body[begin:end]``, made lazily so that only one lives at a time."""
        return map(self.body.__getitem__, map(slice, begin.tolist(), end.tolist()))

    def known_comments(self, cache: SeriesCache) -> tuple[list[tuple[int, tuple[str, str, str]]], list[int]]:
        """Look the ``#`` lines up among those seen before: their metadata, and the lines still to parse.

        Comment lines come back scrape after scrape, and what they say depends on their bytes only.
        """
        rows = np.flatnonzero(self.commented)
        lines = self.slices(self.starts[rows], self.ends[rows])
        meta, unseen = [], []
        for row, outcome in zip(rows.tolist(), map(cache._comments.get, lines, repeat(_UNSEEN))):
            if outcome is _UNSEEN:
                unseen.append(row)
            elif outcome is not None:
                meta.append((row, outcome))
        if len(cache._comments) > 2 * len(rows) + 1000:  # Keep those of this body only.
            old = cache._comments
            cache._comments = {line: old[line] for line in self.slices(self.starts[rows], self.ends[rows]) if line in old}
        return meta, unseen

    def known_samples(self, cache: SeriesCache) -> list[int]:
        """Resolve the lines that are known series with plain values; return the other non-# lines.

        A line "<series> <value>" has a cache key before its last space, and "<series> <value>
        <timestamp>" (federation, cAdvisor) before its second-to-last; the reading the target's
        previous scrape mostly needed is tried first. What either leaves is for the exact parser.
        """
        starts, ends = self.starts, self.ends
        cut1 = self.cut1()
        cut2 = _space_or_start(self._spaces, self._last - 1, starts)
        rows = np.flatnonzero(~self.commented)
        slow: list[int] = []
        hits: dict[bool, int] = {}
        for stamped in (True, False) if cache._stamped else (False, True):
            cut = cut2 if stamped else cut1
            heads = self.slices(starts[rows], cut[rows])
            found = np.fromiter(map(cache._index.get, heads, repeat(-1)), np.int64, len(rows))
            hit = found >= 0
            got = rows[hit]
            hits[stamped] = len(got)
            if len(got):
                self.refs[got] = found[hit]
                slow += self.fill_values(cut[got] + 1, cut1[got] if stamped else ends[got], got)
                if stamped:
                    fill = self.fill_om_stamps if self.om else self.fill_stamps
                    slow += fill(cut1[got] + 1, ends[got], got)
            rows = rows[~hit]
        cache._stamped = hits[True] > hits[False]  # Only a hint, so a failing scrape may set it.
        return slow + rows.tolist()

    def fill_values(self, begin: np.ndarray, end: np.ndarray, where: np.ndarray) -> list[int]:
        """Store the float of each token ``body[begin:end]`` at ``values[where]`` (not empty); return
        the lines left over."""
        joined = _gather(self.data, begin, end)
        # "-0" is the one JSON number whose value differs from Go's (an int 0 loses the sign).
        if not joined.translate(None, _JSON_NUMBER_BYTES) and b",-0," not in b"," + joined + b",":
            if b"Inf" in joined:
                # Client libraries write "+Inf" and "-Inf"; JSON spells them "Infinity". Any other token
                # this touches ("+Infinity") stops being JSON and takes the exact path below.
                joined = joined.replace(b"+Inf", b"Infinity").replace(b"-Inf", b"-Infinity")
            try:
                parsed = np.array(json.loads(b"[" + joined + b"]"), np.float64)
            except (ValueError, OverflowError):
                parsed = None
            # An infinity from a token not ending like "Inf" or "Infinity" is an overflow, an error in Go.
            if parsed is not None and parsed.shape == where.shape:
                inf = np.isinf(parsed)
                if not inf.any() or np.isin(self.data[end[inf] - 1], (ord("f"), ord("y"))).all():
                    self.values[where] = parsed
                    return []
        slow = []
        for line, b, e in zip(where.tolist(), begin.tolist(), end.tolist()):
            try:
                self.values[line] = parse_value(self.body[b:e])
            except LineError:
                slow.append(line)
        return slow

    def fill_stamps(self, begin: np.ndarray, end: np.ndarray, where: np.ndarray) -> list[int]:
        """Store the int of each timestamp token at ``stamps[where]``; return lines left over."""
        joined = _gather(self.data, begin, end)
        lengths = end - begin
        if not joined.translate(None, b"0123456789,") and lengths.min() >= 1 and lengths.max() <= 18:
            try:
                self.stamps[where] = np.array(json.loads(b"[" + joined + b"]"), np.int64)
                return []
            except ValueError:  # Leading zeros, which JSON refuses; go token by token.
                pass
        slow = []
        for line, b, e in zip(where.tolist(), begin.tolist(), end.tolist()):
            token = self.body[b:e]
            if token.isdigit() and fits_int64(token):
                self.stamps[line] = int(token)
            else:
                slow.append(line)
        return slow

    def fill_om_stamps(self, begin: np.ndarray, end: np.ndarray, where: np.ndarray) -> list[int]:
        """As :meth:`fill_stamps` for OpenMetrics timestamps (seconds, any float syntax)."""
        slow = []
        for line, b, e in zip(where.tolist(), begin.tolist(), end.tolist()):
            try:
                self.stamps[line] = parse_openmetrics_timestamp(self.body[b:e])
            except LineError:
                slow.append(line)
        return slow

    def parse_slow_lines(self, todo: list[int], cache: SeriesCache) -> list[tuple[int, tuple[str, str, str]]]:
        """Parse the lines the bulk path left, in body order, so the first bad line is the one reported.

        Fills in the samples; returns ``(line, HELP, TYPE or UNIT)`` pairs.
        """
        body, starts, ends, values, stamps = self.body, self.starts, self.ends, self.values, self.stamps
        parse_line = parse_openmetrics_line if self.om else parse_text_line
        index = cache._index
        meta = []
        pending: dict[bytes, Labels] = {}
        found: list[tuple[int, bytes]] = []
        for i in todo:
            line = body[starts[i] : ends[i]]
            item = cache._comments.get(line, _UNSEEN)
            if item is _UNSEEN:
                try:
                    item = parse_line(line)
                except LineError as exc:
                    raise self._error(exc, i, found, pending, index) from None
                if item is None or item[0] != "SAMPLE":
                    cache._comments[line] = item
            if item is None:
                continue
            if item[0] != "SAMPLE":
                meta.append((i, item))
                continue
            _, key, labels, values[i], stamps[i] = item  # Stored straight into the per-line arrays.
            found.append((i, key))
            if key not in index and key not in pending:
                pending[key] = labels()
        # Only a fully parsed body may change the cache.
        if pending:
            cache._add_all(pending)
        for i, key in found:
            self.refs[i] = index[key]
        return meta

    def _error(self, exc: LineError, i: int, found: list[tuple[int, bytes]], pending: dict[bytes, Labels],
               index: dict[bytes, int]) -> BodyError:
        """The error for line ``i``, with what came before it (see :class:`BodyError`)."""
        bulk = self.refs[:i][self.refs[:i] >= 0]  # Lines the bulk path resolved; slow ones are still -1.
        known = [index[key] for _, key in found if key in index]
        refs = np.concatenate((bulk, np.array(known, np.int64)))
        return BodyError(str(exc), i + 1, samples=len(refs) + (len(found) - len(known)) + exc.counted,
                         refs_before=refs, new_samples=len(found) - len(known), new_keys=tuple(pending))


def _space_or_start(spaces: np.ndarray, k: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``spaces[k]`` where that space is on the line starting at ``starts``, else the line start."""
    if not len(spaces):
        return starts.copy()
    pos = spaces[np.maximum(k, 0)]
    return np.where((k >= 0) & (pos >= starts), pos, starts)


def _gather(data: np.ndarray, begin: np.ndarray, end: np.ndarray) -> bytes:
    """The byte ranges ``data[begin:end]`` joined by commas, copied in one numpy gather."""
    lengths = end - begin
    step = lengths + 1
    offsets = np.cumsum(step) - step
    source = np.arange(int(offsets[-1] + step[-1])) - np.repeat(offsets - begin, step)
    joined = data[np.minimum(source, len(data) - 1)]
    joined[offsets + lengths] = 44  # ','
    return joined[:-1].tobytes()
