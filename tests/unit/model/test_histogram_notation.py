"""The test scripts' native histogram notation: parse, expand, format, compare, and its use by promqltest."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.histogram import GAUGE_TYPE, Histogram
from shardmon.model.histogram_notation import (
    NotationError,
    compact,
    expand_item,
    format_histogram,
    go_g,
    parse_histogram,
    same_histogram,
    split_items,
)
from shardmon.model.labels import Labels
from shardmon.querier.promql import QueryResult, ResultSeries
from shardmon.querier.promqltest import run_script

FULL = ("{{schema:1 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[1] offset:1 n_offset:0 "
        "counter_reset_hint:gauge}}")


def test_every_key_parses():
    h, end = parse_histogram(FULL)
    assert end == len(FULL)
    assert h == Histogram(schema=1, zero_threshold=0.001, zero_count=1, count=4, sum=5,
                          positive_spans=((1, 2),), positive_buckets=(1, 2),
                          negative_spans=((0, 1),), negative_buckets=(1,), counter_reset_hint=GAUGE_TYPE)
    assert parse_histogram("{{}}")[0] == Histogram()
    assert parse_histogram("{{ sum:-2.5e3 count:0x10 }}")[0] == Histogram(sum=-2500.0, count=16.0)


@pytest.mark.parametrize(("text", "pos", "words"), [
    ("{{schema:1 foo:2}}", 11, 'unknown histogram description key "foo"'),
    ("{{buckets:[1 -2]}}", 13, "bucket count"),
    ("{{count:1 count:2}}", 10, 'duplicate key "count"'),
    ("{{schema:1.5}}", 9, "integer for schema"),
    ("{{schema:9}}", 0, "outside [-4, 8]"),
    ("{{count:-1}}", 8, "may not be negative"),
    ("{{buckets:[]}}", 11, "at least one number"),
    ("{{counter_reset_hint:maybe}}", 21, "counter_reset_hint must be one of"),
])
def test_errors_name_the_position(text, pos, words):
    with pytest.raises(NotationError) as err:
        parse_histogram(text)
    assert err.value.pos == pos and words in str(err.value) and f"at position {pos}" in str(err.value)


def test_expanding_forms():
    base = "{{schema:0 sum:1 count:2 buckets:[1 1]}}"
    assert expand_item(base + "x2") == [parse_histogram(base)[0]] * 3
    grown = expand_item(base + "+{{sum:2 count:3 buckets:[1 2] offset:1}}x2")
    assert [format_histogram(h) for h in grown] == [
        "{{count:2 sum:1 buckets:[1 1]}}", "{{count:5 sum:3 buckets:[1 2 2]}}", "{{count:8 sum:5 buckets:[1 3 4]}}"]
    shrunk = expand_item("{{count:10 sum:10 buckets:[5 5]}}-{{count:1 sum:1 buckets:[1]}}x2")
    assert [format_histogram(h) for h in shrunk] == [
        "{{count:10 sum:10 buckets:[5 5]}}", "{{count:9 sum:9 buckets:[4 5]}}", "{{count:8 sum:8 buckets:[3 5]}}"]
    # A higher schema increment is reduced to the running histogram's (two of schema 1 make one of schema 0).
    mixed = expand_item("{{schema:0 count:1 buckets:[1] offset:1}}+{{schema:1 count:2 buckets:[1 1] offset:1}}x1")
    assert format_histogram(mixed[1]) == "{{count:3 offset:1 buckets:[3]}}"
    with pytest.raises(NotationError, match="cannot merge from schema 0 to 1"):
        expand_item("{{schema:1 count:1}}+{{schema:0 count:1}}x1")
    with pytest.raises(NotationError, match="at position 23: expected x<N>"):
        expand_item("{{count:1}}+{{count:1}}y", pos=0)


def test_expansion_steps_with_the_engines_add_and_sub():
    """2.53's loader steps ``{{a}}+{{b}}xN`` with ``FloatHistogram.Add``/``Sub``: the counter reset hints
    combine as ``Add``'s, and a wider zero bucket that ends inside a populated bucket grows to that bucket's
    upper bound, taking its count (``zeroCountForLargerThreshold``)."""
    same = expand_item("{{counter_reset_hint:not_reset buckets:[1]}}+{{counter_reset_hint:not_reset buckets:[1]}}x1")
    assert format_histogram(same[1]) == "{{buckets:[2] counter_reset_hint:not_reset}}"
    widened = expand_item("{{count:3 buckets:[1 2]}}+{{z_bucket_w:1.5 z_bucket:1 count:1}}x1")
    assert format_histogram(widened[1]) == "{{count:4 z_bucket:4 z_bucket_w:2}}"
    # Sub leaves the emptied buckets in place (only Compact drops them), as Prometheus's.
    emptied = expand_item("{{buckets:[1 2]}}-{{buckets:[1 2]}}x1")
    assert emptied[1].positive_buckets == (0.0, 0.0)


def test_split_items_keeps_histograms_whole():
    assert split_items("1 _ {{count:1 buckets:[1 2]}}x2  stale {{}}") == [
        (0, "1"), (2, "_"), (4, "{{count:1 buckets:[1 2]}}x2"), (33, "stale"), (39, "{{}}")]
    with pytest.raises(NotationError, match="not closed"):
        split_items("1 {{count:1")


def test_format_round_trips_and_writes_go_numbers():
    for text in ("{{schema:1 count:4 sum:5 z_bucket:1 z_bucket_w:0.001 offset:1 buckets:[1 2] n_buckets:[1] "
                 "counter_reset_hint:gauge}}", "{{count:1e+06 sum:-1.5e-07 offset:-3 buckets:[0.5 0 2]}}", "{{}}"):
        assert format_histogram(parse_histogram(text)[0]) == text
    two_spans = Histogram(count=3, positive_spans=((0, 1), (2, 1)), positive_buckets=(1, 2))
    assert format_histogram(two_spans) == "{{count:3 buckets:[1 0 0 2]}}"
    assert [go_g(v) for v in (1e6, 123456.0, 1234567.0, 1e-5, 1e-4, 2.5, float("nan"))] == [
        "1e+06", "123456", "1.234567e+06", "1e-05", "0.0001", "2.5", "NaN"]


def test_comparison_is_exact_after_compaction():
    a = parse_histogram("{{count:3 buckets:[1 0 2]}}")[0]
    b = Histogram(count=3, positive_spans=((0, 1), (1, 1)), positive_buckets=(1.0, 2.0))
    assert compact(a) == compact(b) and same_histogram(a, b)
    assert not same_histogram(a, parse_histogram("{{count:3 buckets:[1 0 2.0000000001]}}")[0])
    assert same_histogram(parse_histogram("{{sum:NaN}}")[0], parse_histogram("{{sum:NaN}}")[0])


class _Capture:
    """An appender that keeps the batches it is given."""

    def __init__(self):
        self.batches = []

    def append(self, batch):
        self.batches.append(batch)


def test_promqltest_loads_histograms_and_compares_them():
    store = _Capture()
    answer = parse_histogram("{{count:5 sum:3 buckets:[1 2 2]}}")[0]

    class Engine:
        def __init__(self, _querier):
            pass

        def instant(self, expr, t):
            hists = np.empty(1, dtype=object)
            hists[0] = answer
            return QueryResult("vector", [ResultSeries(Labels.from_dict({"__name__": "h"}), np.array([t]),
                                                       np.array([np.nan]), hists)], None, t, [])

        def range(self, expr, start, end, step):
            hists = np.empty(3, dtype=object)
            hists[:] = [answer] * 3
            return QueryResult("matrix", [ResultSeries(Labels.from_dict({"__name__": "h"}), np.arange(start, end + 1, step),
                                                       np.full(3, np.nan), hists)], None, end, [])

    report = run_script("""
load 1m
  h {{sum:1 count:2 buckets:[1 1]}}+{{sum:2 count:3 buckets:[1 2] offset:1}}x1 _ 7 {{count:1}}x1
  f 1 2

eval instant at 1m h
  h {{count:5 sum:3 buckets:[1 2 2]}}

eval instant at 1m h
  h {{count:5 sum:3 buckets:[1 2 3]}}

eval instant at 1m h
  h 5
""", lambda: (store, None), make_engine=Engine)
    assert (report.passed, report.failed) == (1, 2)
    assert "expected {{count:5 sum:3 buckets:[1 2 3]}}" in report.failures[0]
    assert "expected float 5.0 for" in report.failures[1]
    batch = store.batches[0]
    assert batch.num_samples == 3 and batch.num_histograms == 4
    assert batch.histograms.timestamps_ms.tolist() == [0, 60_000, 240_000, 300_000]
    assert [format_histogram(h) for h in batch.histograms.histograms()][:2] == [
        "{{count:2 sum:1 buckets:[1 1]}}", "{{count:5 sum:3 buckets:[1 2 2]}}"]
    assert batch.timestamps_ms.tolist() == [0, 60_000, 180_000]  # f, then h's float 7
