"""One line of the Prometheus text format 0.0.4, read exactly as Prometheus 2.42's lexer reads it
(``model/textparse/promlex.l``, ``promparse.go``).

The lenient whitespace rules (spaces and tabs anywhere between tokens, optional commas between label
pairs), label-value escapes, Go's float syntax (:func:`~.tokens.parse_value`), timestamps as int64
milliseconds written as digits (never negative), ``# HELP`` and ``# TYPE`` metadata (other comments
ignored), and where a NUL ends the input (:func:`cut_at_end_of_input`). Every step matches at a
position in the line, never on a slice of its rest, so a malformed line costs its length once.

Deliberate difference: a raw line feed inside a quoted label value ends the line (the format requires
``\\n``; Prometheus's lexer lets the value run on).
"""

from __future__ import annotations

import re
from typing import NoReturn

from shardmon.ingest.exposition.tokens import (
    METRIC_NAME_WORD,
    NO_TIMESTAMP,
    LineError,
    check_unique,
    fits_int64,
    label_value,
    parse_value,
    quote,
    quote_at,
)
from shardmon.model.labels import METRIC_NAME, Labels, is_valid_label_name, is_valid_metric_name

_METRIC_TYPES = frozenset((b"counter", b"gauge", b"histogram", b"summary", b"untyped"))
_WS = re.compile(rb"[ \t]*")
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
# The lexer ends a metric name, a value and a timestamp at these bytes; a NUL ends every token.
_VALUE_WORD = METRIC_NAME_WORD
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
_HELP_ESCAPE = re.compile(r"\\[\\n]")


def parse_text_line(line: bytes) -> tuple | None:
    """Parse one line (without its line feed) as Prometheus's lexer would.

    Returns None for a blank line or plain comment, ``("HELP"|"TYPE", name, text)`` for metadata,
    or ``("SAMPLE", key, labels_thunk, value, timestamp)`` (see :mod:`.tokens`); raises
    :class:`~.tokens.LineError`.
    """
    pos = _WS.match(line).end()
    if pos == len(line):
        return None
    if line[pos] == 0x23:  # '#'
        return _parse_comment(line, pos)
    return _parse_sample(line, pos)


def cut_at_end_of_input(body: bytes) -> bytes:
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


def _parse_comment(line: bytes, pos: int) -> tuple | None:
    meta = _META.match(line, pos)
    if meta is None:
        return None
    kind = meta.group(1).decode()
    name = _NAME.match(line, meta.end())
    if name is None:
        raise LineError(f"expected metric name after {kind}, got {quote_at(line, meta.end())}")
    # The lexer's text token is the rest of the line minus its first byte, or empty if the rest is
    # only whitespace; so "# TYPE x  counter" has the type " counter" and fails, as in Prometheus.
    rest = line[name.end() :]
    if rest[:1] == b"\x00":  # The lexer reads it as end of input, cutting the line short.
        raise LineError(f"expected end of line after metadata, got {quote_at(line, name.end())}")
    text = rest[1:] if rest.strip(b" \t") else b""
    if kind == "TYPE":
        if text not in _METRIC_TYPES:
            raise LineError(f"invalid metric type {quote(text)}")
        return kind, name.group().decode(), text.decode()
    try:
        help_text = text.decode()
    except UnicodeDecodeError:
        raise LineError(f"help text {quote(text)} is not valid UTF-8") from None
    if "\\" in help_text:
        help_text = _HELP_ESCAPE.sub(lambda m: "\\" if m.group() == "\\\\" else "\n", help_text)
    return kind, name.group().decode(), help_text


def _parse_sample(line: bytes, start: int) -> tuple:
    word = METRIC_NAME_WORD.match(line, start).group()
    if word and is_valid_metric_name(word.decode("latin-1")):
        name, glued = word, False
    else:
        # Prometheus ends the name at the first byte that cannot be in one and reads the rest as the
        # value, so "a+1" is a valid sample; only if that fails is the name reported as bad.
        match = _NAME.match(line, start)
        if match is None:
            if line[start] == 0x7B:  # '{'
                raise LineError(f"metric name missing before {quote_at(line, start)}")
            raise LineError(f"invalid metric name {quote(word or line[start : start + 1])}")
        name, glued = match.group(), True
    end = start + len(name)
    pairs: list[tuple[str, str]] = []
    pos = _WS.match(line, end).end()
    if line[pos : pos + 1] == b"{":
        pairs, end = _parse_labels(line, pos + 1)
        pos = _WS.match(line, end).end()
    token = _VALUE_WORD.match(line, pos).group()
    if not token:
        raise LineError(f"expected value after metric, got {quote_at(line, pos)}")
    try:
        value = parse_value(token)
    except LineError:
        if glued and pos == end:
            raise LineError(f"invalid metric name {quote(word)}") from None
        raise
    stamp = _parse_timestamp(line, pos + len(token))
    metric = name.decode()
    return "SAMPLE", line[start:end], lambda: Labels(sorted([(METRIC_NAME, metric), *pairs])), value, stamp


def _parse_labels(line: bytes, pos: int) -> tuple[list[tuple[str, str]], int]:
    """Parse a label set after its ``{``; return the pairs and the position after the ``}``."""
    match = _LABEL_SET.match(line, pos)
    if match is None:
        _raise_label_error(line, pos)
    # The pairs of a matched set split one way only (names are unquoted, values end at the first
    # unescaped quote), so findall sees the very pairs the match did.
    pairs = [(raw_name.decode(), label_value(raw_value)) for raw_name, raw_value in _LABEL_PAIR.findall(match.group(1))]
    check_unique(pairs)
    return pairs, match.end()


def _raise_label_error(line: bytes, pos: int) -> NoReturn:
    """Say what is wrong with the label set from ``pos``, which :data:`_LABEL_SET` did not match."""
    pos = _WS.match(line, pos).end()
    while match := _LABEL_PAIR.match(line, pos):
        pos = match.end()
    word = _LABEL_WORD.match(line, pos).group()
    if not word:
        raise LineError(f'expected label name or "}}", got {quote_at(line, pos)}')
    if not is_valid_label_name(word.decode("latin-1")):
        raise LineError(f"invalid label name {quote(word)}")
    pos = _WS.match(line, pos + len(word)).end()
    if line[pos : pos + 1] != b"=":
        raise LineError(f'expected "=" after label name {quote(word)}, got {quote_at(line, pos)}')
    pos = _WS.match(line, pos + 1).end()
    if line[pos : pos + 1] == b'"':
        raise LineError(f"unterminated label value {quote_at(line, pos)}")
    raise LineError(f"expected label value for {quote(word)}, got {quote_at(line, pos)}")


def _parse_timestamp(line: bytes, pos: int) -> int:
    """Parse what follows the value: nothing, or whitespace and an int64 of milliseconds."""
    after = _WS.match(line, pos).end()
    if after == len(line):
        return NO_TIMESTAMP
    if after == pos:
        raise LineError(f"expected timestamp or end of line after value, got {quote_at(line, pos)}")
    token = _STAMP_WORD.match(line, after).group()
    if not token.isdigit():
        raise LineError(f"invalid timestamp {quote(token)}")
    if not fits_int64(token):
        raise LineError(f"timestamp {quote(token)} out of range")
    rest = _WS.match(line, after + len(token)).end()
    if rest != len(line):
        raise LineError(f"expected end of line after timestamp, got {quote_at(line, rest)}")
    return int(token)
