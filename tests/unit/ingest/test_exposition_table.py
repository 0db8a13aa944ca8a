"""Exposition edge cases as a table: what Prometheus 2.42 accepts (and stores) and what it refuses.

Each row is a format (``text`` for 0.0.4, ``om`` for OpenMetrics 1.0), a body and either the samples it
yields or the error: the line, a part of the message and how many samples came before it (what
Prometheus reports as ``scrape_samples_scraped`` for that failed scrape). The expectations were checked
against a real Prometheus 2.42 scraping the same bodies, where a row says so in its comment.

Every row runs twice: on a cold cache (every line through the line parser) and on a warm one (known
series through the bulk path), because the two paths must agree.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.ingest.exposition import NO_TIMESTAMP, BodyError, SeriesCache, parse_openmetrics, parse_text

NO_TS = NO_TIMESTAMP
INF = math.inf
NAN = math.nan


def _parse(fmt: str, body: bytes, cache: SeriesCache):
    return (parse_openmetrics if fmt == "om" else parse_text)(body, cache)


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


def _outcome(fmt: str, body: bytes, cache: SeriesCache) -> tuple:
    try:
        p = _parse(fmt, body, cache)
    except BodyError as exc:
        return ("error", exc.line, str(exc), exc.samples)
    got = [(cache.labels[r].to_dict(), v, t) for r, v, t in zip(p.refs.tolist(), p.values.tolist(), p.timestamps_ms.tolist())]
    return ("ok", got, p.types, p.helps, p.units)


def _comparable(outcome: tuple) -> tuple:
    if outcome[0] == "error":
        return outcome
    return ("ok", [(labels, _bits(v) if not math.isnan(v) else "nan", t) for labels, v, t in outcome[1]], *outcome[2:])


def _warm_cache(fmt: str, body: bytes) -> SeriesCache:
    """A cache that knows every series of ``body`` that parses on its own line (so the bulk path sees them)."""
    cache = SeriesCache()
    for line in body.split(b"\n"):
        probe = line + (b"\n# EOF\n" if fmt == "om" else b"\n")
        try:
            _parse(fmt, probe, cache)
        except BodyError:
            pass
    return cache


def _check(fmt: str, body: bytes) -> tuple:
    cold = _outcome(fmt, body, SeriesCache())
    warm = _outcome(fmt, body, _warm_cache(fmt, body))
    assert _comparable(warm) == _comparable(cold)
    if cold[0] == "ok":  # Parsed again on the cache it filled: the layout fast path.
        cache = SeriesCache()
        _outcome(fmt, body, cache)
        assert _comparable(_outcome(fmt, body, cache)) == _comparable(cold)
    return cold


def S(name: str, value: float, ts: int = NO_TS, **labels: str) -> tuple:
    return ({"__name__": name, **labels}, value, ts)


OK_ROWS = [
    # --- the text format 0.0.4 ------------------------------------------------------------------------
    ("text", b'a{b="q\\"u\\\\o\\nt\\t"} 1\n', [S("a", 1, b='q"u\\o\nt\\t')]),  # \t is not an escape: kept
    ("text", b'a{b="\\\\n"} 1\n', [S("a", 1, b="\\n")]),
    ("text", b"a 1e+10\nb -Inf\nc +Inf\nd NaN\ne -0\nf .5\ng Infinity\nh nan\ni 1E3\n",
     [S("a", 1e10), S("b", -INF), S("c", INF), S("d", NAN), S("e", -0.0), S("f", 0.5), S("g", INF), S("h", NAN),
      S("i", 1000)]),
    ("text", b"a 1 1700000000000\nb 2 0\nc 3 007\n", [S("a", 1, 1700000000000), S("b", 2, 0), S("c", 3, 7)]),
    ("text", b"# just a comment\n\n  \n# HELP a x\\ny \\\\ \\\" z\n# TYPE a gauge\na 1", [S("a", 1)]),  # no final \n
    ("text", b"# EOF\na 1\n", [S("a", 1)]),  # "# EOF" is a plain comment in the text format (checked on 2.42)
    ("text", b'a{b=""} 1\n', [S("a", 1, b="")]),  # kept until target labels are attached
    ("text", b'a { b = "1" , } \t 2 \n', [S("a", 2, b="1")]),
    ("text", b"a 1\na 2\n", [S("a", 1), S("a", 2)]),  # a repeat is the scrape loop's business
    # --- OpenMetrics 1.0 ------------------------------------------------------------------------------
    ("om", b"a 1\n# EOF\n", [S("a", 1)]),
    ("om", b"a 1\n# EOF", [S("a", 1)]),  # checked on 2.42: no line feed needed after # EOF
    ("om", b"# EOF\n", []),
    ("om", b"# TYPE foo counter\n# HELP foo Requests.\nfoo_total 17.0\nfoo_created 1600000000.123\n# EOF\n",
     [S("foo_total", 17), S("foo_created", 1600000000.123)]),  # checked on 2.42: _created is ingested as a series
    ("om", b"# TYPE x gauge\nx_created 5\nx 1\n# EOF\n", [S("x_created", 5), S("x", 1)]),
    ("om", b"# TYPE foo counter\nfoo 1\n# EOF\n", [S("foo", 1)]),  # checked on 2.42: no suffix check
    ("om", b'foo_total 1 # {trace_id="abc"} 0.5\n# EOF\n', [S("foo_total", 1)]),  # exemplars are dropped
    ("om", b'foo_total 1 1700000000.5 # {trace_id="abc"} 0.5 1700000000.25\n# EOF\n', [S("foo_total", 1, 1700000000500)]),
    ("om", b'foo_total 1 # {} 2\n# EOF\n', [S("foo_total", 1)]),
    ("om", b"a 1 1700000000.1239\nb 1 1700000000.9999\nc 1 -1.5\nd 1 1e9\ne 1 17\n# EOF\n",
     # Seconds to milliseconds truncated toward zero, as Go's int64(ts * 1000) (checked on 2.42).
     [S("a", 1, 1700000000123), S("b", 1, 1700000000999), S("c", 1, -1500), S("d", 1, 10**12), S("e", 1, 17000)]),
    ("om", b'a{i="1"} +Inf\na{i="2"} -Inf\na{i="3"} NaN\na{i="4"} 1e+10\na{i="5"} inf\n# EOF\n',
     [S("a", INF, i="1"), S("a", -INF, i="2"), S("a", NAN, i="3"), S("a", 1e10, i="4"), S("a", INF, i="5")]),
    ("om", b'a{b="q\\"u\\\\o\\nt"} 1\n# EOF\n', [S("a", 1, b='q"u\\o\nt')]),
    ("om", b"a{} 1\n# EOF\n", [S("a", 1)]),
    ("om", b'# TYPE i info\ni_info{v="1"} 1\n# TYPE s stateset\ns{s="a"} 1\ns{s="b"} 0\n'
           b'# TYPE g gaugehistogram\ng_bucket{le="1"} 2\ng_bucket{le="+Inf"} 3\ng_gcount 3\ng_gsum 2.5\n'
           b"# TYPE u unknown\nu 1\n# EOF\n",
     [S("i_info", 1, v="1"), S("s", 1, s="a"), S("s", 0, s="b"), S("g_bucket", 2, le="1"), S("g_bucket", 3, le="+Inf"),
      S("g_gcount", 3), S("g_gsum", 2.5), S("u", 1)]),
    ("om", b"# TYPE u_seconds gauge\n# UNIT u_seconds seconds\nu_seconds 1.5\n# UNIT v \nv 2\n# EOF\n",
     [S("u_seconds", 1.5), S("v", 2)]),
]


@pytest.mark.parametrize("fmt, body, expected", OK_ROWS, ids=[f"{r[0]}:{r[1][:40]!r}" for r in OK_ROWS])
def test_accepted_bodies_yield_these_samples(fmt, body, expected):
    outcome = _check(fmt, body)
    assert outcome[0] == "ok", outcome
    got = outcome[1]
    assert [(labels, ts) for labels, _, ts in got] == [(labels, ts) for labels, _, ts in expected]
    for (_, v, _), (_, want, _) in zip(got, expected):
        assert (math.isnan(v) and math.isnan(want)) or _bits(v) == _bits(want)


def test_metadata_of_both_formats():
    p = parse_text(b"# HELP a x\\ny \\\\ \\\" z\n# TYPE a gauge\na 1\n", SeriesCache())
    assert p.helps == {"a": 'x\ny \\ \\" z'} and p.types == {"a": "gauge"} and p.units == {}
    p = parse_openmetrics(b'# HELP a x\\ny \\\\ \\" z\n# TYPE a gauge\n# UNIT a_s s\n# HELP b \na 1\n# EOF\n',
                          SeriesCache())
    # OpenMetrics HELP escapes as label values do: \" too.
    assert p.helps == {"a": 'x\ny \\ " z', "b": ""} and p.types == {"a": "gauge"} and p.units == {"a_s": "s"}


ERROR_ROWS = [
    # (format, body, line, message part, samples before); messages marked 2.42 are Prometheus's own words.
    ("text", b"ok 1\nok2 2\nbad{ 2\n", 3, 'invalid label name "2"', 2),  # 2.42 reports 2 samples scraped
    ("text", b"a 0x1p-3\n", 1, 'invalid value "0x1p-3"', 0),  # Go's ParseFloat takes hex, Prometheus refuses "p"
    ("text", b"a 0x10\n", 1, 'invalid value "0x10"', 0),
    ("text", b"a 1_000\n", 1, 'invalid value "1_000"', 0),
    ("text", b"a 1 -5\n", 1, 'invalid timestamp "-5"', 0),  # negative timestamps: refused by the text format
    ("text", b"a 1 1.5\n", 1, 'invalid timestamp "1.5"', 0),
    ("text", b'ok 1\na{b="1",b="2"} 1\n', 2, 'label name "b" is not unique: invalid sample', 2),  # 2.42 words
    ("text", b"a 1\r\n", 1, 'invalid value "1\\r"', 0),
    ("text", b"# TYPE a gaugehistogram\n", 1, 'invalid metric type "gaugehistogram"', 0),
    ("om", b"a 1\n", 2, "data does not end with # EOF", 1),  # 2.42 words and count
    ("om", b"", 1, "data does not end with # EOF", 0),
    ("om", b"a 1\n# EOF\nb 1\n", 2, "unexpected data after # EOF", 1),  # 2.42 words
    ("om", b"a 1\n# EOF\n\n", 2, "unexpected data after # EOF", 1),
    ("om", b"a 1\n\nb 1\n# EOF\n", 2, "unexpected blank line", 1),
    ("om", b"# hello\na 1\n# EOF\n", 1, "invalid comment", 0),
    ("om", b" a 1\n# EOF\n", 1, "unexpected whitespace", 0),
    ("om", b"a  1\n# EOF\n", 1, "expected a single space and a value after metric", 0),
    ("om", b"a\t1\n# EOF\n", 1, "expected a single space and a value after metric", 0),
    ("om", b"a 1 \n# EOF\n", 1, "expected a single space and a timestamp or exemplar after value", 0),
    ("om", b'a{b="1",} 1\n# EOF\n', 1, 'expected label name, got "} 1"', 0),  # no trailing comma in OpenMetrics
    ("om", b'a{b="1" c="2"} 1\n# EOF\n', 1, 'expected "," or "}" after label value', 0),
    ("om", b'a{b = "1"} 1\n# EOF\n', 1, 'expected "=" after label name "b"', 0),
    ("om", b'a{b="1} 1\n# EOF\n', 1, "unterminated label value", 0),
    ("om", b"# TYPE a untyped\n# EOF\n", 1, 'invalid metric type "untyped"', 0),  # 2.42 words
    ("om", b"# TYPE a gauge\n# UNIT a seconds\n# EOF\n", 2, 'unit "seconds" not a suffix of metric "a"', 0),
    ("om", b"# HELP a\n# EOF\n", 1, "expected text in HELP", 0),  # 2.42 words
    ("om", b"# HELP  a x\n# EOF\n", 1, "expected metric name after HELP", 0),
    ("om", b'a_total 1 # {a="b"} x\n# EOF\n', 1, 'invalid value "x"', 0),
    ("om", b'a_total 1 # {a="b"}\n# EOF\n', 1, "expected value after exemplar labels", 0),
    ("om", b'a_total 1 # {a="b"} 1 NaN\n# EOF\n', 1, 'invalid exemplar timestamp "NaN"', 0),
    ("om", b"a 1 NaN\n# EOF\n", 1, 'invalid timestamp "NaN"', 0),
    ("om", b"a 1 +Inf\n# EOF\n", 1, 'invalid timestamp "+Inf"', 0),
    ("om", b"a 1 #\n# EOF\n", 1, 'invalid timestamp "#"', 0),
    ("om", b"a 0x10\n# EOF\n", 1, 'invalid value "0x10"', 0),
    ("om", b"a 1_0\n# EOF\n", 1, 'invalid value "1_0"', 0),
    ("om", b"a 1\r\n# EOF\n", 1, 'invalid value "1\\r"', 0),
    ("om", b'ok 1\na{b="1",b="2"} 1\n# EOF\n', 2, 'label name "b" is not unique: invalid sample', 2),  # 2.42
    ("om", b'a{b="\xff"} 1\n# EOF\n', 1, "invalid UTF-8 label value", 0),
    ("om", b'{a="b"} 1\n# EOF\n', 1, "invalid metric name", 0),
]


@pytest.mark.parametrize("fmt, body, line, message, samples", ERROR_ROWS,
                         ids=[f"{r[0]}:{r[1][:40]!r}" for r in ERROR_ROWS])
def test_refused_bodies_fail_naming_the_line(fmt, body, line, message, samples):
    outcome = _check(fmt, body)
    assert outcome[0] == "error", outcome
    _, got_line, text, got_samples = outcome
    assert (got_line, got_samples) == (line, samples), text
    assert text.startswith(f"line {line}: ") and message in text


def test_a_parse_error_says_which_series_came_before_it():
    cache = SeriesCache()
    parse_text(b"a 1\nb 1\n", cache)
    with pytest.raises(BodyError) as info:
        parse_text(b"a 2\nnew 1\nnew 2\nb 2\nbad{ 1\n", cache)
    err = info.value
    assert err.samples == 4 and sorted(err.refs_before.tolist()) == [0, 1]
    assert (err.new_samples, err.new_keys) == (2, (b"new",))
    assert len(cache.labels) == 2  # The failed scrape added nothing.


# --- OpenMetrics: cold and warm caches agree on mutated bodies -----------------------------------------

_OM_LINES = [
    b"# HELP m Some help.",
    b"# TYPE m counter",
    b'm_total{a="1",b="x y"} 12',
    b'm_total{a="2"} 1.5e3 1700000000.5',
    b"n 7",
    b'n{o="p"} -Inf # {t="1"} 2 3',
    b'o{p="q\\"r"} NaN',
    b"p +Inf 6",
]
_NOISE = b' \t{}",=#\\\x00\r\n+-.eE019aINnfy_xEOF'


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(("insert", "delete", "replace")), st.sampled_from(_NOISE)),
        min_size=1,
        max_size=3,
    )
)
def test_a_mutated_openmetrics_body_parses_the_same_on_a_cold_and_a_warm_cache(mutations):
    base = b"\n".join(_OM_LINES) + b"\n# EOF\n"
    body = bytearray(base)
    for pos, op, byte in mutations:
        pos %= len(body) + 1
        if op == "insert":
            body[pos:pos] = bytes([byte])
        elif pos < len(body):
            body[pos : pos + 1] = b"" if op == "delete" else bytes([byte])
    warm = SeriesCache()
    parse_openmetrics(base, warm)
    parse_openmetrics(b"\n".join(line if line.startswith(b"#") or line.count(b" ") > 1 else line + b" 1.5"
                                 for line in _OM_LINES) + b"\n# EOF\n", warm)
    assert _comparable(_outcome("om", bytes(body), SeriesCache())) == _comparable(_outcome("om", bytes(body), warm))
