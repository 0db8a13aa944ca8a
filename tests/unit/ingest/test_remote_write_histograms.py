"""Remote write 1.0 native histograms: prompb's Histogram decoded into SampleBatch.histograms (integer and float,
deltas and counts, zero bucket, reset hints), invalid ones refused with their series, and the forwarder's split
by shard carrying them with their series."""

from __future__ import annotations

import cramjam
import numpy as np

from shardmon.ingest.forwarder import shard_piece
from shardmon.ingest.remote_write import decode, encode, histogram_from_pb
from shardmon.model.histogram import COUNTER_RESET, GAUGE_TYPE, Histogram
from shardmon.model.labels import Labels
from shardmon.model.pb import remote_pb2
from shardmon.model.samples import SampleBatch, SeriesTable

INT = Histogram.from_deltas(schema=3, zero_threshold=1e-3, zero_count=2, count=11, sum=-4.25,
                            positive_spans=[(-2, 2), (3, 1)], positive_deltas=[1, 3, -2],
                            negative_spans=[(1, 1)], negative_deltas=[4], counter_reset_hint=COUNTER_RESET)
FLOAT = Histogram(0, 0.01, 0.5, 7.5, 3.0, ((0, 2),), (3.0, 4.0), counter_reset_hint=GAUGE_TYPE)


def name(n: str) -> Labels:
    return Labels.from_dict({"__name__": n, "job": "j"})


def test_integer_and_float_histograms_round_trip():
    body = encode([(name("a"), [(1000, 1.0)], [(2000, INT), (3000, FLOAT)]), (name("b"), [], [(4000, INT)])])
    d = decode(body)
    b = d.batch
    assert b.num_samples == 1 and b.num_histograms == 3
    assert b.histograms.histograms() == [INT, FLOAT, INT]
    assert b.histograms.timestamps_ms.tolist() == [2000, 3000, 4000]
    assert [b.series.key(int(i)) for i in b.histograms.sample_series] == [name("a").canonical()] * 2 + [
        name("b").canonical()]
    assert d.invalid_series == 0


def test_which_count_is_set_decides_integer_or_float():
    hp = remote_pb2.Histogram(count_int=3, zero_count_int=1, schema=0, positive_spans=[remote_pb2.BucketSpan(
        offset=0, length=2)], positive_deltas=[1, 0])
    h = histogram_from_pb(hp)
    assert h.is_int and h.positive_buckets == (1.0, 1.0) and h.zero_count == 1
    hp = remote_pb2.Histogram(count_float=0.0, schema=0, positive_spans=[remote_pb2.BucketSpan(offset=0, length=1)],
                              positive_counts=[0.0])
    assert not histogram_from_pb(hp).is_int  # count_float set, even to 0: a float histogram


def test_a_series_with_an_invalid_histogram_is_left_out_and_reported():
    req = remote_pb2.WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="bad")
    ts.samples.add(value=1, timestamp=1)
    ts.histograms.add(count_int=1, schema=0, positive_spans=[remote_pb2.BucketSpan(offset=0, length=3)],
                      positive_deltas=[1])
    good = req.timeseries.add()
    good.labels.add(name="__name__", value="good")
    good.histograms.add(count_int=0, schema=0, timestamp=5)
    d = decode(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    assert d.refused == {"invalid_histogram": 1} and d.refused_samples == 2
    assert "histogram positive spans specify 3 buckets but 1 are given" in d.invalid[0] and "bad" in d.invalid[0]
    assert d.batch.num_samples == 0 and d.batch.num_histograms == 1


def test_the_split_by_shard_carries_histograms_with_their_series():
    hb = decode(encode([(name("a"), [(1, 1.0)], [(2, INT)]), (name("b"), [], [(3, FLOAT)]),
                        (name("c"), [(4, 2.0)])])).batch
    owned = np.array([False, True, True])
    remap = np.array([-1, 0, 1])
    sub: SeriesTable = hb.series.take(np.array([1, 2]))
    piece = shard_piece(hb, owned, remap, sub)
    assert piece.num_samples == 1 and piece.values.tolist() == [2.0]
    assert piece.histograms.histograms() == [FLOAT] and piece.histograms.sample_series.tolist() == [0]
    none = shard_piece(SampleBatch(hb.series, hb.sample_series[:0], hb.timestamps_ms[:0], hb.values[:0], None),
                  owned, remap, sub)
    assert none is None
    only_hist = shard_piece(hb, np.array([True, False, False]), np.array([0, -1, -1]), hb.series.take(np.array([0])))
    assert only_hist.histograms.histograms() == [INT] and only_hist.num_samples == 1
