"""Fuzzing the exposition parsers (text format 0.0.4, OpenMetrics 1.0 and the OpenMetrics backfill
reader) with random and adversarial bodies: the only error they may raise is ExpositionError (naming a
line of the body and quoting a bounded excerpt), every input is handled within the time budget, a
failed parse leaves the series cache as it was, and what parses is self-consistent."""

from __future__ import annotations

import io
import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shardmon.ingest.backfill import read_batches
from shardmon.ingest.exposition import SeriesCache, parse_openmetrics, parse_text
from shardmon.model.errors import ExpositionError
from tests.unit.fuzzing import fuzz

#: An error message is bounded whatever the input: the line number, a fixed text and short quotes.
MAX_MESSAGE = 600

# Bits of both formats, valid and broken, so random sequences of them get deep into the parsers.
TOKENS = [
    b"a", b"metric_name", b"x_total", b"_", b":", b"0", b"le", b"__name__", b"\xc3\xa9", b"\xff",
    b"{", b"}", b"=", b",", b'"', b"\\", b'\\"', b"\\n", b"\\\\", b" ", b"  ", b"\t", b"\n", b"\r", b"\x00",
    b"#", b"# HELP ", b"# TYPE ", b"# UNIT ", b"# EOF", b"# {", b"counter", b"gauge", b"histogram", b"summary",
    b"untyped", b"unknown", b"info", b"stateset", b"gaugehistogram",
    b"1", b"-1", b"1.5", b"1e3", b"1e400", b"-0", b"NaN", b"nan", b"+Inf", b"-Inf", b"Inf", b"infinity",
    b"0x1p3", b"1_000", b"1700000000000", b"1700000000.123", b"-1", b"99999999999999999999",
    b'{a="b"}', b'{a="b",c="d"}', b'{a="b" c="d"}', b"{}", b'{a="}', b' # {t="1"} 1 1',
]

lines_of_tokens = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)
token_bodies = st.lists(lines_of_tokens, max_size=20).map(b"\n".join)

# A fragment repeated many times, between a prefix and a suffix: what makes a parser quadratic shows.
FRAGMENTS = [b"{", b"}", b'a="b",', b'a="b"', b"\\", b'\\"', b" ", b"\t", b"a", b"#", b'"', b"=", b",",
             b"\x00", b"1", b"\n", b"{a=", b" # {", b'a="', b"\\\\", b"e"]
PREFIXES = [b"", b"a", b"a{", b'a{b="', b"a ", b"# HELP a ", b"# TYPE a ", b"a{b=\"c\"} 1 ", b"a 1 # {",
            b"#", b"{", b"a{b=\"c\"}"]
SUFFIXES = [b"", b" 1", b"} 1", b'"} 1', b"\n", b" 1\n# EOF\n", b"\n# EOF", b'"', b" 1 1"]


@st.composite
def repeated(draw) -> bytes:
    frag = draw(st.sampled_from(FRAGMENTS))
    n = draw(st.integers(1, 20_000))
    return draw(st.sampled_from(PREFIXES)) + frag * n + draw(st.sampled_from(SUFFIXES))


bodies = st.one_of(st.binary(max_size=2048), token_bodies, repeated())

VALID = (b"# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
         b'http_requests_total{code="200",method="get"} 1027\nhttp_requests_total{code="400",method="post"} 3\n'
         b"# TYPE temp gauge\ntemp 21.5\n")
VALID_OM = VALID.replace(b" 1027", b" 1027 1700000000.5") + b"# EOF\n"


def parse_or_error(parse, body: bytes, cache: SeriesCache):
    """What parsing ``body`` gives, comparable across caches: the samples (labels, value bits,
    timestamp) and metadata, or the ExpositionError's message (checked); any other exception fails."""
    lines = body.count(b"\n") + 2
    try:
        parsed = parse(body, cache)
    except ExpositionError as exc:
        assert 1 <= exc.line <= lines, (exc.line, lines)
        assert len(str(exc)) <= MAX_MESSAGE, str(exc)[:200]
        return str(exc)
    n = len(parsed.refs)
    assert len(parsed.values) == n and len(parsed.timestamps_ms) == n
    assert all(0 <= r < len(cache.labels) for r in parsed.refs.tolist())
    samples = [(cache.labels[r], struct.pack("<d", v), t)
               for r, v, t in zip(parsed.refs.tolist(), parsed.values.tolist(), parsed.timestamps_ms.tolist())]
    return samples, parsed.types, parsed.helps, parsed.units


@fuzz()
@given(bodies)
def test_the_text_parser_raises_only_exposition_errors(body):
    cache = SeriesCache()
    first = parse_or_error(parse_text, body, cache)
    # Again on the warmed cache (the bulk paths): the same outcome.
    assert first == parse_or_error(parse_text, body, cache)


@fuzz()
@given(bodies)
def test_the_openmetrics_parser_raises_only_exposition_errors(body):
    cache = SeriesCache()
    first = parse_or_error(parse_openmetrics, body, cache)
    assert first == parse_or_error(parse_openmetrics, body, cache)


@fuzz()
@given(bodies)
def test_the_backfill_reader_raises_only_exposition_errors(body):
    try:
        for batch, progress in read_batches(io.BytesIO(body), batch_samples=7):
            assert batch.num_samples <= 7 and progress.bytes_read <= len(body)
    except ExpositionError as exc:
        assert exc.line >= 1 and len(str(exc)) <= MAX_MESSAGE


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` with a few bytes replaced, inserted or deleted: mostly the same layout, so the bulk
    paths of a warmed cache meet it."""
    body = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from(list(b' \t\n{}="\\#,.-+eE0123456789aZ\x00\xff')))
        if action == "insert" or pos == len(body):
            body.insert(pos, byte)
        elif action == "replace":
            body[pos] = byte
        else:
            del body[pos]
    return bytes(body)


@fuzz()
@given(mutated(VALID))
def test_a_warmed_text_cache_survives_a_broken_body(body):
    cache = SeriesCache()
    before = parse_or_error(parse_text, VALID, cache)
    outcome = parse_or_error(parse_text, body, cache)
    assert outcome == parse_or_error(parse_text, body, SeriesCache())  # As on a cold cache.
    assert before == parse_or_error(parse_text, VALID, cache)  # And the cache still reads the good body alike.


@fuzz()
@given(mutated(VALID_OM))
def test_a_warmed_openmetrics_cache_survives_a_broken_body(body):
    cache = SeriesCache()
    before = parse_or_error(parse_openmetrics, VALID_OM, cache)
    outcome = parse_or_error(parse_openmetrics, body, cache)
    assert outcome == parse_or_error(parse_openmetrics, body, SeriesCache())
    assert before == parse_or_error(parse_openmetrics, VALID_OM, cache)


@fuzz()
@given(st.lists(st.tuples(st.text(max_size=30), st.floats(allow_nan=True, allow_infinity=True)), max_size=30))
def test_label_values_of_any_text_round_trip(pairs):
    from shardmon.model.labels import escape_label_value

    want = dict(pairs)
    body = b"".join(f'm{{v="{escape_label_value(v)}"}} {repr(x).replace("inf", "Inf")}\n'.encode() for v, x in want.items())
    cache = SeriesCache()
    parsed = parse_text(body, cache)
    got = {cache.labels[r].get("v"): x for r, x in zip(parsed.refs.tolist(), parsed.values.tolist())}
    assert len(parsed.refs) == len(want)
    for v, x in want.items():
        value = got[v]
        assert struct.pack("<d", value) == struct.pack("<d", x) or (np.isnan(value) and np.isnan(x))
