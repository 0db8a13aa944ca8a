"""The text exposition parser: Prometheus's acceptance rules, its errors, and the series cache.

Most cases run twice: on a cold cache (every line through the exact line parser) and on a warm one
(known series through the bulk path), because the two paths must agree on every byte.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.ingest.exposition import NO_TIMESTAMP, ParsedScrape, SeriesCache, parse_text
from shardmon.model.errors import ExpositionError
from shardmon.model.labels import Labels, escape_label_value


def samples(parsed: ParsedScrape, cache: SeriesCache) -> list[tuple[dict[str, str], float, int]]:
    return [
        (cache.labels[ref].to_dict(), value, stamp)
        for ref, value, stamp in zip(parsed.refs.tolist(), parsed.values.tolist(), parsed.timestamps_ms.tolist())
    ]


def parse_cold_and_warm(body: bytes) -> list[tuple[dict[str, str], float, int]]:
    """Parse ``body`` on a fresh cache, then again on the warmed cache; both must agree."""
    cache = SeriesCache()
    cold = samples(parse_text(body, cache), cache)
    warm = samples(parse_text(body, cache), cache)
    assert [bits(v) for _, v, _ in warm] == [bits(v) for _, v, _ in cold]
    assert [(labels, stamp) for labels, _, stamp in warm] == [(labels, stamp) for labels, _, stamp in cold]
    return warm


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def error_of(body: bytes, cache: SeriesCache | None = None) -> ExpositionError:
    with pytest.raises(ExpositionError) as info:
        parse_text(body, cache if cache is not None else SeriesCache())
    return info.value


# --- What is accepted -----------------------------------------------------------------------------


def test_parses_help_type_and_samples_of_a_counter():
    body = (
        b"# HELP http_requests_total The total number of HTTP requests.\n"
        b"# TYPE http_requests_total counter\n"
        b'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        b'http_requests_total{method="post",code="400"}    3 1395066363000\n'
    )
    cache = SeriesCache()
    parsed = parse_text(body, cache)
    assert parsed.types == {"http_requests_total": "counter"}
    assert parsed.helps == {"http_requests_total": "The total number of HTTP requests."}
    assert samples(parsed, cache) == [
        ({"__name__": "http_requests_total", "code": "200", "method": "post"}, 1027.0, 1395066363000),
        ({"__name__": "http_requests_total", "code": "400", "method": "post"}, 3.0, 1395066363000),
    ]
    assert parsed.refs.dtype == np.int64 and parsed.values.dtype == np.float64
    assert parsed.timestamps_ms.dtype == np.int64


def test_every_metric_type_is_recorded_and_another_is_refused():
    body = b"".join(b"# TYPE m_%s %s\n" % (t, t) for t in (b"counter", b"gauge", b"histogram", b"summary", b"untyped"))
    parsed = parse_text(body, SeriesCache())
    assert parsed.types == {f"m_{t}": t for t in ("counter", "gauge", "histogram", "summary", "untyped")}
    assert parsed.refs.shape == (0,)
    err = error_of(b"a 1\n# TYPE a foo\n")
    assert err.line == 2 and 'invalid metric type "foo"' in str(err)


def test_help_text_unescapes_backslash_and_newline_and_keeps_other_escapes():
    parsed = parse_text(b"# HELP a x\\ny \\\\ z \\t \\\" end\n# HELP b\n# HELP c \n", SeriesCache())
    assert parsed.helps == {"a": 'x\ny \\ z \\t \\" end', "b": "", "c": ""}


def test_label_values_unescape_backslash_quote_and_newline_and_keep_other_escapes():
    got = parse_cold_and_warm(b'a{b="q\\"uote",c="back\\\\slash",d="new\\nline",e="tab\\t",f="\\\\n"} 1\n')
    assert got[0][0] == {"__name__": "a", "b": 'q"uote', "c": "back\\slash", "d": "new\nline", "e": "tab\\t", "f": "\\n"}


def test_label_values_may_hold_braces_spaces_hashes_and_utf8():
    body = 'a{path="/api/{id} x",note="# HELP a b",name="Grüße ☃"} 2\n'.encode()
    assert parse_cold_and_warm(body) == [
        ({"__name__": "a", "path": "/api/{id} x", "note": "# HELP a b", "name": "Grüße ☃"}, 2.0, NO_TIMESTAMP)
    ]


def test_an_empty_label_value_is_kept_until_target_labels_are_attached():
    # a{instance=""} must stop a scrape with honor_labels from attaching the target's instance (the
    # Pushgateway relies on it), so the parser keeps empty values; attaching drops them afterwards.
    cache = SeriesCache()
    parsed = parse_text(b'a{b=""} 1\na 2\n', cache)
    assert parsed.refs.tolist() == [0, 1]
    assert cache.labels == [Labels([("__name__", "a"), ("b", "")]), Labels([("__name__", "a")])]


def test_timestamps_are_optional_int64_milliseconds():
    body = b"a 1\nb 2 1700000000000\nc 3 0\nd 4 9223372036854775807\ne 5 007\n"
    assert [(labels["__name__"], v, t) for labels, v, t in parse_cold_and_warm(body)] == [
        ("a", 1.0, NO_TIMESTAMP),
        ("b", 2.0, 1700000000000),
        ("c", 3.0, 0),
        ("d", 4.0, 2**63 - 1),
        ("e", 5.0, 7),
    ]
    assert NO_TIMESTAMP == np.iinfo(np.int64).min


@pytest.mark.parametrize(
    "token, expected",
    [
        (b"1", 1.0),
        (b"-1", -1.0),
        (b"+1", 1.0),
        (b"007", 7.0),
        (b".5", 0.5),
        (b"5.", 5.0),
        (b"1e5", 1e5),
        (b"1E+05", 1e5),
        (b"4.9351e-05", 4.9351e-05),
        (b"7.424100000000001e-05", 7.424100000000001e-05),
        (b"0.30000000000000004", 0.30000000000000004),
        (b"123456789012345678901234567890", 1.2345678901234568e29),
        (b"9007199254740993", 9007199254740992.0),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b"1e-400", 0.0),
        (b"-0", -0.0),
        (b"-0.0", -0.0),
        (b"+Inf", math.inf),
        (b"-Inf", -math.inf),
        (b"Inf", math.inf),
        (b"inf", math.inf),
        (b"+Infinity", math.inf),
        (b"-infinity", -math.inf),
        (b"Infinity", math.inf),
        (b"NaN", math.nan),
        (b"nan", math.nan),
        (b"NAN", math.nan),
    ],
)
def test_values_are_parsed_as_go_parses_floats(token, expected):
    ((_, value, _),) = parse_cold_and_warm(b"a " + token + b"\n")
    if math.isnan(expected):
        assert math.isnan(value)
    else:
        assert bits(value) == bits(expected)


@pytest.mark.parametrize(
    "token",
    [b"+nan", b"-NaN", b"1e", b"e5", b".", b"+", b"-", b"1_000", b"0x10", b"0x1p3", b"infinit", b"1.2.3",
     b"1d", b"true", b"\xd9\xa1", b"1,5", b'"1"', b"[1]", b"null", b"1\r"],
)
def test_values_go_would_refuse_are_errors_on_a_cold_and_a_warm_cache(token):
    body = b"a 1\na " + token + b"\n"
    assert 'invalid value "' in str(error_of(body))
    cache = SeriesCache()
    parse_text(b"a 1\na 2\n", cache)  # Now "a" is known and the bad value meets the bulk path.
    err = error_of(body, cache)
    assert err.line == 2 and "invalid value" in str(err)


def test_a_value_beyond_float64_is_an_error_as_in_go():
    for body in (b"a 1e400\n", b"a -1e400\n", b"a 1" + b"0" * 400 + b"\n"):
        assert "out of range" in str(error_of(body))
        cache = SeriesCache()
        parse_text(b"a 1\n", cache)
        assert "out of range" in str(error_of(body, cache))


def test_histogram_and_summary_series_are_plain_series_with_their_family_type():
    body = (
        b"# HELP rpc_seconds RPC latency.\n"
        b"# TYPE rpc_seconds summary\n"
        b'rpc_seconds{quantile="0.5"} NaN\n'
        b'rpc_seconds{quantile="0.99"} 0.25\n'
        b"rpc_seconds_sum 17.5\n"
        b"rpc_seconds_count 70\n"
        b"# TYPE req_seconds histogram\n"
        b'req_seconds_bucket{le="0.1"} 3\n'
        b'req_seconds_bucket{le="1"} 5\n'
        b'req_seconds_bucket{le="+Inf"} 6\n'
        b"req_seconds_sum 2.5\n"
        b"req_seconds_count 6\n"
    )
    cache = SeriesCache()
    parsed = parse_text(body, cache)
    assert parsed.types == {"rpc_seconds": "summary", "req_seconds": "histogram"}
    got = samples(parsed, cache)
    assert [labels for labels, _, _ in got] == [
        {"__name__": "rpc_seconds", "quantile": "0.5"},
        {"__name__": "rpc_seconds", "quantile": "0.99"},
        {"__name__": "rpc_seconds_sum"},
        {"__name__": "rpc_seconds_count"},
        # Labels stay as exposed: "1" is not rewritten to "1.0".
        {"__name__": "req_seconds_bucket", "le": "0.1"},
        {"__name__": "req_seconds_bucket", "le": "1"},
        {"__name__": "req_seconds_bucket", "le": "+Inf"},
        {"__name__": "req_seconds_sum"},
        {"__name__": "req_seconds_count"},
    ]
    assert math.isnan(got[0][1]) and [v for _, v, _ in got[1:]] == [0.25, 17.5, 70, 3, 5, 6, 2.5, 6]


def test_blank_lines_and_other_comments_are_ignored():
    body = (
        b"\n"
        b"   \t\n"
        b"# just a comment\n"
        b"#HELP not metadata without a space after the hash\n"
        b"# HELPfoo neither\n"
        b"# Hrandom\n"
        b"#\n"
        b"  # HELP a indented metadata counts\n"
        b"a 1\n"
        b"\n"
    )
    parsed = parse_text(body, SeriesCache())
    assert parsed.helps == {"a": "indented metadata counts"} and parsed.types == {}
    assert parsed.values.tolist() == [1.0]


def test_a_body_without_a_trailing_newline_and_an_empty_body():
    assert [v for _, v, _ in parse_cold_and_warm(b"a 1\nb 2")] == [1.0, 2.0]
    assert [t for _, _, t in parse_cold_and_warm(b"a 1\nb 2 5")] == [NO_TIMESTAMP, 5]
    assert parse_cold_and_warm(b"") == []
    assert parse_cold_and_warm(b"\n\n\n") == []


def test_whitespace_and_commas_are_as_lenient_as_prometheus():
    body = (
        b'a{ b="1" , c = "2" , } 1\n'  # Spaces everywhere and a trailing comma.
        b'a { b = "1" c = "3" }\t2\n'  # A space before the brace, no comma, a tab before the value.
        b'a{b="1"}3\n'  # The value right after the brace.
        b"  a  4  \t 10 \t\n"  # Indented, with runs of blanks around the value and timestamp.
        b"a{} 5\n"
        b"b+6\n"  # Prometheus ends the name at "+" and reads "+6" as the value.
    )
    assert parse_cold_and_warm(body) == [
        ({"__name__": "a", "b": "1", "c": "2"}, 1.0, NO_TIMESTAMP),
        ({"__name__": "a", "b": "1", "c": "3"}, 2.0, NO_TIMESTAMP),
        ({"__name__": "a", "b": "1"}, 3.0, NO_TIMESTAMP),
        ({"__name__": "a"}, 4.0, 10),
        ({"__name__": "a"}, 5.0, NO_TIMESTAMP),
        ({"__name__": "b"}, 6.0, NO_TIMESTAMP),
    ]


def test_metadata_text_follows_the_lexer_to_the_letter():
    # The text token is the rest of the line minus one separator, so a second space is kept, and a
    # TYPE with extra blanks is not a known type (as in Prometheus).
    assert parse_text(b"# HELP a  two spaces\n", SeriesCache()).helps == {"a": " two spaces"}
    assert 'invalid metric type " counter"' in str(error_of(b"# TYPE a  counter\n"))
    assert 'invalid metric type "counter "' in str(error_of(b"# TYPE a counter \n"))
    assert 'invalid metric type ""' in str(error_of(b"# TYPE a\n"))


def test_nul_bytes_are_allowed_in_label_values_and_a_nul_at_a_line_start_ends_the_input():
    got = parse_cold_and_warm(b'a{b="x\x00y"} 1\nc 2\n\x00\x00 garbage padding\nd 3\n')
    assert got == [({"__name__": "a", "b": "x\x00y"}, 1.0, NO_TIMESTAMP), ({"__name__": "c"}, 2.0, NO_TIMESTAMP)]
    assert parse_cold_and_warm(b"a 1\n#\x00 rest is ignored\nb{ 2\n") == [({"__name__": "a"}, 1.0, NO_TIMESTAMP)]
    assert parse_cold_and_warm(b"a 1\n# \x00 rest is ignored\nb{ 2\n") == [({"__name__": "a"}, 1.0, NO_TIMESTAMP)]
    assert parse_cold_and_warm(b"a 1\n# a \x00 comment\nb 2\n")[1][0] == {"__name__": "b"}
    assert parse_text(b"# HELP a x\x00y\n", SeriesCache()).helps == {"a": "x\x00y"}
    assert error_of(b"# HELP a\x00 x\n").line == 1
    assert error_of(b"a 1\nb\x00 2\n").line == 2
    assert error_of(b"a 1 5\x00\n").line == 1


# --- What is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, line, message",
    [
        (b"ok 1\n0foo 1\n", 2, 'invalid metric name "0foo"'),
        (b"ok 1\nfoo.bar 1\n", 2, 'invalid metric name "foo.bar"'),
        (b"ok 1\nfoo-bar{a=\"b\"} 1\n", 2, 'invalid metric name "foo-bar"'),
        (b'{a="b"} 1\n', 1, "metric name missing"),
        (b"\xef\xbb\xbfa 1\n", 1, "invalid metric name"),
        (b'ok 1\n\na{b="c} 1\nz 2\n', 3, 'unterminated label value "\\"c} 1"'),
        (b'a{b="c\\"} 1\n', 1, "unterminated label value"),
        (b"a\n", 1, "expected value after metric, got end of line"),
        (b'a{b="c"}\n', 1, "expected value after metric"),
        (b'a{b="c"} {\n', 1, "expected value after metric"),
        (b"a 1.2.3\n", 1, 'invalid value "1.2.3"'),
        (b"a 1 12x\n", 1, 'invalid timestamp "12x"'),
        (b"a 1 -5\n", 1, 'invalid timestamp "-5"'),
        (b"a 1 1.5\n", 1, 'invalid timestamp "1.5"'),
        (b"a 1 9223372036854775808\n", 1, 'timestamp "9223372036854775808" out of range'),
        (b"a 1 2 3\n", 1, 'expected end of line after timestamp, got "3"'),
        (b"a 1{\n", 1, 'expected timestamp or end of line after value, got "{"'),
        (b"a 1\n# TYPE a gauges\n", 2, 'invalid metric type "gauges"'),
        (b"# TYPE 0a counter\n", 1, 'expected metric name after TYPE, got "0a counter"'),
        (b"# HELP \n", 1, "expected metric name after HELP, got end of line"),
        (b"# HELP a bad \xff utf8\n", 1, "is not valid UTF-8"),
        (b'a{b="1",b="2"} 1\n', 1, 'label name "b" is not unique: invalid sample'),
        (b'a{__name__="b"} 1\n', 1, 'label name "__name__" is not unique: invalid sample'),
        (b'a{b="\xff"} 1\n', 1, 'invalid UTF-8 label value "\\xff"'),
        (b'a{b="\xed\xa0\x80"} 1\n', 1, "invalid UTF-8 label value"),  # A surrogate, invalid in Go too.
        (b'a{1b="c"} 1\n', 1, 'invalid label name "1b"'),
        (b'a{b-c="d"} 1\n', 1, 'invalid label name "b-c"'),
        (b'a{b="c",,} 1\n', 1, 'expected label name or "}", got ",} 1"'),
        (b'a{="c"} 1\n', 1, "expected label name"),
        (b"a{b='c'} 1\n", 1, "expected label value for \"b\", got \"'c'} 1\""),
        (b'a{b "c"} 1\n', 1, 'expected "=" after label name "b"'),
        (b'a{b="c" 1\n', 1, 'invalid label name "1"'),  # Commas are optional, so "1" is read as a name.
        (b"a 1\r\n", 1, 'invalid value "1\\r"'),
    ],
)
def test_a_malformed_line_fails_the_scrape_naming_its_line_and_the_problem(body, line, message):
    err = error_of(body)
    assert err.line == line, str(err)
    assert message in str(err)
    assert str(err).startswith(f"line {line}: ")


def test_the_first_malformed_line_is_reported_even_when_the_bulk_path_sees_a_later_one():
    cache = SeriesCache()
    parse_text(b"a 1\nb 2\nc 3\n", cache)
    err = error_of(b"a 1\nb{ 2\nc x\n", cache)
    assert err.line == 2


def test_a_bad_value_on_a_known_series_names_its_line():
    cache = SeriesCache()
    good = b"".join(b"m{i=\"%d\"} %d\n" % (i, i) for i in range(100))
    parse_text(good, cache)
    bad = good.replace(b'm{i="57"} 57\n', b'm{i="57"} 5x7\n')
    err = error_of(bad, cache)
    assert err.line == 58 and 'invalid value "5x7"' in str(err)


def test_a_failed_scrape_adds_nothing_to_the_cache():
    cache = SeriesCache()
    parse_text(b"a 1\n", cache)
    error_of(b"a 1\nb 2\nc{d=} 3\n", cache)
    assert len(cache) == 1 and cache.labels == [Labels.from_dict({"__name__": "a"})]


def test_long_bad_input_is_quoted_cut_short():
    err = error_of(b"a " + b"x" * 500 + b"\n")
    assert str(err).endswith('x..."') and len(str(err)) < 150


# --- The series cache -----------------------------------------------------------------------------


def body_of(series: range, value: float = 1.0, stamp: int | None = None) -> bytes:
    suffix = b"" if stamp is None else b" %d" % stamp
    lines = [b"# HELP m A metric.", b"# TYPE m gauge"]
    lines += [b'm{i="%d",job="x"} %r%s' % (i, value, suffix) for i in series]
    return b"\n".join(lines) + b"\n"


def test_a_second_parse_of_the_same_body_adds_no_entries_and_returns_the_same_refs():
    cache = SeriesCache()
    first = parse_text(body_of(range(50)), cache)
    assert len(cache) == 50 and first.refs.tolist() == list(range(50))
    second = parse_text(body_of(range(50)), cache)
    assert len(cache) == 50 and second.refs.tolist() == first.refs.tolist()
    assert cache.labels[7] == Labels.from_dict({"__name__": "m", "i": "7", "job": "x"})


def test_a_changed_value_or_timestamp_is_picked_up_on_a_warm_cache():
    cache = SeriesCache()
    parse_text(body_of(range(10), 1.0), cache)
    assert parse_text(body_of(range(10), 2.5), cache).values.tolist() == [2.5] * 10
    assert parse_text(body_of(range(10), 3.0, stamp=123), cache).timestamps_ms.tolist() == [123] * 10
    assert parse_text(body_of(range(10), 4.0, stamp=456), cache).values.tolist() == [4.0] * 10
    assert parse_text(body_of(range(10), 5.0), cache).timestamps_ms.tolist() == [NO_TIMESTAMP] * 10
    assert len(cache) == 10 and cache.generation == 0


def test_new_series_get_new_indices_and_old_ones_keep_theirs():
    cache = SeriesCache()
    parse_text(body_of(range(5)), cache)
    parsed = parse_text(body_of(range(3, 8)), cache)
    assert parsed.refs.tolist() == [3, 4, 5, 6, 7]
    assert [cache.labels[r].get("i") for r in parsed.refs.tolist()] == ["3", "4", "5", "6", "7"]


def test_two_spellings_of_one_series_share_an_index():
    cache = SeriesCache()
    parsed = parse_text(b'a{x="1",y="2"} 1\na{y="2",x="1"} 2\na { x = "1", y = "2" } 3\n', cache)
    assert parsed.refs.tolist() == [0, 0, 0]
    assert len(cache) == 3 and len(cache.labels) == 1


def test_samples_keep_body_order_across_known_new_timestamped_and_unusual_lines():
    cache = SeriesCache()
    parse_text(b"a 1\nb 2 5\n", cache)
    body = b"new 0\na 1\nb 2 6\n  a 3\nother 4 7\na\t5\n"
    got = samples(parse_text(body, cache), cache)
    assert [(labels["__name__"], v, t) for labels, v, t in got] == [
        ("new", 0.0, NO_TIMESTAMP),
        ("a", 1.0, NO_TIMESTAMP),
        ("b", 2.0, 6),
        ("a", 3.0, NO_TIMESTAMP),
        ("other", 4.0, 7),
        ("a", 5.0, NO_TIMESTAMP),
    ]


def test_the_cache_drops_series_gone_from_the_target_and_bumps_its_generation():
    cache = SeriesCache()
    parse_text(body_of(range(3000)), cache)
    assert len(cache) == 3000 and cache.generation == 0
    # 3000 cached entries for 100 live series is far more than 2 x 100 + 1000: compact.
    parsed = parse_text(body_of(range(2950, 3050)), cache)
    assert cache.generation == 1
    assert len(cache) == 100 and len(cache.labels) == 100
    assert sorted(parsed.refs.tolist()) == list(range(100))
    assert [cache.labels[r].get("i") for r in parsed.refs.tolist()] == [str(i) for i in range(2950, 3050)]
    # The compacted cache resolves the same body without new entries or another compaction.
    again = parse_text(body_of(range(2950, 3050)), cache)
    assert again.refs.tolist() == parsed.refs.tolist() and cache.generation == 1 and len(cache) == 100


def test_the_cache_keeps_entries_while_a_scrape_is_only_somewhat_smaller():
    cache = SeriesCache()
    parse_text(body_of(range(1500)), cache)
    parse_text(body_of(range(1000)), cache)  # 1500 <= 2 x 1000 + 1000
    assert cache.generation == 0 and len(cache) == 1500


# --- Properties -----------------------------------------------------------------------------------

_label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(lambda s: s != "__name__")
_label_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_values = st.floats(allow_nan=False) | st.integers(-(2**70), 2**70).map(float)


def _format(value: float, style: int) -> str:
    if math.isinf(value):
        return ("+Inf", "Infinity", "inf")[style % 3] if value > 0 else "-Inf"
    return (repr(value), f"{value:.17g}", f"{value:g}", f"{value:e}")[style % 4]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True),
            st.dictionaries(_label_names, _label_values, max_size=4),
            _values,
            st.integers(0, 3),
            st.none() | st.integers(0, 2**63 - 1),
        ),
        max_size=20,
    )
)
def test_rendered_series_parse_back_to_their_labels_and_exact_values(rows):
    lines, expected = [], []
    for name, labels, value, style, stamp in rows:
        text = _format(value, style)
        pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{pairs}}} {text}" + ("" if stamp is None else f" {stamp}"))
        expected.append(({"__name__": name, **labels}, float(text), NO_TIMESTAMP if stamp is None else stamp))
    got = parse_cold_and_warm("\n".join(lines).encode())
    assert [(labels, stamp) for labels, _, stamp in got] == [(labels, stamp) for labels, _, stamp in expected]
    assert [bits(v) for _, v, _ in got] == [bits(v) for _, v, _ in expected]


_BASE_LINES = [
    b"# HELP m Some help.",
    b"# TYPE m counter",
    b'm{a="1",b="x y"} 12',
    b'm{a="2"} 1.5e3 1700000000000',
    b"n 7",
    b"n{} -Inf",
    b'o{p="q\\"r"} NaN 5',
    b"p +Inf 6",
    b"",
]
_NOISE = b' \t{}",=#\\\x00\r\n+-.eE019aINnfy_x'


def _outcome(body: bytes, cache: SeriesCache) -> tuple:
    try:
        parsed = parse_text(body, cache)
    except ExpositionError as exc:
        return ("error", str(exc))
    return ("ok", [(labels, bits(v), t) for labels, v, t in samples(parsed, cache)], parsed.types, parsed.helps)


@pytest.mark.parametrize("warm_with_timestamps", [False, True])
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(("insert", "delete", "replace")), st.sampled_from(_NOISE)),
        min_size=1,
        max_size=3,
    )
)
def test_a_mutated_body_parses_the_same_on_a_cold_and_a_warm_cache(warm_with_timestamps, mutations):
    base = b"\n".join(_BASE_LINES)
    body = bytearray(base)
    for pos, op, byte in mutations:
        pos %= len(body) + 1
        if op == "insert":
            body[pos:pos] = bytes([byte])
        elif pos < len(body):
            body[pos : pos + 1] = b"" if op == "delete" else bytes([byte])
    # Every base series is known to the warm cache, so the bulk path sees the mutated lines; a warm-up
    # with timestamps on every line makes it try the timestamped reading first.
    warm = SeriesCache()
    parse_text(base, warm)
    if warm_with_timestamps:
        parse_text(b"\n".join(line if line.count(b" ") > 1 else line + b" 1" for line in _BASE_LINES[2:-1]), warm)
    assert _outcome(bytes(body), SeriesCache()) == _outcome(bytes(body), warm)
