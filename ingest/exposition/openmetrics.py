"""One line of OpenMetrics 1.0 text, read exactly as Prometheus 2.42's lexer reads it
(``model/textparse/openmetricslex.l``, ``openmetricsparse.go``).

Single spaces only, no blank lines, comments only ``# HELP``, ``# TYPE`` and ``# UNIT`` (the body
parser handles the final ``# EOF``), types ``counter``, ``gauge``, ``histogram``, ``gaugehistogram``,
``summary``, ``info``, ``stateset``, ``unknown``, a unit that must end the metric name, HELP text escaped
as label values are, timestamps in seconds (any Go float, NaN and infinities refused) truncated to
milliseconds as Go's ``int64(ts * 1000)``, and exemplars, which are checked and then dropped
(Prometheus keeps them only with its exemplar storage, which Shardmon lacks).

A line either matches one pattern whole or is walked again step by step to say what is wrong with it
(:func:`_diagnose`); every step matches at a position in the line, never on a slice of its rest.
"""

from __future__ import annotations

import math
import re

from shardmon.ingest.exposition.tokens import (
    INT64_MIN,
    METRIC_NAME_WORD,
    NO_TIMESTAMP,
    LineError,
    check_unique,
    label_value,
    parse_value,
    quote,
    quote_at,
    unescape,
)
from shardmon.model.labels import METRIC_NAME, Labels

#: An OpenMetrics timestamp beyond int64 milliseconds: Go's conversion gives int64's minimum on amd64,
#: which is NO_TIMESTAMP here, so one more (the sample is out of bounds either way).
OUT_OF_RANGE_TIMESTAMP = INT64_MIN + 1
_TYPES = frozenset((b"counter", b"gauge", b"histogram", b"gaugehistogram", b"summary", b"info", b"stateset", b"unknown"))
# A label value is quoted, any escape allowed, no raw line feed; a line is a sample (name, labels,
# value, timestamp, exemplar, each after one space) or HELP/TYPE/UNIT metadata.
_NAME = rb"[a-zA-Z_:][a-zA-Z0-9_:]*"
_PAIR = rb'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^\\"\n]++|\\[^\n])*+"'
_LSET = rb"\{(?:" + _PAIR + rb"(?:," + _PAIR + rb")*)?\}"
_SAMPLE = re.compile(
    rb"(" + _NAME + rb")(" + _LSET + rb")? ([^ \n]+)(?: ([^ \n]+))?(?: # (" + _LSET + rb") ([^ \n]+)(?: ([^ \n]+))?)?"
)
_PAIRS = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^\\"\n]++|\\[^\n])*+)"')
_META = re.compile(rb"# (HELP|TYPE|UNIT) (" + _NAME + rb")(?: (.*))?", re.S)
# For saying what is wrong with a line the patterns above did not match.
_NAME_RE = re.compile(_NAME)
_META_HEAD = re.compile(rb"# (HELP|TYPE|UNIT) ")
_TOKEN = re.compile(rb" [^ \n]+")
_LABEL_NAME = re.compile(rb"[a-zA-Z_][a-zA-Z0-9_]*")
_QUOTED = re.compile(rb'"(?:[^\\"\n]++|\\[^\n])*+"')


def parse_openmetrics_line(line: bytes) -> tuple:
    """Parse one OpenMetrics line (without its line feed; not ``# EOF``): ``(kind, name, text)`` for
    metadata or ``("SAMPLE", key, labels_thunk, value, timestamp)`` (see :mod:`.tokens`); unlike the
    text format, never None: every line is metadata or a sample, and nothing is lenient. Raises
    :class:`~.tokens.LineError`."""
    if line[:1] == b"#":
        return _parse_meta(line)
    m = _SAMPLE.fullmatch(line)
    if m is None:
        raise LineError(_diagnose(line))
    name, lset, value, stamp, ex_lset, ex_value, ex_stamp = m.groups()
    pairs = _pairs(lset) if lset else []
    value_f = parse_value(value)
    ts = parse_openmetrics_timestamp(stamp) if stamp is not None else NO_TIMESTAMP
    if ex_lset is not None:  # An exemplar: checked as Prometheus checks it, then dropped.
        _pairs(ex_lset, check_names=False)
        parse_value(ex_value)
        if ex_stamp is not None:
            parse_openmetrics_timestamp(ex_stamp, "exemplar timestamp")
    metric = name.decode()
    key = line[: m.end(2) if lset else m.end(1)]
    return "SAMPLE", key, lambda: Labels(sorted([(METRIC_NAME, metric), *pairs])), value_f, ts


def parse_openmetrics_timestamp(token: bytes, what: str = "timestamp") -> int:
    """Seconds as any Go float, to int64 milliseconds truncated toward zero, as ``int64(ts * 1000)``;
    :data:`OUT_OF_RANGE_TIMESTAMP` beyond int64. ``what`` names the token in the error."""
    try:
        seconds = parse_value(token)
    except LineError:
        raise LineError(f"invalid {what} {quote(token)}") from None
    if not math.isfinite(seconds):
        raise LineError(f"invalid {what} {quote(token)}")
    ms = seconds * 1000.0
    if not -(2.0**63) <= ms < 2.0**63:
        return OUT_OF_RANGE_TIMESTAMP
    return int(ms)


def _parse_meta(line: bytes) -> tuple:
    m = _META.fullmatch(line)
    if m is None:
        head = _META_HEAD.match(line)
        if head is None:
            raise LineError(f"invalid comment {quote(line)}: OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF")
        raise LineError(f"expected metric name after {head.group(1).decode()}, got {quote_at(line, head.end())}")
    kind, raw_name, text = m.group(1).decode(), m.group(2), m.group(3)
    if text is None:
        raise LineError(f"expected text in {kind}")
    name = raw_name.decode()
    if kind == "TYPE":
        if text not in _TYPES:
            raise LineError(f"invalid metric type {quote(text)}")
        return kind, name, text.decode()
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        raise LineError(f"{kind.lower()} text {quote(text)} is not valid UTF-8") from None
    if kind == "UNIT":
        if decoded and not (name.endswith("_" + decoded) and len(name) > len(decoded) + 1):
            raise LineError(f"unit {quote(text)} not a suffix of metric {quote(raw_name)}")
        return kind, name, decoded
    return kind, name, unescape(decoded)  # OpenMetrics HELP text escapes as label values do.


def _pairs(lset: bytes, check_names: bool = True) -> list[tuple[str, str]]:
    pairs = [(raw_name.decode(), label_value(raw_value)) for raw_name, raw_value in _PAIRS.findall(lset)]
    if check_names:
        check_unique(pairs)
    return pairs


def _diagnose(line: bytes) -> str:
    """Why a sample line does not match :data:`_SAMPLE` (for the error message)."""
    if not line:
        return "unexpected blank line (OpenMetrics allows none)"
    name = _NAME_RE.match(line)
    if name is None:
        if line[:1] in (b" ", b"\t"):
            return f"unexpected whitespace at the start of the line {quote(line)}"
        return f"invalid metric name {quote(METRIC_NAME_WORD.match(line).group() or line[:1])}"
    pos = name.end()
    if line[pos : pos + 1] == b"{":
        pos, problem = _diagnose_labels(line, pos)
        if problem:
            return problem
    for part in ("value", "timestamp or exemplar", "exemplar"):
        if pos == len(line):
            return "expected value after metric, got end of line" if part == "value" else "malformed line"
        if part == "exemplar" or line[pos : pos + 3] == b" # ":
            if line[pos : pos + 4] != b" # {":
                return f"expected exemplar, timestamp or end of line after value, got {quote_at(line, pos)}"
            pos, problem = _diagnose_labels(line, pos + 3)
            if problem:
                return problem
            token = _TOKEN.match(line, pos)
            if token is None:
                return f"expected value after exemplar labels, got {quote_at(line, pos)}"
            pos = token.end()
            stamp = _TOKEN.match(line, pos)
            pos = stamp.end() if stamp else pos
            return f"expected end of line after exemplar, got {quote_at(line, pos)}"
        token = _TOKEN.match(line, pos)
        if token is None:
            what = "metric" if part == "value" else "value"
            return f"expected a single space and a {part} after {what}, got {quote_at(line, pos)}"
        pos = token.end()
    return f"expected end of line after timestamp, got {quote_at(line, pos)}"


def _diagnose_labels(line: bytes, pos: int) -> tuple[int, str]:
    """Walk the label set at ``line[pos] == "{"``: the position after it, or what is wrong with it."""
    pos += 1
    first = True
    while True:
        if line[pos : pos + 1] == b"}" and first:
            return pos + 1, ""
        name = _LABEL_NAME.match(line, pos)
        if name is None:
            return pos, f"expected label name, got {quote_at(line, pos)}"
        label = name.group()
        pos = name.end()
        if line[pos : pos + 1] != b"=":
            return pos, f'expected "=" after label name {quote(label)}, got {quote_at(line, pos)}'
        pos += 1
        if line[pos : pos + 1] != b'"':
            return pos, f"expected quoted label value for {quote(label)}, got {quote_at(line, pos)}"
        value = _QUOTED.match(line, pos)
        if value is None:
            return pos, f"unterminated label value {quote_at(line, pos)}"
        pos = value.end()
        if line[pos : pos + 1] == b"}":
            return pos + 1, ""
        if line[pos : pos + 1] != b",":
            return pos, f'expected "," or "}}" after label value, got {quote_at(line, pos)}'
        pos += 1
        first = False
