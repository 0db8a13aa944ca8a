"""The pure logic of the shard's block maintenance and series limits: which blocks retention deletes,
what compaction merges next, how chunks merge, which new series a limit admits; and their config."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.config import ShardsConfig, parse_config
from shardmon.model.errors import ConfigError
from shardmon.model.units import parse_size_bytes
from shardmon.shards import chunk
from shardmon.shards.compact import blocks_beyond_retention, merge_block_chunks, plan_compaction
from shardmon.shards.limits import admit_series
from shardmon.shards.store import BlockMeta

H = 3_600_000
D = 2 * H
RANGES = [D, 3 * D, 9 * D]
NO_HEAD = np.iinfo(np.int64).max


def _b(mint_h: float, maxt_h: float, size: int = 100, suffix: str = "") -> BlockMeta:
    mint, maxt = int(mint_h * H), int(maxt_h * H)
    return BlockMeta(f"{mint}-{maxt}{suffix}", mint, maxt, 1, 10, size)


def _ids(found):
    return [m.block_id for m, _ in found]


# -- retention -----------------------------------------------------------------------------------


def test_time_retention_deletes_blocks_ending_retention_before_the_newest_block_end():
    blocks = [_b(0, 2), _b(2, 4), _b(4, 6), _b(6, 8)]
    # Newest end 8h; retention 4h: blocks ending at or before 4h go.
    found = blocks_beyond_retention(blocks, 4 * H, 0)
    assert _ids(found) == [blocks[0].block_id, blocks[1].block_id]
    assert {r for _, r in found} == {"time"}
    assert blocks_beyond_retention(blocks, 0, 0) == []  # off
    assert blocks_beyond_retention(blocks, 100 * H, 0) == []
    assert blocks_beyond_retention([], 4 * H, 100) == []


def test_size_retention_deletes_the_oldest_blocks_while_the_total_is_over_the_limit():
    blocks = [_b(0, 2, 100), _b(2, 4, 100), _b(4, 6, 100), _b(6, 8, 100)]
    assert blocks_beyond_retention(blocks, 0, 400) == []
    found = blocks_beyond_retention(blocks, 0, 250)
    assert _ids(found) == [blocks[0].block_id, blocks[1].block_id] and {r for _, r in found} == {"size"}
    # Time first; what time deletes does not count towards the size.
    found = blocks_beyond_retention(blocks, 6 * H, 150)
    assert dict((m.block_id, r) for m, r in found) == {
        blocks[0].block_id: "time", blocks[1].block_id: "size", blocks[2].block_id: "size"}
    # A single block over the limit goes too (as Prometheus).
    assert _ids(blocks_beyond_retention([_b(0, 2, 1000)], 0, 10)) == [_b(0, 2).block_id]


# -- compaction planning --------------------------------------------------------------------------


def test_three_adjacent_blocks_of_a_closed_window_are_merged():
    blocks = [_b(0, 2), _b(2, 4), _b(4, 6), _b(6, 8)]
    assert plan_compaction(blocks, RANGES, head_bound_ms=8 * H) == blocks[:3]
    # The window [0, 6h) is not closed while the head may still cut a block into it.
    assert plan_compaction(blocks[:3], RANGES, head_bound_ms=4 * H) == []
    # Gaps are fine once the window is closed; a lone block is left alone.
    assert plan_compaction([blocks[0], blocks[2]], RANGES, head_bound_ms=6 * H) == [blocks[0], blocks[2]]
    assert plan_compaction([blocks[0]], RANGES, head_bound_ms=NO_HEAD) == []


def test_larger_ranges_follow_and_blocks_crossing_a_window_are_not_taken():
    six = [_b(0, 6), _b(6, 12), _b(12, 18)]
    assert plan_compaction(six, RANGES, head_bound_ms=NO_HEAD) == six
    assert plan_compaction(six, RANGES[:2], head_bound_ms=NO_HEAD) == []  # 18h is beyond the largest range
    crossing = [_b(4, 8), _b(8, 10)]  # [4h, 8h) lies in no 6h window
    assert plan_compaction(crossing, RANGES[:2], head_bound_ms=NO_HEAD) == []


def test_overlapping_blocks_are_merged_first_whatever_the_head():
    head_block = _b(2, 4)
    backfill = _b(2, 4, suffix="-bfabc")
    other = _b(0, 2)
    assert plan_compaction([other, backfill, head_block], RANGES, head_bound_ms=0) == [head_block, backfill]
    # Transitive overlaps form one group.
    a, b, c = _b(0, 3), _b(2, 5), _b(4, 6)
    assert plan_compaction([c, a, b], RANGES, head_bound_ms=0) == [a, b, c]


# -- merging chunks --------------------------------------------------------------------------------


def _chunk(ts, vals):
    return chunk.encode(np.asarray(ts, np.int64), np.asarray(vals, np.float64))


def test_merging_keeps_single_block_chunks_and_merges_by_time_keeping_the_first_value():
    a = {b"s1": _chunk([1, 2, 3], [1.0, 2.0, 3.0]), b"s2": _chunk([5], [5.0])}
    b = {b"s1": _chunk([3, 4], [-3.0, 4.0]), b"s3": _chunk([7, 8], [7.0, 8.0])}
    out, n = merge_block_chunks([a, b], 3 + 1 + 2 + 2)
    assert out[b"s2"] is a[b"s2"] and out[b"s3"] is b[b"s3"]
    ts, vals = chunk.decode(out[b"s1"])
    assert ts.tolist() == [1, 2, 3, 4] and vals.tolist() == [1.0, 2.0, 3.0, 4.0]  # 3 keeps the first block's value
    assert n == 7


# -- limits ----------------------------------------------------------------------------------------


def test_the_series_limit_admits_new_series_in_order_up_to_the_limit():
    metric = np.zeros(5, np.int64)
    assert admit_series(metric, None, 0, 0, 0).tolist() == [0, 0, 0, 0, 0]
    assert admit_series(metric, None, 2, 4, 0).tolist() == [0, 0, 1, 1, 1]
    assert admit_series(metric, None, 9, 4, 0).tolist() == [1, 1, 1, 1, 1]


def test_the_per_metric_limit_is_checked_first_and_counts_the_series_in_the_head():
    metric = np.array([0, 1, 0, 2, 0, 1])
    metric_active = np.array([1, 0])  # metric 0 has one series in the head; metric 2 is new
    assert admit_series(metric, metric_active, 1, 0, 2).tolist() == [0, 0, 2, 0, 2, 0]
    # With a shard limit of 4 (1 in the head): the three first admitted by their metric pass.
    assert admit_series(metric, metric_active, 1, 4, 2).tolist() == [0, 0, 2, 0, 2, 1]


# -- config ----------------------------------------------------------------------------------------


def test_sizes_parse_as_prometheus_base_2_units():
    assert parse_size_bytes("512MB") == 512 * 2**20
    assert parse_size_bytes("10GB") == 10 * 2**30
    assert parse_size_bytes("1TiB") == 2**40
    assert parse_size_bytes("100B") == 100
    assert parse_size_bytes("1.5KB") == 1536
    assert parse_size_bytes("0") == 0
    for bad in ("", "10", "10 GB", "10gb", "GB", "-1GB", "1XB"):
        with pytest.raises(ValueError):
            parse_size_bytes(bad)


def test_retention_defaults_follow_prometheus():
    c = ShardsConfig()
    assert c.retention_time == 15 * 24 * H and c.retention_size == 0
    assert c.max_block_duration == 36 * H  # 10% of the retention
    assert c.compaction_ranges() == [2 * H, 6 * H, 18 * H]
    assert c.max_active_series == 0 and c.max_series_per_metric == 0
    # Only a size retention: no time retention, blocks up to 31d.
    c = parse_config("shards: {retention_size: 10GB}").shards
    assert c.retention_time == 0 and c.retention_size == 10 * 2**30 and c.max_block_duration == 31 * 24 * H
    c = parse_config("shards: {retention_time: 1d, retention_size: 1048576, block_duration: 1h}").shards
    assert c.retention_time == 24 * H and c.retention_size == 2**20
    assert c.compaction_ranges() == [H]  # 10% of 1d is less than 3h: no level compaction


@pytest.mark.parametrize("text, message", [
    ("shards: {retention_size: 10XB}", "shards.retention_size: not a valid size: '10XB'"),
    ("shards: {retention_size: -5}", "shards.retention_size: not a valid size: -5"),
    ("shards: {retention_time: 15}", "shards.retention_time: not a valid duration string: 15"),
    ("shards: {max_active_series: -1}", "shards.max_active_series: Input should be greater than or equal to 0"),
])
def test_bad_shard_settings_name_the_field(text, message):
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert message in str(e.value)

