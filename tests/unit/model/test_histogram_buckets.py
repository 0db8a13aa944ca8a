"""The shared structural bucket operations (model/histogram_buckets.py, bucket_map/spans_of) and the blob
gather (model/blob_records.py), as Prometheus 2.53's ``Compact(0)`` and ``ReduceResolution`` behave."""

import math

import numpy as np

from shardmon.model.blob_records import take_records
from shardmon.model.histogram import GAUGE_TYPE, Histogram, bucket_map, spans_of
from shardmon.model.histogram_buckets import bucket_count, compact, compact_spans, reduce_resolution


def test_bucket_map_and_spans_of_are_inverse():
    spans, counts = ((-2, 2), (3, 1), (0, 0), (1, 2)), (1.0, 2.0, 3.0, 4.0, 5.0)
    m = bucket_map(spans, counts)
    assert m == {-2: 1.0, -1: 2.0, 3: 3.0, 5: 4.0, 6: 5.0}
    assert spans_of(m) == (((-2, 2), (3, 1), (1, 2)), counts)
    assert spans_of({}) == ((), ())


def test_compact_drops_zero_buckets_and_keeps_the_rest():
    h = Histogram(1, 0.0, 0.0, 9.0, 1.0, ((0, 4),), (1.0, 0.0, -0.0, math.nan), ((2, 1),), (0.0,),
                  counter_reset_hint=GAUGE_TYPE, is_int=True)
    c = compact(h)
    assert c.positive_spans == ((0, 1), (2, 1)) and c.positive_buckets[0] == 1.0
    assert math.isnan(c.positive_buckets[1])  # NaN is not 0: kept, as Prometheus's
    assert c.negative_spans == () and c.negative_buckets == ()
    assert (c.counter_reset_hint, c.is_int, c.schema) == (GAUGE_TYPE, True, 1)
    assert compact_spans([(0, 3), (2, 0), (1, 2)], [1, 0, 2, 0, 5]) == (((0, 1), (1, 1), (4, 1)), (1, 2, 5))


def test_reduce_resolution_merges_pairs_and_keeps_empty_buckets():
    h = Histogram(2, 0.0, 0.0, 6.0, 1.0, ((-1, 4), (3, 1)), (1.0, 2.0, 0.0, 0.0, 3.0), is_int=True)
    r = reduce_resolution(h, 1)
    # Indices -1,0,1,2,6 of schema 2 go to 0,0,1,1,3 of schema 1.
    assert (r.schema, r.positive_spans, r.positive_buckets, r.is_int) == (1, ((0, 2), (1, 1)), (3.0, 0.0, 3.0), True)
    assert bucket_count(r) == 3 and bucket_count(h) == 5


def test_take_records_gathers_in_order_with_repeats():
    blob, ends = b"aabbbc", np.array([2, 5, 6], dtype=np.uint32)
    out, out_ends = take_records(blob, ends, np.array([2, 0, 0], dtype=np.int64))
    assert out == b"caaaa" and out_ends.tolist() == [1, 3, 5] and out_ends.dtype == np.uint32
    out, out_ends = take_records(blob, ends, np.array([], dtype=np.int64))
    assert out == b"" and out_ends.shape == (0,)
