"""The merge of the shards' head statistics into Prometheus's TSDB status document (querier/tsdb_status.py)."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.errors import BadQueryError
from shardmon.querier.tsdb_status import merge, parse_limit, top
from shardmon.shards.client import ShardTSDBStats


def _shard(sid: int, n: int, pairs: dict[str, dict[str, int]], mint: int = 1000, maxt: int = 2000) -> ShardTSDBStats:
    labels = [(name, list(v), np.asarray(list(v.values()), np.uint64)) for name, v in pairs.items()]
    return ShardTSDBStats(sid, n, n, mint, maxt, labels, [])


def test_shards_merge_exactly_before_the_top_is_taken():
    # Shard 0: a{job=x} x3, b{job=y} x1; shard 1: a{job=y} x2, c{job=x} x2.
    s0 = _shard(0, 4, {"__name__": {"a": 3, "b": 1}, "job": {"x": 3, "y": 1}})
    s1 = _shard(1, 4, {"__name__": {"a": 2, "c": 2}, "job": {"y": 2, "x": 2}}, mint=500, maxt=1500)
    doc = merge([s0, s1], 10, [0, 1, 2])
    assert doc["headStats"] == {"numSeries": 8, "numLabelPairs": 5, "chunkCount": 8, "minTime": 500, "maxTime": 2000}
    assert doc["seriesCountByMetricName"] == [{"name": "a", "value": 5}, {"name": "c", "value": 2},
                                              {"name": "b", "value": 1}]
    # A value present on both shards is one value.
    assert doc["labelValueCountByLabelName"] == [{"name": "__name__", "value": 3}, {"name": "job", "value": 2}]
    assert doc["memoryInBytesByLabelName"] == [{"name": "__name__", "value": 3}, {"name": "job", "value": 2}]
    assert doc["seriesCountByLabelValuePair"][:2] == [{"name": "__name__=a", "value": 5},
                                                      {"name": "job=x", "value": 5}]
    assert [s["shard"] for s in doc["shards"]] == [0, 1, 2]
    assert doc["shards"][1]["headStats"]["numSeries"] == 4
    assert doc["shards"][1]["seriesCountByMetricName"] == [{"name": "a", "value": 2}, {"name": "c", "value": 2}]
    assert "error" in doc["shards"][2]


def test_ties_are_broken_by_name_and_the_limit_cuts():
    items = {"d": 2, "c": 2, "a": 1, "b": 2, "e": 5}
    assert top(items, 3) == [{"name": "e", "value": 5}, {"name": "b", "value": 2}, {"name": "c", "value": 2}]
    assert len(top(items, 100)) == 5


def test_an_empty_head_reads_as_prometheus_writes_it():
    doc = merge([], 10, [0])
    assert doc["headStats"] == {"numSeries": 0, "numLabelPairs": 0, "chunkCount": 0,
                                "minTime": 2**63 - 1, "maxTime": -(2**63)}
    assert doc["seriesCountByMetricName"] == [] and doc["seriesCountByLabelValuePair"] == []


def test_memory_counts_bytes_of_the_distinct_values():
    doc = merge([_shard(0, 2, {"__name__": {"m": 2}, "path": {"/é": 1, "/ab": 1}})], 10)
    assert {"name": "path", "value": 6} in doc["memoryInBytesByLabelName"]


@pytest.mark.parametrize("text,want", [(None, 10), ("", 10), ("3", 3), ("+7", 7)])
def test_limit(text, want):
    assert parse_limit(text) == want


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", " 2", "1_0"])
def test_bad_limit(text):
    with pytest.raises(BadQueryError, match="limit must be a positive number"):
        parse_limit(text)
