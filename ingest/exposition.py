"""The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, parsed with a per-target
series cache.

Acceptance follows Prometheus 2.42's own parsers (``model/textparse/promlex.l``, ``promparse.go``,
``openmetricslex.l``, ``openmetricsparse.go``), checked against a real Prometheus 2.42 on the same
bodies:

- text format (:func:`parse_text`): the lenient whitespace rules, label-value escapes, float syntax (Go's
  ``strconv.ParseFloat`` without hex floats or underscores) and timestamps (int64 milliseconds
  written as digits, never negative);
- OpenMetrics (:func:`parse_openmetrics`): single spaces only, no blank lines, comments only ``# HELP``,
  ``# TYPE``, ``# UNIT`` and a final ``# EOF`` (then at most one line feed), types ``counter``,
  ``gauge``, ``histogram``, ``gaugehistogram``, ``summary``, ``info``, ``stateset``, ``unknown``, a
  unit that must end the metric name, timestamps in seconds (any Go float, NaN and infinities
  refused) truncated to milliseconds as Go's ``int64(ts * 1000)``, and exemplars, which are checked
  and then dropped (Prometheus keeps them only with its exemplar storage, which Shardmon lacks).
  ``foo_created`` lines are samples like any other: Prometheus 2.42 ingests them as the series
  ``foo_created``, and so does Shardmon.

A malformed line fails the whole scrape with :class:`BodyError` (an
:class:`~model.errors.ExpositionError`), naming the line and quoting the bad bit, and saying how
many samples came before it (Prometheus reports those in ``scrape_samples_scraped`` even though it
stores none of them). A repeated label name is an error of the sample, worded as Prometheus words it
(``label name "b" is not unique: invalid sample``).

Parsing is built for the steady state, where a target exposes the same series scrape after scrape.
:class:`SeriesCache` maps the raw text of a series (the bytes before the value, such as
``http_requests_total{code="200"}``) to a small int, so a known series costs one dict lookup and its
labels are never parsed again; values are converted in bulk. Only lines the bulk path cannot vouch
for (new series and comments, unusual spacing, errors) go through the exact line-by-line lexer.

Deliberate differences from Prometheus: a raw line feed inside a quoted label value ends the line (the
format requires ``\\n``; Prometheus's lexer lets the value run on), and ``le``/``quantile`` values are
kept as exposed (Prometheus 3 rewrites them as floats); labels are what the target wrote.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import repeat
from typing import NamedTuple, NoReturn

import numpy as np

from model.errors import ExpositionError
from model.labels import METRIC_NAME, Labels, is_valid_label_name, is_valid_metric_name

NO_TIMESTAMP: int = int(np.iinfo(np.int64).min)
"""The timestamp of a sample whose line carries none."""

_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)
#: An OpenMetrics timestamp beyond int64 milliseconds: Go's conversion gives int64's minimum on amd64,
#: which is NO_TIMESTAMP here, so one more (the sample is out of bounds either way).
OUT_OF_RANGE_TIMESTAMP = _INT64_MIN + 1
_METRIC_TYPES = frozenset((b"counter", b"gauge", b"histogram", b"summary", b"untyped"))
_OM_TYPES = frozenset((b"counter", b"gauge", b"histogram", b"gaugehistogram", b"summary", b"info", b"stateset", b"unknown"))

_WS = re.compile(rb"[ \t]*")
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
# The lexer ends a metric name, a value and a timestamp at these bytes; a NUL ends every token.
_NAME_WORD = re.compile(rb"[^ \t{\x00]*")
_VALUE_WORD = _NAME_WORD
_STAMP_WORD = re.compile(rb"[^ \t]*")
_LABEL_WORD = re.compile(rb'[^=,{}" \t\x00]*')
# One label pair with the whitespace and optional comma after it (commas are optional, as in
# Prometheus). A quoted value is any byte but a quote or backslash, or a backslash and the byte after.
# A value splits into those one way only, so the possessive quantifiers (*+, ++) change nothing matched
# but spare the engine its backtracking points: 20 times faster on long values, linear on any input.
_LABEL_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^\\"]++|\\.)*+)"[ \t]*(?:,[ \t]*)?')
# A whole label set after its "{": whitespace, the same pairs uncaptured (group 1), then the "}".
_LABEL_SET = re.compile(rb'[ \t]*((?:[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^\\"]++|\\.)*+"[ \t]*(?:,[ \t]*)?)*+)\}')
_META = re.compile(rb"#[ \t]+(HELP|TYPE)[ \t]+")
# What Go's strconv.ParseFloat accepts once Prometheus has refused 'p', 'P' and '_': decimals,
# "inf"/"infinity" with an optional sign and "nan" without one, all letters in any case.
_FLOAT = re.compile(
    rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    rb"|[nN][aA][nN]|[-+]?[iI][nN][fF](?:[iI][nN][iI][tT][yY])?"
)
# The bytes a JSON array of numbers, NaN and Infinity needs. JSON numbers are a subset of the float
# syntax above, and json.loads is several times faster per value than float() on this hot path.
_JSON_NUMBER_BYTES = b"0123456789-.eE,NaIfinty"
_LABEL_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_LABEL_ESCAPE = re.compile(r'\\[\\"n]')
_HELP_ESCAPE = re.compile(r"\\[\\n]")
# OpenMetrics, as Prometheus 2.42's lexer reads it. A label value is quoted, any escape allowed, no raw
# line feed; a line is a sample (name, labels, value, timestamp, exemplar, each after one space) or
# HELP/TYPE/UNIT metadata.
_OM_NAME = rb"[a-zA-Z_:][a-zA-Z0-9_:]*"
_OM_PAIR = rb'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^\\"\n]++|\\[^\n])*+"'
_OM_LSET = rb"\{(?:" + _OM_PAIR + rb"(?:," + _OM_PAIR + rb")*)?\}"
_OM_SAMPLE = re.compile(
    rb"(" + _OM_NAME + rb")(" + _OM_LSET + rb")? ([^ \n]+)(?: ([^ \n]+))?(?: # (" + _OM_LSET + rb") ([^ \n]+)(?: ([^ \n]+))?)?"
)
_OM_PAIRS = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^\\"\n]++|\\[^\n])*+)"')
_OM_META = re.compile(rb"# (HELP|TYPE|UNIT) (" + _OM_NAME + rb")(?: (.*))?", re.S)
_OM_HELP_ESCAPE = re.compile(r'\\[\\"n]')
# For saying what is wrong with a line the OpenMetrics patterns above did not match, step by step; every
# step matches at a position in the line, never on a slice of its rest (which would make it quadratic).
_OM_NAME_RE = re.compile(_OM_NAME)
_OM_META_HEAD = re.compile(rb"# (HELP|TYPE|UNIT) ")
_OM_TOKEN = re.compile(rb" [^ \n]+")
_OM_LABEL_NAME = re.compile(rb"[a-zA-Z_][a-zA-Z0-9_]*")
_OM_QUOTED = re.compile(rb'"(?:[^\\"\n]++|\\[^\n])*+"')
_QUOTE_LIMIT = 80
_UNSEEN = object()
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {9: "\\t", 10: "\\n", 13: "\\r"}


class SeriesCache:
    """Per-target cache: raw series text -> stable small int index; holds each index's Labels.

    ``labels[i]`` is the label set (``__name__`` included) of index ``i`` as the target exposed it.
    Two spellings of one series (label order, spacing) share an index. Indices only grow until the
    cache compacts itself, which happens when it holds far more entries than the latest scrape had
    series; then ``generation`` goes up, and arrays aligned with old indices must be rebuilt.
    """

    def __init__(self) -> None:
        self.labels: list[Labels] = []
        self.generation: int = 0
        self._index: dict[bytes, int] = {}
        self._by_labels: dict[Labels, int] = {}
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

    def _add(self, key: bytes, labels: Labels) -> None:
        index = self._by_labels.get(labels)
        if index is None:
            index = self._by_labels[labels] = len(self.labels)
            self.labels.append(labels)
        self._index[key] = index

    def _compact(self, live: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """Keep only the indices in ``live`` (sorted, unique), renumbered densely; return remapped refs."""
        remap = np.full(len(self.labels), -1, np.int64)
        remap[live] = np.arange(len(live))
        new = remap.tolist()
        self._index = {key: new[old] for key, old in self._index.items() if new[old] >= 0}
        self.labels = [self.labels[i] for i in live.tolist()]
        self._by_labels = {labels: i for i, labels in enumerate(self.labels)}
        self.generation += 1
        return remap[refs]


class ParsedScrape(NamedTuple):
    """One parsed body: samples as parallel arrays in body order, plus the metadata lines."""

    refs: np.ndarray  # int64 per sample line, index into cache.labels
    values: np.ndarray  # float64 per sample
    timestamps_ms: np.ndarray  # int64 per sample, NO_TIMESTAMP where the line has none
    types: dict[str, str]  # metric family name -> type, from # TYPE
    helps: dict[str, str]  # metric family name -> help text, from # HELP
    units: dict[str, str] = {}  # metric family name -> unit, from # UNIT (OpenMetrics only)


class BodyError(ExpositionError):
    """A body Prometheus would refuse, with what it would have counted before refusing it.

    ``samples`` is what Prometheus reports as ``scrape_samples_scraped`` for such a scrape: the sample
    lines before the bad line, plus the bad line when it parsed but its sample is invalid (a repeated
    label name). Of those, ``refs_before`` are the series the cache knew (their indices, one per
    sample) and ``new_samples`` the samples of series it did not know, whose texts are ``new_keys``; the
    cache is left as it was for those.
    """

    def __init__(self, message: str, line: int, *, samples: int = 0, refs_before: np.ndarray | None = None,
                 new_samples: int = 0, new_keys: tuple[bytes, ...] = ()) -> None:
        super().__init__(message, line)
        self.samples = samples
        self.refs_before = refs_before if refs_before is not None else np.empty(0, np.int64)
        self.new_samples = new_samples
        self.new_keys = new_keys


class _Layout(NamedTuple):
    """What a body without timestamps looked like apart from its values, and what it meant."""

    signature: bytes
    n_lines: int
    rows: np.ndarray  # the sample lines
    refs: np.ndarray  # their series
    types: dict[str, str]
    helps: dict[str, str]
    units: dict[str, str]
    generation: int


class _LineError(Exception):
    """A malformed line; the caller knows which line it was. ``counted``: the line parsed as a sample
    but the sample is invalid (Prometheus counts it as scraped before refusing it)."""

    def __init__(self, message: str, counted: bool = False) -> None:
        super().__init__(message)
        self.counted = counted


def parse_text(body: bytes, cache: SeriesCache) -> ParsedScrape:
    """Parse a text-format scrape body, resolving series through (and adding new ones to) ``cache``.

    Raises :class:`BodyError` for the first malformed line; no series is then added to the cache.
    """
    return _parse(_Body(_cut_at_end_of_input(body) if b"\x00" in body else body), cache)


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
        cache._layout = _Layout(lines.signature(), len(lines.starts), take, refs, dict(types), dict(helps), dict(units),
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
    return ParsedScrape(lay.refs, lines.values[rows], np.full(rows.shape[0], NO_TIMESTAMP, np.int64),
                        dict(lay.types), dict(lay.helps), dict(lay.units))


def _cut_at_end_of_input(body: bytes) -> bytes:
    """Drop the lines from the first one that Prometheus's lexer reads as the end of input.

    Its lexer takes a NUL at the start of a line, anywhere in a ``#`` comment not followed by
    whitespace, or where the text of one that is begins, as end of input (elsewhere in a comment it
    skips NULs); exporters that pad files with NULs rely on that.
    """
    pos = 0
    for line in body.split(b"\n"):
        if b"\x00" in line:
            rest = line.lstrip(b" \t")
            if rest[:1] == b"#" and rest[1:2] in (b" ", b"\t"):
                ends = rest[1:].lstrip(b" \t")[:1] == b"\x00"
            else:
                ends = rest[:1] in (b"\x00", b"#")
            if ends:
                return body[:pos]
        pos += len(line) + 1
    return body


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
        """Every byte of the body but the value tokens (of lines without timestamps), the length of
        what is kept of each line, and which lines are comments: equal signatures mean bodies equal
        up to their values."""
        if not len(self.body):
            return b""
        cut = self.cut1()
        end = np.where(self.commented | (cut <= self.starts), self.ends, cut)
        # Keep the bytes inside [start, end) of every line, drop those from there to the next line.
        gaps = np.append(self.starts[1:], len(self.data)) - end
        runs = np.empty(2 * len(end), np.int64)
        runs[0::2], runs[1::2] = end - self.starts, gaps
        keep = np.repeat(np.tile(np.array([True, False]), len(end)), runs)
        return b"".join((self.data[keep].tobytes(), (end - self.starts).astype(np.int32).tobytes(), self.commented.tobytes()))

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
                self.values[line] = _float(self.body[b:e])
            except _LineError:
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
            if token.isdigit() and _fits_int64(token):
                self.stamps[line] = int(token)
            else:
                slow.append(line)
        return slow

    def fill_om_stamps(self, begin: np.ndarray, end: np.ndarray, where: np.ndarray) -> list[int]:
        """As :meth:`fill_stamps` for OpenMetrics timestamps (seconds, any float syntax)."""
        slow = []
        for line, b, e in zip(where.tolist(), begin.tolist(), end.tolist()):
            try:
                self.stamps[line] = _om_timestamp(self.body[b:e])
            except _LineError:
                slow.append(line)
        return slow

    def parse_slow_lines(self, todo: list[int], cache: SeriesCache) -> list[tuple[int, tuple[str, str, str]]]:
        """Parse the lines the bulk path left, in body order, so the first bad line is the one reported.

        Fills in the samples; returns ``(line, HELP, TYPE or UNIT)`` pairs.
        """
        body, starts, ends, values, stamps = self.body, self.starts, self.ends, self.values, self.stamps
        parse_line = _parse_om_line if self.om else _parse_line
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
                except _LineError as exc:
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
        for key, labels in pending.items():
            cache._add(key, labels)
        for i, key in found:
            self.refs[i] = index[key]
        return meta

    def _error(self, exc: _LineError, i: int, found: list[tuple[int, bytes]], pending: dict[bytes, Labels],
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


def _parse_line(line: bytes) -> tuple | None:
    """Parse one line exactly as Prometheus's lexer would.

    Returns None for a blank line or plain comment, ``("HELP"|"TYPE", name, text)`` for metadata,
    or ``("SAMPLE", key, labels_thunk, value, timestamp)``; raises :class:`_LineError`.
    """
    pos = _WS.match(line).end()
    if pos == len(line):
        return None
    if line[pos] == 0x23:  # '#'
        return _parse_comment(line, pos)
    return _parse_sample(line, pos)


def _parse_comment(line: bytes, pos: int) -> tuple | None:
    meta = _META.match(line, pos)
    if meta is None:
        return None
    kind = meta.group(1).decode()
    name = _NAME.match(line, meta.end())
    if name is None:
        raise _LineError(f"expected metric name after {kind}, got {_got(line, meta.end())}")
    # The lexer's text token is the rest of the line minus its first byte, or empty if the rest is
    # only whitespace; so "# TYPE x  counter" has the type " counter" and fails, as in Prometheus.
    rest = line[name.end() :]
    if rest[:1] == b"\x00":  # The lexer reads it as end of input, cutting the line short.
        raise _LineError(f"expected end of line after metadata, got {_got(line, name.end())}")
    text = rest[1:] if rest.strip(b" \t") else b""
    if kind == "TYPE":
        if text not in _METRIC_TYPES:
            raise _LineError(f"invalid metric type {_q(text)}")
        return kind, name.group().decode(), text.decode()
    try:
        help_text = text.decode()
    except UnicodeDecodeError:
        raise _LineError(f"help text {_q(text)} is not valid UTF-8") from None
    if "\\" in help_text:
        help_text = _HELP_ESCAPE.sub(lambda m: "\\" if m.group() == "\\\\" else "\n", help_text)
    return kind, name.group().decode(), help_text


def _parse_sample(line: bytes, start: int) -> tuple:
    word = _NAME_WORD.match(line, start).group()
    if word and is_valid_metric_name(word.decode("latin-1")):
        name, glued = word, False
    else:
        # Prometheus ends the name at the first byte that cannot be in one and reads the rest as the
        # value, so "a+1" is a valid sample; only if that fails is the name reported as bad.
        match = _NAME.match(line, start)
        if match is None:
            if line[start] == 0x7B:  # '{'
                raise _LineError(f"metric name missing before {_got(line, start)}")
            raise _LineError(f"invalid metric name {_q(word or line[start : start + 1])}")
        name, glued = match.group(), True
    end = start + len(name)
    pairs: list[tuple[str, str]] = []
    pos = _WS.match(line, end).end()
    if line[pos : pos + 1] == b"{":
        pairs, end = _parse_labels(line, pos + 1)
        pos = _WS.match(line, end).end()
    token = _VALUE_WORD.match(line, pos).group()
    if not token:
        raise _LineError(f"expected value after metric, got {_got(line, pos)}")
    try:
        value = _float(token)
    except _LineError:
        if glued and pos == end:
            raise _LineError(f"invalid metric name {_q(word)}") from None
        raise
    stamp = _parse_timestamp(line, pos + len(token))
    metric = name.decode()
    return "SAMPLE", line[start:end], lambda: Labels(sorted([(METRIC_NAME, metric), *pairs])), value, stamp


def _parse_labels(line: bytes, pos: int) -> tuple[list[tuple[str, str]], int]:
    """Parse a label set after its ``{``; return the pairs and the position after the ``}``."""
    match = _LABEL_SET.match(line, pos)
    if match is None:
        _raise_label_error(line, pos)
    pairs: list[tuple[str, str]] = []
    # The pairs of a matched set split one way only (names are unquoted, values end at the first
    # unescaped quote), so findall sees the very pairs the match did.
    for raw_name, raw_value in _LABEL_PAIR.findall(match.group(1)):
        try:
            value = raw_value.decode()
        except UnicodeDecodeError:
            raise _LineError(f"invalid UTF-8 label value {_q(raw_value)}") from None
        if "\\" in value:
            value = _LABEL_ESCAPE.sub(lambda m: _LABEL_ESCAPES[m.group()], value)
        pairs.append((raw_name.decode(), value))
    _check_unique(pairs)
    return pairs, match.end()


def _check_unique(pairs: list[tuple[str, str]]) -> None:
    names = [METRIC_NAME, *(name for name, _ in pairs)]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        # Prometheus parses the line and then refuses the sample when appending it, with these words.
        raise _LineError(f"label name {_q(duplicate.encode())} is not unique: invalid sample", counted=True)


def _raise_label_error(line: bytes, pos: int) -> NoReturn:
    """Say what is wrong with the label set from ``pos``, which :data:`_LABEL_SET` did not match."""
    pos = _WS.match(line, pos).end()
    while match := _LABEL_PAIR.match(line, pos):
        pos = match.end()
    word = _LABEL_WORD.match(line, pos).group()
    if not word:
        raise _LineError(f'expected label name or "}}", got {_got(line, pos)}')
    if not is_valid_label_name(word.decode("latin-1")):
        raise _LineError(f"invalid label name {_q(word)}")
    pos = _WS.match(line, pos + len(word)).end()
    if line[pos : pos + 1] != b"=":
        raise _LineError(f'expected "=" after label name {_q(word)}, got {_got(line, pos)}')
    pos = _WS.match(line, pos + 1).end()
    if line[pos : pos + 1] == b'"':
        raise _LineError(f"unterminated label value {_got(line, pos)}")
    raise _LineError(f"expected label value for {_q(word)}, got {_got(line, pos)}")


def _fits_int64(digits: bytes) -> bool:
    """Whether a string of ASCII digits is at most int64's maximum (never converting thousands of digits:
    Python refuses ints of over 4,300 digits, and converting them is quadratic)."""
    return len(digits.lstrip(b"0")) <= 19 and int(digits) <= _INT64_MAX


def _parse_timestamp(line: bytes, pos: int) -> int:
    """Parse what follows the value: nothing, or whitespace and an int64 of milliseconds."""
    after = _WS.match(line, pos).end()
    if after == len(line):
        return NO_TIMESTAMP
    if after == pos:
        raise _LineError(f"expected timestamp or end of line after value, got {_got(line, pos)}")
    token = _STAMP_WORD.match(line, after).group()
    if not token.isdigit():
        raise _LineError(f"invalid timestamp {_q(token)}")
    if not _fits_int64(token):
        raise _LineError(f"timestamp {_q(token)} out of range")
    rest = _WS.match(line, after + len(token)).end()
    if rest != len(line):
        raise _LineError(f"expected end of line after timestamp, got {_got(line, rest)}")
    return int(token)


def _parse_om_line(line: bytes) -> tuple:
    """Parse one OpenMetrics line (not ``# EOF``) as Prometheus 2.42's lexer would: as
    :func:`_parse_line`, but every line is metadata or a sample, and nothing is lenient."""
    if line[:1] == b"#":
        return _parse_om_meta(line)
    m = _OM_SAMPLE.fullmatch(line)
    if m is None:
        raise _LineError(_om_diagnose(line))
    name, lset, value, stamp, ex_lset, ex_value, ex_stamp = m.groups()
    pairs = _om_pairs(lset) if lset else []
    value_f = _float(value)
    ts = _om_timestamp(stamp) if stamp is not None else NO_TIMESTAMP
    if ex_lset is not None:  # An exemplar: checked as Prometheus checks it, then dropped.
        _om_pairs(ex_lset, check_unique=False)
        _float(ex_value)
        if ex_stamp is not None:
            _om_timestamp(ex_stamp, "exemplar timestamp")
    metric = name.decode()
    key = line[: m.end(2) if lset else m.end(1)]
    return "SAMPLE", key, lambda: Labels(sorted([(METRIC_NAME, metric), *pairs])), value_f, ts


def _parse_om_meta(line: bytes) -> tuple:
    m = _OM_META.fullmatch(line)
    if m is None:
        head = _OM_META_HEAD.match(line)
        if head is None:
            raise _LineError(f"invalid comment {_q(line)}: OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF")
        raise _LineError(f"expected metric name after {head.group(1).decode()}, got {_got(line, head.end())}")
    kind, raw_name, text = m.group(1).decode(), m.group(2), m.group(3)
    if text is None:
        raise _LineError(f"expected text in {kind}")
    name = raw_name.decode()
    if kind == "TYPE":
        if text not in _OM_TYPES:
            raise _LineError(f"invalid metric type {_q(text)}")
        return kind, name, text.decode()
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        raise _LineError(f"{kind.lower()} text {_q(text)} is not valid UTF-8") from None
    if kind == "UNIT":
        if decoded and not (name.endswith("_" + decoded) and len(name) > len(decoded) + 1):
            raise _LineError(f"unit {_q(text)} not a suffix of metric {_q(raw_name)}")
        return kind, name, decoded
    if "\\" in decoded:  # OpenMetrics HELP text escapes as label values do.
        decoded = _OM_HELP_ESCAPE.sub(lambda e: _LABEL_ESCAPES[e.group()], decoded)
    return kind, name, decoded


def _om_pairs(lset: bytes, check_unique: bool = True) -> list[tuple[str, str]]:
    pairs = []
    for raw_name, raw_value in _OM_PAIRS.findall(lset):
        try:
            value = raw_value.decode()
        except UnicodeDecodeError:
            raise _LineError(f"invalid UTF-8 label value {_q(raw_value)}") from None
        if "\\" in value:
            value = _LABEL_ESCAPE.sub(lambda e: _LABEL_ESCAPES[e.group()], value)
        pairs.append((raw_name.decode(), value))
    if check_unique:
        _check_unique(pairs)
    return pairs


def _om_timestamp(token: bytes, what: str = "timestamp") -> int:
    """Seconds as any Go float, to int64 milliseconds truncated toward zero, as ``int64(ts * 1000)``."""
    try:
        seconds = _float(token)
    except _LineError:
        raise _LineError(f"invalid {what} {_q(token)}") from None
    if not math.isfinite(seconds):
        raise _LineError(f"invalid {what} {_q(token)}")
    ms = seconds * 1000.0
    if not -(2.0**63) <= ms < 2.0**63:
        return OUT_OF_RANGE_TIMESTAMP
    return int(ms)


def _om_diagnose(line: bytes) -> str:
    """Why an OpenMetrics sample line does not match :data:`_OM_SAMPLE` (for the error message)."""
    if not line:
        return "unexpected blank line (OpenMetrics allows none)"
    name = _OM_NAME_RE.match(line)
    if name is None:
        if line[:1] in (b" ", b"\t"):
            return f"unexpected whitespace at the start of the line {_q(line)}"
        return f"invalid metric name {_q(_NAME_WORD.match(line).group() or line[:1])}"
    pos = name.end()
    if line[pos : pos + 1] == b"{":
        pos, problem = _om_diagnose_labels(line, pos)
        if problem:
            return problem
    for part in ("value", "timestamp or exemplar", "exemplar"):
        if pos == len(line):
            return "expected value after metric, got end of line" if part == "value" else "malformed line"
        if part == "exemplar" or line[pos : pos + 3] == b" # ":
            if line[pos : pos + 4] != b" # {":
                return f"expected exemplar, timestamp or end of line after value, got {_got(line, pos)}"
            pos, problem = _om_diagnose_labels(line, pos + 3)
            if problem:
                return problem
            token = _OM_TOKEN.match(line, pos)
            if token is None:
                return f"expected value after exemplar labels, got {_got(line, pos)}"
            pos = token.end()
            stamp = _OM_TOKEN.match(line, pos)
            pos = stamp.end() if stamp else pos
            return f"expected end of line after exemplar, got {_got(line, pos)}"
        token = _OM_TOKEN.match(line, pos)
        if token is None:
            what = "metric" if part == "value" else "value"
            return f"expected a single space and a {part} after {what}, got {_got(line, pos)}"
        pos = token.end()
    return f"expected end of line after timestamp, got {_got(line, pos)}"


def _om_diagnose_labels(line: bytes, pos: int) -> tuple[int, str]:
    """Walk the label set at ``line[pos] == "{"``: the position after it, or what is wrong with it."""
    pos += 1
    first = True
    while True:
        if line[pos : pos + 1] == b"}" and first:
            return pos + 1, ""
        name = _OM_LABEL_NAME.match(line, pos)
        if name is None:
            return pos, f"expected label name, got {_got(line, pos)}"
        label = name.group()
        pos = name.end()
        if line[pos : pos + 1] != b"=":
            return pos, f'expected "=" after label name {_q(label)}, got {_got(line, pos)}'
        pos += 1
        if line[pos : pos + 1] != b'"':
            return pos, f"expected quoted label value for {_q(label)}, got {_got(line, pos)}"
        value = _OM_QUOTED.match(line, pos)
        if value is None:
            return pos, f"unterminated label value {_got(line, pos)}"
        pos = value.end()
        if line[pos : pos + 1] == b"}":
            return pos + 1, ""
        if line[pos : pos + 1] != b",":
            return pos, f'expected "," or "}}" after label value, got {_got(line, pos)}'
        pos += 1
        first = False


def _float(token: bytes) -> float:
    """The float of a value token, with Go's syntax and its range error instead of infinity."""
    if _FLOAT.fullmatch(token) is None:
        raise _LineError(f"invalid value {_q(token)}")
    value = float(token)
    if math.isinf(value) and token[-1:] not in b"fFyY":
        raise _LineError(f"value {_q(token)} out of range")
    return value


def _got(line: bytes, pos: int) -> str:
    # Only the quoted excerpt is sliced: slicing the rest of a long line per error would cost its length.
    return _q(line[pos : pos + _QUOTE_LIMIT + 1]) if pos < len(line) else "end of line"


def _q(raw: bytes) -> str:
    """Quote bytes for an error message: escaped, invalid UTF-8 as ``\\xNN``, long input cut short."""
    text = raw[:_QUOTE_LIMIT].replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    text = text.decode("utf-8", "backslashreplace").translate(_CONTROL)
    return f'"{text}..."' if len(raw) > _QUOTE_LIMIT else f'"{text}"'
