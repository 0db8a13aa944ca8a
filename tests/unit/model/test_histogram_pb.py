"""Native histograms in the gRPC Query API's messages (model/histogram_pb.py): every field survives the wire,
a series mixing floats and histograms comes back in time order, and a float-only series is encoded as before."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.model.histogram import COUNTER_RESET, GAUGE_TYPE, Histogram
from shardmon.model.histogram_pb import histogram_of_pb, histogram_to_pb, merge_points, split_points
from shardmon.model.pb import query_pb2
from tests.unit.shards.histkit import histograms


def _wire(m):
    return type(m).FromString(m.SerializeToString())


@settings(max_examples=200, deadline=None)
@given(histograms())
def test_every_histogram_survives_the_message_bit_for_bit(h):
    assert histogram_of_pb(_wire(histogram_to_pb(h))).identical(h)


def test_the_message_holds_the_model_fields():
    h = Histogram(schema=-2, zero_threshold=0.001, zero_count=2.0, count=11.5, sum=-3.25,
                  positive_spans=((-3, 2), (4, 1)), positive_buckets=(1.0, 5.0, 0.5),
                  negative_spans=((1, 1),), negative_buckets=(3.0,), counter_reset_hint=GAUGE_TYPE)
    m = _wire(histogram_to_pb(h))
    assert (m.schema, m.zero_threshold, m.zero_count, m.count, m.sum) == (-2, 0.001, 2.0, 11.5, -3.25)
    assert [(s.offset, s.length) for s in m.positive_spans] == [(-3, 2), (4, 1)]
    assert list(m.positive_buckets) == [1.0, 5.0, 0.5]  # absolute counts, not deltas
    assert [(s.offset, s.length) for s in m.negative_spans] == [(1, 1)] and list(m.negative_buckets) == [3.0]
    assert m.counter_reset_hint == query_pb2.Histogram.GAUGE and not m.is_int


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False), histograms()), max_size=12))
def test_a_mixed_series_comes_back_in_time_order(points):
    ts = np.arange(len(points), dtype=np.int64) * 15_000 - 30_000
    values = np.array([math.nan if isinstance(p, Histogram) else p for p in points], dtype=np.float64)
    hists = np.array([p if isinstance(p, Histogram) else None for p in points] + [None], dtype=object)[:-1]
    f_ts, f_vals, wire = split_points(ts, values, hists)
    series = _wire(query_pb2.ResultSeries(timestamps_ms=f_ts, values=f_vals, histograms=wire))
    got_ts, got_vals, got_hists = merge_points(series.timestamps_ms, series.values, series.histograms)
    assert got_ts.tolist() == ts.tolist()
    if not any(isinstance(p, Histogram) for p in points):
        assert got_hists is None
        assert got_vals.tolist() == values.tolist()
        return
    for p, v, h in zip(points, got_vals.tolist(), got_hists.tolist()):
        if isinstance(p, Histogram):
            assert h.identical(p) and math.isnan(v)
        else:
            assert h is None and v == p


def test_a_float_only_series_is_encoded_as_before():
    ts = np.array([1000, 2000, 3000], dtype=np.int64)
    values = np.array([1.5, math.nan, -2.0])
    f_ts, f_vals, wire = split_points(ts, values, None)
    assert (f_ts, f_vals, wire) == (ts.tobytes(), values.tobytes(), [])
    before = query_pb2.ResultSeries(timestamps_ms=ts.tobytes(), values=values.tobytes()).SerializeToString()
    assert query_pb2.ResultSeries(timestamps_ms=f_ts, values=f_vals, histograms=wire).SerializeToString() == before


def test_a_histogram_point_beside_floats_keeps_its_counter_reset_hint():
    h = Histogram(count=3.0, sum=1.0, positive_spans=((0, 1),), positive_buckets=(3.0,),
                  counter_reset_hint=COUNTER_RESET, is_int=True)
    hists = np.empty(2, dtype=object)
    hists[1] = h
    f_ts, f_vals, wire = split_points(np.array([5, 9]), np.array([7.0, math.nan]), hists)
    assert np.frombuffer(f_ts, np.int64).tolist() == [5] and [p.timestamp_ms for p in wire] == [9]
    back = histogram_of_pb(wire[0].histogram)
    assert back.counter_reset_hint == COUNTER_RESET and back.is_int and back == h
