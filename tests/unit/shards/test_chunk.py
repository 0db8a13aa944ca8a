"""Chunk and WAL-record encodings round-trip bit for bit (the property tests of every float and
timestamp sequence are in test_chunk_property.py)."""

import numpy as np
import pytest

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


def legacy_record(ids, refs, ts, vals) -> bytes:
    """A WAL record in format 1, as versions before format 2 wrote it (FORMAT.md)."""
    import struct

    import zstandard

    raw = struct.pack("<BII", 1, ids.shape[0], ts.shape[0]) + ids.astype(np.uint64).tobytes() + \
        refs.astype(np.uint32).tobytes() + ts.astype(np.int64).tobytes() + vals.astype(np.float64).tobytes()
    return zstandard.ZstdCompressor(level=1).compress(raw)


def _same(got, want):
    assert len(got) == 4
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and np.array_equal(a.view(np.uint64) if a.dtype == np.float64 else a,
                                                         b.view(np.uint64) if b.dtype == np.float64 else b)
            assert a.flags.aligned


def test_wal_record_round_trip():
    ids = np.array([1, 2**64 - 1], dtype=np.uint64)
    refs = np.array([0, 1, 1], dtype=np.uint32)
    ts = np.array([5, 6, 7], dtype=np.int64)
    vals = np.array([1.5, STALE_NAN, -0.0])
    rec = encode_record(ids, refs, ts, vals)
    assert rec[0] == 2
    _same(decode_record(rec), (ids, refs, ts, vals))


def test_a_scrapes_wal_record_leaves_out_its_references_and_keeps_timestamps_in_32_bits():
    ids = np.arange(1000, dtype=np.uint64) * 0x9E3779B97F4A7C15
    refs = np.arange(1000, dtype=np.uint32)
    ts = 1_796_400_000_000 + np.arange(1000, dtype=np.int64) % 7
    vals = np.linspace(0, 1, 1000)
    rec = encode_record(ids, refs, ts, vals)
    _same(decode_record(rec), (ids, None, ts, vals))
    assert len(rec) < len(legacy_record(ids, refs, ts, vals))


def test_timestamps_too_far_apart_for_32_bits_and_empty_records_round_trip():
    ids = np.array([7, 8], dtype=np.uint64)
    refs = np.array([1, 0, 1], dtype=np.uint32)
    ts = np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64)
    vals = np.array([1.0, 2.0, 3.0])
    _same(decode_record(encode_record(ids, refs, ts, vals)), (ids, refs, ts, vals))
    empty = np.empty(0, np.uint64), np.empty(0, np.uint32), np.empty(0, np.int64), np.empty(0, np.float64)
    got = decode_record(encode_record(*empty))
    assert [a.shape[0] for a in (got[0], got[2], got[3])] == [0, 0, 0]


def test_a_format_1_record_is_still_read_and_an_unknown_format_is_named():
    ids = np.array([3, 4], dtype=np.uint64)
    refs = np.array([0, 1, 0], dtype=np.uint32)
    ts = np.array([5, 6, 7], dtype=np.int64)
    vals = np.array([1.5, STALE_NAN, -0.0])
    _same(decode_record(legacy_record(ids, refs, ts, vals)), (ids, refs, ts, vals))
    with pytest.raises(ValueError, match="unknown WAL record format 07 .*formats 1, 2 and 3"):
        decode_record(b"\x07" + bytes(40))
