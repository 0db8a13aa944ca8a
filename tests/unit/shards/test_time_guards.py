"""The shard's time rules: what is too far in the future, when a window is cut, where a flush ends, what
time retention counts from. No sample, however odd its timestamp, may move them past the clock."""

from __future__ import annotations

import numpy as np

from shardmon.model.config import parse_config
from shardmon.shards.blocks import cut_window, flush_bound
from shardmon.shards.compact import blocks_beyond_retention
from shardmon.shards.limits import split_future
from shardmon.shards.store import BlockMeta

M = 60_000
H = 3_600_000
D = 2 * H
DAY = 24 * H
NOW = 1_796_400_000_000  # a fixed "now" (2026-12-04T...), a multiple of D


def _b(mint: int, maxt: int) -> BlockMeta:
    return BlockMeta(f"{mint}-{maxt}", mint, maxt, 1, 10, 100)


def test_only_samples_more_than_max_future_time_ahead_of_the_clock_are_too_far():
    ts = np.array([NOW - DAY, NOW, NOW + 10 * M, NOW + 10 * M + 1, NOW + 20 * DAY], np.int64)
    far = split_future(ts, NOW, 10 * M)
    assert far.tolist() == [False, False, False, True, True]
    assert split_future(ts[:3], NOW, 10 * M) is None  # none too far: no mask to apply
    assert split_future(ts, NOW, 0) is None  # 0: no limit
    assert split_future(np.empty(0, np.int64), NOW, 10 * M) is None


def test_max_future_time_defaults_to_ten_minutes_as_mimirs_creation_grace_period():
    assert parse_config("").shards.max_future_time == 10 * M
    assert parse_config("shards: {max_future_time: 1h}").shards.max_future_time == H
    assert parse_config("shards: {max_future_time: '0'}").shards.max_future_time == 0


def test_a_window_is_cut_once_both_the_newest_sample_and_the_clock_are_past_it_by_half_a_block():
    # Head from 0:00 to 3:00 of a day, clock at 3:00: [0, 2h) is 1h behind both, not yet 1.5 blocks.
    assert cut_window((NOW, NOW + 2 * H), -(2**63), D, NOW + 3 * H) is None  # newest sample not past by 1h
    assert cut_window((NOW, NOW + 3 * H), -(2**63), D, NOW + 3 * H) == (NOW, NOW + D)
    # One sample 20 days ahead does not make the present window look old: the clock bounds it.
    assert cut_window((NOW, NOW + 20 * DAY), -(2**63), D, NOW + H) is None
    assert cut_window((NOW, NOW + 20 * DAY), -(2**63), D, NOW + 3 * H) == (NOW, NOW + D)
    # Old data (the clock far ahead of it) is cut by its own newest sample, as before.
    assert cut_window((0, 3 * H), -(2**63), D, NOW) == (0, D)
    # The window starts at the head's lower bound when samples below it are gone.
    assert cut_window((NOW + 30 * M, NOW + 5 * H), NOW + D, D, NOW + 5 * H) == (NOW + D, NOW + 2 * D)
    assert cut_window(None, -(2**63), D, NOW) is None


def test_a_flush_ends_just_after_the_newest_sample_but_never_past_the_clock():
    assert flush_bound((NOW - H, NOW - 5_000), NOW) == NOW - 4_999
    # Samples a little ahead of the clock (within max_future_time) stay in the head; the bound is now,
    # so a sample stamped now is still accepted after the flush.
    assert flush_bound((NOW - H, NOW + 5 * M), NOW) == NOW
    assert flush_bound(None, NOW) is None


def test_time_retention_never_counts_from_later_than_the_clock():
    real = [_b(NOW - 3 * D, NOW - 2 * D), _b(NOW - 2 * D, NOW - D), _b(NOW - D, NOW)]
    future = _b(NOW + 20 * DAY, NOW + 20 * DAY + D)  # e.g. written before the time guard existed
    # Counting from the future block's end would delete every real block; counted from now, none goes.
    assert blocks_beyond_retention(real + [future], 15 * DAY, 0, NOW) == []
    assert [m.block_id for m, _ in blocks_beyond_retention(real + [future], 15 * DAY, 0)] == \
        [m.block_id for m in real]  # (without a clock: Prometheus's rule, from the newest block)
    # Retention still deletes what is older than the retention, counted from the clock.
    assert [m.block_id for m, r in blocks_beyond_retention(real + [future], 2 * D, 0, NOW)] == [real[0].block_id]
    # Data that stopped coming in days ago keeps its newest retention_time, as in Prometheus.
    old = [_b(0, D), _b(D, 2 * D), _b(2 * D, 3 * D)]
    assert [m.block_id for m, _ in blocks_beyond_retention(old, 2 * D, 0, NOW)] == [old[0].block_id]
