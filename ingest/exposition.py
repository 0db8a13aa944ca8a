"""The Prometheus text exposition format (version 0.0.4), parsed with a per-target series cache.

Acceptance follows Prometheus's own parser (``model/textparse/promlex.l`` and ``promparse.go``):
the same whitespace rules, label-value escapes, float syntax (Go's ``strconv.ParseFloat`` without
hex floats or underscores) and timestamps (int64 milliseconds written as digits, never negative).
A malformed line fails the whole scrape with :class:`~model.errors.ExpositionError`, naming the
line and quoting the bad bit.

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
_METRIC_TYPES = frozenset((b"counter", b"gauge", b"histogram", b"summary", b"untyped"))

_WS = re.compile(rb"[ \t]*")
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
# The lexer ends a metric name, a value and a timestamp at these bytes; a NUL ends every token.
_NAME_WORD = re.compile(rb"[^ \t{\x00]*")
_VALUE_WORD = _NAME_WORD
_STAMP_WORD = re.compile(rb"[^ \t]*")
_LABEL_WORD = re.compile(rb'[^=,{}" \t\x00]*')
# One label pair with the whitespace and optional comma after it (commas are optional, as in
# Prometheus). A quoted value is any byte but a quote or backslash, or a backslash and the byte after.
_LABEL_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:\\.|[^\\"])*)"[ \t]*(?:,[ \t]*)?')
# A whole label set after its "{": whitespace, the same pairs uncaptured (group 1), then the "}".
_LABEL_SET = re.compile(rb'[ \t]*((?:[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:\\.|[^\\"])*"[ \t]*(?:,[ \t]*)?)*)\}')
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


class _Layout(NamedTuple):
    """What a body without timestamps looked like apart from its values, and what it meant."""

    signature: bytes
    n_lines: int
    rows: np.ndarray  # the sample lines
    refs: np.ndarray  # their series
    types: dict[str, str]
    helps: dict[str, str]
    generation: int


class _LineError(Exception):
    """A malformed line; the caller knows which line it was."""


def parse_text(body: bytes, cache: SeriesCache) -> ParsedScrape:
    """Parse a text-format scrape body, resolving series through (and adding new ones to) ``cache``.

    Raises :class:`ExpositionError` for the first malformed line; no series is then added to the cache.
    """
    lines = _Body(_cut_at_end_of_input(body) if b"\x00" in body else body)
    same = _same_layout(lines, cache)
    if same is not None:
        return same
    meta, slow = lines.known_comments(cache)
    slow = sorted({*slow, *lines.known_samples(cache)})
    lines.refs[slow] = -1
    meta += lines.parse_slow_lines(slow, cache)
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    # In body order, so that of two HELP lines for one family the later wins, as in Prometheus.
    for _, (kind, name, text) in sorted(meta):
        (types if kind == "TYPE" else helps)[name] = text
    take = np.flatnonzero(lines.refs >= 0)
    refs = lines.refs[take]
    if len(cache._index) > 2 * len(refs) + 1000:
        live = np.unique(refs)
        if len(cache._index) > 2 * len(live) + 1000:
            refs = cache._compact(live, refs)
    stamps = lines.stamps[take]
    cache._layout = None
    if not (stamps != NO_TIMESTAMP).any():
        cache._layout = _Layout(lines.signature(), len(lines.starts), take, refs, dict(types), dict(helps), cache.generation)
    return ParsedScrape(refs, lines.values[take], stamps, types, helps)


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
                        dict(lay.types), dict(lay.helps))


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

    def __init__(self, body: bytes) -> None:
        self.body = body
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
                    slow += self.fill_stamps(cut1[got] + 1, ends[got], got)
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
            if token.isdigit() and int(token) <= _INT64_MAX:
                self.stamps[line] = int(token)
            else:
                slow.append(line)
        return slow

    def parse_slow_lines(self, todo: list[int], cache: SeriesCache) -> list[tuple[int, tuple[str, str, str]]]:
        """Parse the lines the bulk path left, in body order, so the first bad line is the one reported.

        Fills in the samples; returns ``(line, HELP or TYPE)`` pairs.
        """
        body, starts, ends, values, stamps = self.body, self.starts, self.ends, self.values, self.stamps
        index = cache._index
        meta = []
        pending: dict[bytes, Labels] = {}
        found: list[tuple[int, bytes]] = []
        for i in todo:
            line = body[starts[i] : ends[i]]
            item = cache._comments.get(line, _UNSEEN)
            if item is _UNSEEN:
                try:
                    item = _parse_line(line)
                except _LineError as exc:
                    raise ExpositionError(str(exc), i + 1) from None
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
                raise _LineError(f"metric name missing before {_q(line[start:])}")
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
    names = [METRIC_NAME, *(name for name, _ in pairs)]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise _LineError(f"duplicate label name {_q(duplicate.encode())}")
    return pairs, match.end()


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
        raise _LineError(f"unterminated label value {_q(line[pos:])}")
    raise _LineError(f"expected label value for {_q(word)}, got {_got(line, pos)}")


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
    if int(token) > _INT64_MAX:
        raise _LineError(f"timestamp {_q(token)} out of range")
    rest = _WS.match(line, after + len(token)).end()
    if rest != len(line):
        raise _LineError(f"expected end of line after timestamp, got {_got(line, rest)}")
    return int(token)


def _float(token: bytes) -> float:
    """The float of a value token, with Go's syntax and its range error instead of infinity."""
    if _FLOAT.fullmatch(token) is None:
        raise _LineError(f"invalid value {_q(token)}")
    value = float(token)
    if math.isinf(value) and token[-1:] not in b"fFyY":
        raise _LineError(f"value {_q(token)} out of range")
    return value


def _got(line: bytes, pos: int) -> str:
    return _q(line[pos:]) if pos < len(line) else "end of line"


def _q(raw: bytes) -> str:
    """Quote bytes for an error message: escaped, invalid UTF-8 as ``\\xNN``, long input cut short."""
    text = raw[:_QUOTE_LIMIT].replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    text = text.decode("utf-8", "backslashreplace").translate(_CONTROL)
    return f'"{text}..."' if len(raw) > _QUOTE_LIMIT else f'"{text}"'
