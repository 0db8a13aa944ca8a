"""What the text format and OpenMetrics share, token by token: sample values, label values and their
escapes, the unique-label-name check, the timestamp sentinels, and how an error quotes the bad bytes.

Both line parsers (:mod:`.text`, :mod:`.openmetrics`) and the bulk path of :mod:`.body` read values
with :func:`parse_value`, so a value means the same whichever path read it. A malformed line raises
:class:`LineError`; the body parser turns it into a :class:`~shardmon.ingest.exposition.body.BodyError` naming
the line.

A line parser returns ``None`` for a blank line or a plain comment, ``(kind, name, text)`` for metadata
(``kind`` one of ``"HELP"``, ``"TYPE"``, ``"UNIT"``), or ``("SAMPLE", key, labels, value, timestamp_ms)``
for a sample: ``key`` is the series text as written (the bytes before the value, the series cache's
key), ``labels`` a function making the series' :class:`~shardmon.model.labels.Labels` (called only for series the
cache does not know), ``timestamp_ms`` :data:`NO_TIMESTAMP` when the line has none.
"""

from __future__ import annotations

import math
import re

import numpy as np

from shardmon.model.errors import ShardmonError
from shardmon.model.labels import METRIC_NAME

NO_TIMESTAMP: int = int(np.iinfo(np.int64).min)
"""The timestamp of a sample whose line carries none."""

INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)

#: A metric name as the lexers cut it before checking it: up to whitespace, "{" or a NUL (which ends
#: every token).
METRIC_NAME_WORD = re.compile(rb"[^ \t{\x00]*")

# What Go's strconv.ParseFloat accepts once Prometheus has refused 'p', 'P' and '_': decimals,
# "inf"/"infinity" with an optional sign and "nan" without one, all letters in any case.
_FLOAT = re.compile(
    rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    rb"|[nN][aA][nN]|[-+]?[iI][nN][fF](?:[iI][nN][iI][tT][yY])?"
)
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE = re.compile(r'\\[\\"n]')
_QUOTE_LIMIT = 80
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {9: "\\t", 10: "\\n", 13: "\\r"}


class LineError(ShardmonError):
    """A malformed line; the caller knows which line it was (and raises an
    :class:`~shardmon.model.errors.ExpositionError` naming it). ``counted``: the line parsed as a sample but the
    sample is invalid (Prometheus counts it as scraped before refusing it)."""

    def __init__(self, message: str, counted: bool = False) -> None:
        super().__init__(message)
        self.counted = counted


def parse_value(token: bytes) -> float:
    """The float of a value token, with Go's syntax and its range error instead of infinity."""
    if _FLOAT.fullmatch(token) is None:
        raise LineError(f"invalid value {quote(token)}")
    value = float(token)
    if math.isinf(value) and token[-1:] not in b"fFyY":
        raise LineError(f"value {quote(token)} out of range")
    return value


def fits_int64(digits: bytes) -> bool:
    """Whether a string of ASCII digits is at most int64's maximum (never converting thousands of digits:
    Python refuses ints of over 4,300 digits, and converting them is quadratic)."""
    return len(digits.lstrip(b"0")) <= 19 and int(digits) <= INT64_MAX


def unescape(text: str) -> str:
    """``\\\\``, ``\\"`` and ``\\n`` replaced by what they stand for (label values; OpenMetrics HELP)."""
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], text) if "\\" in text else text


def label_value(raw: bytes) -> str:
    """A label value's text from its bytes between the quotes: UTF-8, escapes replaced."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise LineError(f"invalid UTF-8 label value {quote(raw)}") from None
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], text) if "\\" in text else text


def check_unique(pairs: list[tuple[str, str]]) -> None:
    """Refuse a sample whose label names (``__name__`` included) repeat, in Prometheus's words."""
    names = [METRIC_NAME, *(name for name, _ in pairs)]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        # Prometheus parses the line and then refuses the sample when appending it, with these words.
        raise LineError(f"label name {quote(duplicate.encode())} is not unique: invalid sample", counted=True)


def quote_at(line: bytes, pos: int) -> str:
    """What an error says was found at ``line[pos]``: a quoted excerpt, or "end of line"."""
    # Only the quoted excerpt is sliced: slicing the rest of a long line per error would cost its length.
    return quote(line[pos : pos + _QUOTE_LIMIT + 1]) if pos < len(line) else "end of line"


def quote(raw: bytes) -> str:
    """Quote bytes for an error message: escaped, invalid UTF-8 as ``\\xNN``, long input cut short."""
    text = raw[:_QUOTE_LIMIT].replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    text = text.decode("utf-8", "backslashreplace").translate(_CONTROL)
    return f'"{text}..."' if len(raw) > _QUOTE_LIMIT else f'"{text}"'
