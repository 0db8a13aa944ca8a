"""The native histogram notation of Prometheus's PromQL test scripts: parse, expand, format, compare.

A histogram is written ``{{schema:1 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[1]
offset:1 n_offset:0}}`` (every key optional, each at most once; ``buckets``/``n_buckets`` are the absolute
counts of one span starting at ``offset``/``n_offset``), as Prometheus 2.53's parser reads it. We also read
``counter_reset_hint:unknown|reset|not_reset|gauge`` (Prometheus 2.54+ writes it; 2.53 does not know it).

In a series' values (:func:`expand_item`): ``{{...}}`` is one sample, ``{{...}}xN`` that histogram N+1
times, ``{{a}}+{{b}}xN`` the N+1 histograms a, a+b, a+2b, ... and ``{{a}}-{{b}}xN`` the same subtracting
(as Prometheus's loader: with the engine's ``Add``/``Sub``, :mod:`shardmon.model.promql.histogram_ops`; a
running histogram of higher schema than the increment is an error, "cannot merge from schema").
:func:`split_items` cuts a values text at the spaces outside ``{{ }}`` so these mix with ``_``, ``stale``
and float items.

:func:`format_histogram` writes Prometheus's ``TestExpression`` form (one span per side, empty buckets
between spans written as 0, keys with a zero value left out, numbers as Go's ``%g``); :func:`same_histogram`
is the scripts' comparison: exactly equal after compaction (empty buckets dropped,
:func:`shardmon.model.histogram_buckets.compact`), as 2.53's promqltest.
:func:`go_string` is Go's ``FloatHistogram.String()`` (what an alert template prints for ``$value``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from shardmon.model.errors import HistogramNotationError
from shardmon.model.histogram import (
    COUNTER_RESET,
    GAUGE_TYPE,
    NOT_COUNTER_RESET,
    UNKNOWN_COUNTER_RESET,
    Histogram,
    bucket_map,
    iter_buckets,
)
from shardmon.model.histogram_buckets import compact
from shardmon.model.promql.histogram_ops import add, sub

HINTS = {"unknown": UNKNOWN_COUNTER_RESET, "reset": COUNTER_RESET, "not_reset": NOT_COUNTER_RESET,
         "gauge": GAUGE_TYPE}
_HINT_NAMES = {v: k for k, v in HINTS.items()}
_INT_KEYS = ("schema", "offset", "n_offset")
_LIST_KEYS = ("buckets", "n_buckets")
_FLOAT_KEYS = ("sum", "count", "z_bucket", "z_bucket_w")
_KEY = re.compile(r"\s*([A-Za-z_]+)\s*:\s*")
_NUMBER = re.compile(r"[+-]?(?:[iI][nN][fF]|[nN][aA][nN]|0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_TIMES = re.compile(r"x(\d+)$")


#: A description that does not parse (the message names the position, 0-based; ``.pos`` holds it).
NotationError = HistogramNotationError


def parse_histogram(text: str, pos: int = 0) -> tuple[Histogram, int]:
    """The histogram ``{{...}}`` starting at ``text[pos]``, and the position after its closing ``}}``."""
    if not text.startswith("{{", pos):
        raise NotationError("expected '{{' opening a histogram", pos)
    i = pos + 2
    fields: dict[str, object] = {}
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if text.startswith("}}", i):
            return _build(fields, pos), i + 2
        m = _KEY.match(text, i)
        if m is None:
            raise NotationError("expected a histogram description key, e.g. buckets:[5 10 7], or '}}'", i)
        key = m.group(1).lower()
        if key in fields:
            raise NotationError(f'duplicate key "{key}" in histogram', i)
        i = m.end()
        if key in _LIST_KEYS:
            fields[key], i = _bucket_list(text, i)
        elif key == "counter_reset_hint":
            word = re.match(r"[a-z_]+", text[i:])
            if word is None or word.group() not in HINTS:
                raise NotationError(f"counter_reset_hint must be one of {', '.join(HINTS)}", i)
            fields[key] = HINTS[word.group()]
            i += word.end()
        elif key in _INT_KEYS or key in _FLOAT_KEYS:
            nm = _NUMBER.match(text, i)
            if nm is None:
                raise NotationError(f"expected a number for {key}", i)
            value = _number(nm.group())
            if key in _INT_KEYS:
                if value != int(value) if math.isfinite(value) else True:
                    raise NotationError(f"expected an integer for {key}, got {nm.group()}", i)
                value = int(value)
            elif key != "sum" and nm.group().startswith("-"):
                raise NotationError(f"{key} may not be negative", i)
            fields[key] = value
            i = nm.end()
        else:
            raise NotationError(f'unknown histogram description key "{key}"', m.start(1))


def _bucket_list(text: str, i: int) -> tuple[list[float], int]:
    if not text.startswith("[", i):
        raise NotationError("expected '[' opening a bucket list", i)
    i += 1
    out: list[float] = []
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if text.startswith("]", i):
            if not out:
                raise NotationError("a bucket list needs at least one number", i)
            return out, i + 1
        nm = _NUMBER.match(text, i)
        if nm is None or nm.group().startswith("-"):
            raise NotationError("expected a bucket count (a non-negative number) or ']'", i)
        out.append(_number(nm.group()))
        i = nm.end()


def _number(text: str) -> float:
    try:
        return float(int(text, 0))
    except ValueError:
        return float(text)


def _build(fields: dict, pos: int) -> Histogram:
    schema = fields.get("schema", 0)
    pos_b, neg_b = fields.get("buckets", []), fields.get("n_buckets", [])
    try:
        return Histogram(
            schema, fields.get("z_bucket_w", 0.0), fields.get("z_bucket", 0.0), fields.get("count", 0.0),
            fields.get("sum", 0.0),
            ((fields.get("offset", 0), len(pos_b)),) if pos_b else (), tuple(pos_b),
            ((fields.get("n_offset", 0), len(neg_b)),) if neg_b else (), tuple(neg_b),
            fields.get("counter_reset_hint", UNKNOWN_COUNTER_RESET))
    except ValueError as exc:
        raise NotationError(str(exc), pos) from None


def split_items(text: str) -> list[tuple[int, str]]:
    """A series' values text cut at the spaces outside ``{{ }}``: (position, item) pairs."""
    out: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        start = i
        while i < n and text[i] not in " \t":
            if text.startswith("{{", i):
                end = text.find("}}", i)
                if end < 0:
                    raise NotationError("histogram not closed with '}}'", i)
                i = end + 2
            else:
                i += 1
        out.append((start, text[start:i]))
    return out


def expand_item(item: str, pos: int = 0) -> list[Histogram]:
    """The histograms one values item stands for (``{{...}}``, ``{{...}}xN``, ``{{a}}+{{b}}xN``, ``{{a}}-{{b}}xN``);
    errors name positions counted from ``pos`` (the item's position in its line)."""
    try:
        base, i = parse_histogram(item)
    except NotationError as exc:
        raise NotationError(str(exc).split(": ", 1)[1], pos + exc.pos) from None
    if i == len(item):
        return [base]
    op = item[i]
    if op == "x":
        m = _TIMES.match(item, i)
        if m is None:
            raise NotationError("expected a repeat count after 'x'", pos + i)
        return [base] * (int(m.group(1)) + 1)
    if op not in "+-":
        raise NotationError(f"unexpected {op!r} after a histogram (expected x<N>, +{{{{...}}}}x<N> or -{{{{...}}}}x<N>)",
                            pos + i)
    try:
        inc, j = parse_histogram(item, i + 1)
    except NotationError as exc:
        raise NotationError(str(exc).split(": ", 1)[1], pos + exc.pos) from None
    m = _TIMES.match(item, j)
    if m is None or m.end() != len(item):
        raise NotationError("expected x<N> after the increment histogram", pos + j)
    out, cur = [base], base
    for _ in range(int(m.group(1))):
        if cur.schema > inc.schema:
            raise NotationError(f"error combining histograms: cannot merge from schema {inc.schema} to {cur.schema}",
                                pos + i)
        # Prometheus's loader (histogramsSeries in 2.53's promql/parser/parse.go) steps with FloatHistogram.Add
        # and Sub, the engine's own arithmetic.
        cur = sub(cur, inc) if op == "-" else add(cur, inc)
        out.append(cur)
    return out


def same_histogram(expected: Histogram, actual: Histogram) -> bool:
    """The scripts' comparison (2.53's promqltest): equal after compaction, every float bit for bit (NaN sums
    equal), the counter reset hint and int/float kind aside."""
    a, b = compact(expected), compact(actual)

    def bits(h: Histogram) -> tuple:
        return (h.schema, h.zero_threshold, _b(h.zero_count), _b(h.count), _b(h.sum), h.positive_spans,
                tuple(map(_b, h.positive_buckets)), h.negative_spans, tuple(map(_b, h.negative_buckets)))

    return bits(a) == bits(b)


def _b(x: float) -> float | str:
    return "NaN" if x != x else x


def histogram_test_expression(h: Histogram) -> str:
    """Exactly 2.53's ``FloatHistogram.TestExpression()`` (what ``promtool test rules`` compares): empty buckets
    at the ends dropped, those between written as 0, no counter reset hint."""
    return format_histogram(compact(h), hint=False)


def format_histogram(h: Histogram, hint: bool = True) -> str:
    """Prometheus's ``TestExpression`` of ``h`` (see the module docstring), plus ``counter_reset_hint`` when set
    (and ``hint``)."""
    parts = []
    for key, value in (("schema", h.schema), ("count", h.count), ("sum", h.sum), ("z_bucket", h.zero_count),
                       ("z_bucket_w", h.zero_threshold)):
        if value != 0:
            parts.append(f"{key}:{value if key == 'schema' else go_g(value)}")
    for spans, counts, bkey, okey in ((h.positive_spans, h.positive_buckets, "buckets", "offset"),
                                      (h.negative_spans, h.negative_buckets, "n_buckets", "n_offset")):
        buckets = bucket_map(spans, counts)
        if not buckets:
            continue
        lo, hi = min(buckets), max(buckets)
        if lo != 0:
            parts.append(f"{okey}:{lo}")
        parts.append(f"{bkey}:[" + " ".join(go_g(buckets.get(k, 0.0)) for k in range(lo, hi + 1)) + "]")
    if hint and h.counter_reset_hint != UNKNOWN_COUNTER_RESET:
        parts.append(f"counter_reset_hint:{_HINT_NAMES[h.counter_reset_hint]}")
    return "{{" + " ".join(parts) + "}}"


def go_g(v: float) -> str:
    """A float as Go's ``%g`` writes it: shortest digits, with an exponent below 1e-4 and from 1e+06 on."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).normalize().as_tuple()
    nd = len(digits)
    x = nd + exp - 1
    text = "".join(map(str, digits))
    s = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = text[0] + ("." + text[1:] if nd > 1 else "")
        return f"{s}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return s + format(Decimal(repr(abs(v))).normalize(), "f")


def go_string(h: Histogram) -> str:
    """Go's ``FloatHistogram.String()``: ``{count:N, sum:S, <bucket>:<count>, ...}``, the buckets with a count
    (negative ones from the most negative, the zero bucket, the positive ones), each as ``[lower,upper]`` with
    ``(``/``)`` for an open end and numbers as ``%g``."""
    parts = [f"{{count:{go_g(h.count)}, sum:{go_g(h.sum)}"]
    for b in iter_buckets(h):
        if b.count != 0:
            parts.append(f"{'[' if b.lower_inclusive else '('}{go_g(b.lower)},{go_g(b.upper)}"
                         f"{']' if b.upper_inclusive else ')'}:{go_g(b.count)}")
    return ", ".join(parts) + "}"


__all__ = ["HINTS", "NotationError", "compact", "expand_item", "format_histogram", "go_g", "go_string",
           "histogram_test_expression", "parse_histogram", "same_histogram", "split_items"]
