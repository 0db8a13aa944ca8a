"""Hostile bodies for the exposition parsers: each megabyte-sized malformed input is refused (or
parsed) within the issue's 5 s bound, with an error naming its line and quoting a bounded excerpt.
Before, a 1 MiB malformed OpenMetrics line took 8 to 15 s (the diagnosis sliced the rest of the line
once per label)."""

from __future__ import annotations

import io
import time

import pytest

from shardmon.ingest.backfill import read_batches
from shardmon.ingest.exposition import SeriesCache, parse_openmetrics, parse_text
from shardmon.model.errors import ExpositionError

MIB = 1 << 20
BOUND_S = 5.0
MAX_MESSAGE = 600

OM_CASES = {
    "a 1 MiB line of label pairs ending in a comma": (b"a{" + b'b="c",' * (MIB // 6) + b"} 1\n# EOF\n", 1),
    "a 1 MiB exemplar that never closes": (b'a{b="c"} 1 # {' + b'b="c",' * (MIB // 6) + b"\n# EOF\n", 1),
    "a 1 MiB label value that never closes": (b'a{b="' + b"x" * MIB + b"\n# EOF\n", 1),
    "1 MiB of opening braces": (b"a" + b"{" * MIB + b" 1\n# EOF\n", 1),
    "1 MiB of spaces": (b"a" + b" " * MIB + b"1\n# EOF\n", 1),
    "1 MiB of backslashes": (b'a{b="' + b"\\" * (MIB + 1) + b'"} 1\n# EOF\n', 1),
    "10^5 malformed lines": (b"{\n" * 100_000 + b"# EOF\n", 1),
    "2x10^4 series then a malformed line": (b"".join(b"a%d 1 17e8\n" % i for i in range(20_000)) + b"bad{\n# EOF\n", 20_001),
}
TEXT_CASES = {
    "a 1 MiB label value that never closes": (b'a{b="' + b"x" * MIB + b"\n", 1),
    "1 MiB of label pairs without a closing brace": (b"a{" + b"".join(b'b%d="c",' % i for i in range(MIB // 12)) + b"x 1\n", 1),
    "1 MiB of opening braces": (b"a" + b"{" * MIB + b" 1\n", 1),
    "1 MiB of escaped quotes, unterminated": (b'a{b="' + b'\\"' * (MIB // 2) + b" 1\n", 1),
    "a 1 MiB value": (b"a " + b"1" * MIB + b"\n", 1),
    "a 1 MiB name followed by junk": (b"a" * MIB + b"{ 1\n", 1),
    "10^5 malformed lines": (b"{\n" * 100_000, 1),
    "2x10^4 series then a malformed line": (b"".join(b"a%d 1\n" % i for i in range(20_000)) + b"bad{\n", 20_001),
    "NULs on every line": (b"a\x00 1\n" * (MIB // 6), 1),
}


def refused_in_time(parse, body: bytes, line: int) -> None:
    t0 = time.monotonic()
    with pytest.raises(ExpositionError) as err:
        parse(body)
    assert time.monotonic() - t0 < BOUND_S
    assert err.value.line == line and str(err.value).startswith(f"line {line}: ")
    assert len(str(err.value)) < MAX_MESSAGE


@pytest.mark.parametrize("body, line", OM_CASES.values(), ids=OM_CASES.keys())
def test_openmetrics_scrapes_refuse_hostile_bodies_in_time(body, line):
    refused_in_time(lambda b: parse_openmetrics(b, SeriesCache()), body, line)


@pytest.mark.parametrize("body, line", OM_CASES.values(), ids=OM_CASES.keys())
def test_backfill_refuses_hostile_files_in_time(body, line):
    refused_in_time(lambda b: sum(x.num_samples for x, _ in read_batches(io.BytesIO(b))), body, line)


@pytest.mark.parametrize("body, line", TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_text_scrapes_refuse_hostile_bodies_in_time(body, line):
    refused_in_time(lambda b: parse_text(b, SeriesCache()), body, line)


@pytest.mark.parametrize("parse, body", [
    (parse_text, b'a{b="' + b"x" * MIB + b'"} 1\n'),
    (parse_openmetrics, b'a{b="' + b"x" * MIB + b'"} 1\n# EOF\n'),
    (parse_text, b"a{" + b'b="c",' * (MIB // 6) + b"} 1\n"),  # A repeated label: refused, counted.
])
def test_big_but_valid_lines_are_read_in_time(parse, body):
    t0 = time.monotonic()
    try:
        parse(body, SeriesCache())
    except ExpositionError as exc:
        assert "not unique" in str(exc)
    assert time.monotonic() - t0 < BOUND_S
