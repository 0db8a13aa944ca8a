"""Chunk and WAL-record encodings round-trip bit for bit (the property tests of every float and
timestamp sequence are in test_chunk_property.py)."""

import numpy as np

from shardmon.model.samples import STALE_NAN
from shardmon.shards import chunk
from shardmon.shards.wal import decode_record, encode_record


def test_special_values_survive():
    vals = np.array([STALE_NAN, float("nan"), -0.0, 0.0, float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308])
    ts = np.arange(vals.shape[0], dtype=np.int64) * 15_000
    _, got = chunk.decode(chunk.encode(ts, vals))
    assert np.array_equal(got.view(np.uint64), vals.view(np.uint64))


def test_regular_scrapes_compress_well():
    ts = 1_700_000_000_000 + np.arange(720, dtype=np.int64) * 15_000
    vals = np.cumsum(np.full(720, 3.0))
    assert len(chunk.encode(ts, vals)) < 720 * 2


def test_wal_record_round_trip():
    ids = np.array([1, 2**64 - 1], dtype=np.uint64)
    refs = np.array([0, 1, 1], dtype=np.uint32)
    ts = np.array([5, 6, 7], dtype=np.int64)
    vals = np.array([1.5, STALE_NAN, -0.0])
    got = decode_record(encode_record(ids, refs, ts, vals))
    for a, b in zip(got, (ids, refs, ts, vals.view(np.uint64))):
        assert np.array_equal(a if a.dtype != np.float64 else a.view(np.uint64), b)

