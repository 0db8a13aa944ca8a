"""Histograms through the querier's storage types: MemoryStorage keeps and returns them, a frame's histogram
columns become Series/SeriesColumns histograms, and replicas merge by timestamp."""

from __future__ import annotations

import numpy as np

from shardmon.model.histogram_merge import merge_copies
from shardmon.model.labels import Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import SeriesColumns
from shardmon.shards.client import series_of_batch
from tests.unit.shards.histkit import hist_batch, scrape_series

H = scrape_series(4)
NAME = [Matcher(MatchType.EQ, "__name__", "h")]


def _kinds(s):
    return [None if h is None else H.index(next(x for x in H if x.identical(h))) for h in s.histograms]


def test_memory_storage_keeps_histograms_beside_floats_first_sample_wins():
    m = MemoryStorage()
    m.append(hist_batch([10, 30], H[:2], float_ts=[20], float_vals=[5.0]))
    m.append(hist_batch([30, 40], [H[2], H[3]], float_ts=[50], float_vals=[6.0]))
    (s,) = m.select(NAME, 0, 100).series
    assert s.timestamps_ms.tolist() == [10, 20, 30, 40, 50]
    assert np.isnan(s.values[[0, 2, 3]]).all() and s.values[[1, 4]].tolist() == [5.0, 6.0]
    assert _kinds(s) == [0, None, 1, 3, None]
    (s,) = m.select(NAME, 25, 45).series
    assert _kinds(s) == [1, 3]
    cols = SeriesColumns.of(m.select(NAME, 0, 100).series)
    assert cols.histograms is not None and cols.histograms.shape == cols.values.shape
    m.add_series(s.labels, np.array([1]), np.array([1.0]))
    assert m.select(NAME, 0, 5).series[0].histograms is None  # float-only answers carry no object array


def test_float_only_answers_have_no_histograms():
    m = MemoryStorage()
    b = hist_batch([], [], float_ts=[1, 2], float_vals=[1.0, 2.0])
    m.append(b)
    assert SeriesColumns.of(m.select(NAME, 0, 10).series).histograms is None


def test_a_frame_becomes_series_with_histograms_merged_in_time_order():
    b = hist_batch([10, 30], H[:2], n_series=2, float_ts=[20], float_vals=[7.0])
    frame = SampleBatch.from_pb(b.to_pb())
    out = series_of_batch(frame)
    assert [s.timestamps_ms.tolist() for s in out] == [[10, 20, 30]] * 2
    assert all(_kinds(s) == [0, None, 1] for s in out)


def test_replicas_merge_by_timestamp_with_histograms():
    a = series_of_batch(hist_batch([10, 30], H[:2]))[0]
    b = series_of_batch(hist_batch([20], [H[2]], float_ts=[30, 40], float_vals=[1.0, 2.0]))[0]
    m = merge_copies(a, b)
    assert m.timestamps_ms.tolist() == [10, 20, 30, 40]
    assert _kinds(m) == [0, 2, 1, None]
