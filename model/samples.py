"""Samples in columns: the unit that travels from scrapers to shards and from shards to the querier.

A :class:`SampleBatch` holds a table of series (ids and canonical label bytes) and three sample
columns (which series, timestamp, value) as numpy arrays, so the hot paths never build a Python
object per sample. On the wire it is the ``SampleColumns`` message: each column a ``bytes`` field of
little-endian packed numbers.

Time is int64 milliseconds since the epoch throughout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from model.pb import types_pb2

#: Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

U32 = np.dtype("<u4")
U64 = np.dtype("<u8")
I64 = np.dtype("<i8")
F64 = np.dtype("<f8")


def is_stale(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the staleness markers in a float64 array (compares the exact bits)."""
    return np.asarray(values, dtype=F64).view(U64) == np.uint64(STALE_NAN_BITS)


class SampleBatch(NamedTuple):
    """Samples of several series, in columns.

    ``series_ids[i]`` is the id of the series whose canonical label bytes are ``series_keys[i]``;
    sample ``j`` belongs to series ``sample_series[j]`` and has ``timestamps_ms[j]``, ``values[j]``.
    The same series may appear more than once in the series table.
    """

    series_ids: np.ndarray  # uint64, one per series
    series_keys: Sequence[bytes]  # canonical label bytes, one per series
    sample_series: np.ndarray  # uint32, one per sample
    timestamps_ms: np.ndarray  # int64, one per sample
    values: np.ndarray  # float64, one per sample

    @property
    def num_samples(self) -> int:
        return int(self.timestamps_ms.shape[0])

    @property
    def num_series(self) -> int:
        return int(self.series_ids.shape[0])

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls(np.empty(0, U64), [], np.empty(0, U32), np.empty(0, I64), np.empty(0, F64))

    def select_series(self, mask: np.ndarray) -> SampleBatch:
        """The sub-batch of the series where ``mask`` (one bool per series) is true, and their samples."""
        keep = np.flatnonzero(mask)
        if keep.shape[0] == self.num_series:
            return self
        remap = np.full(self.num_series, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.shape[0])
        new_ref = remap[self.sample_series]
        sample_mask = new_ref >= 0
        keys = self.series_keys
        return SampleBatch(
            self.series_ids[keep],
            [keys[i] for i in keep.tolist()],
            new_ref[sample_mask].astype(U32),
            self.timestamps_ms[sample_mask],
            self.values[sample_mask],
        )

    def to_pb(self) -> types_pb2.SampleColumns:
        keys = self.series_keys
        ends = np.cumsum(np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys)))
        return types_pb2.SampleColumns(
            series_ids=np.ascontiguousarray(self.series_ids, U64).tobytes(),
            series_keys=b"".join(keys),
            series_key_ends=ends.astype(U32).tobytes(),
            sample_series=np.ascontiguousarray(self.sample_series, U32).tobytes(),
            timestamps_ms=np.ascontiguousarray(self.timestamps_ms, I64).tobytes(),
            values=np.ascontiguousarray(self.values, F64).tobytes(),
        )

    @classmethod
    def from_pb(cls, pb: types_pb2.SampleColumns) -> SampleBatch:
        """Decode and check the column lengths; raises ``ValueError`` on an inconsistent message."""
        ids = np.frombuffer(pb.series_ids, U64)
        ends = np.frombuffer(pb.series_key_ends, U32)
        refs = np.frombuffer(pb.sample_series, U32)
        ts = np.frombuffer(pb.timestamps_ms, I64)
        vals = np.frombuffer(pb.values, F64)
        blob = pb.series_keys
        if ids.shape[0] != ends.shape[0]:
            raise ValueError(f"{ids.shape[0]} series ids but {ends.shape[0]} series keys")
        if not (refs.shape[0] == ts.shape[0] == vals.shape[0]):
            raise ValueError(
                f"sample columns differ in length: {refs.shape[0]} series refs, "
                f"{ts.shape[0]} timestamps, {vals.shape[0]} values"
            )
        if ends.shape[0] and (int(ends[-1]) != len(blob) or np.any(np.diff(ends.astype(np.int64)) < 0)):
            raise ValueError("series key offsets do not match the key bytes")
        if refs.shape[0] and int(refs.max()) >= ids.shape[0]:
            raise ValueError("a sample refers to a series outside the series table")
        starts = np.concatenate(([0], ends[:-1])).tolist() if ends.shape[0] else []
        keys = [blob[s:e] for s, e in zip(starts, ends.tolist())]
        return cls(ids, keys, refs, ts, vals)


def concat(batches: Sequence[SampleBatch]) -> SampleBatch:
    """One batch holding all samples of ``batches`` (series tables are appended, not merged)."""
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return SampleBatch.empty()
    offsets = np.cumsum([0] + [b.num_series for b in batches[:-1]])
    keys: list[bytes] = []
    for b in batches:
        keys.extend(b.series_keys)
    return SampleBatch(
        np.concatenate([b.series_ids for b in batches]).astype(U64, copy=False),
        keys,
        np.concatenate([b.sample_series.astype(U32) + U32.type(o) for b, o in zip(batches, offsets)]),
        np.concatenate([b.timestamps_ms for b in batches]).astype(I64, copy=False),
        np.concatenate([b.values for b in batches]).astype(F64, copy=False),
    )
