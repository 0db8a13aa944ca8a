"""Samples in columns: the unit that travels from scrapers to shards and from shards to the querier.

A :class:`SampleBatch` is a :class:`SeriesTable` (series ids and their canonical label bytes, kept
as one byte string with end offsets) and three sample columns (which series, timestamp, value) as
numpy arrays, so the hot paths never build a Python object per sample or per series. On the wire
it is the ``SampleColumns`` message: each column a ``bytes`` field of little-endian packed numbers.

A series table is immutable and carries a ``memo`` dict where consumers keep what they derived from
it (the forwarder's split by shard): a scrape loop that sends the same table scrape after scrape
pays for the derivation once.

Time is int64 milliseconds since the epoch throughout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from shardmon.model.blob_records import take_records
from shardmon.model.histogram import HistogramColumns
from shardmon.model.pb import types_pb2

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


class SeriesTable:
    """Series ids and canonical label bytes: ``blob[ends[i-1]:ends[i]]`` is series i's key."""

    __slots__ = ("ids", "blob", "ends", "memo")

    def __init__(self, ids: np.ndarray, blob: bytes, ends: np.ndarray) -> None:
        self.ids = ids
        self.blob = blob
        self.ends = ends
        self.memo: dict = {}

    @classmethod
    def from_keys(cls, ids, keys: Sequence[bytes]) -> SeriesTable:
        ends = np.cumsum(np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys)))
        return cls(np.asarray(ids, dtype=U64), b"".join(keys), ends.astype(U32))

    @classmethod
    def empty(cls) -> SeriesTable:
        return cls(np.empty(0, U64), b"", np.empty(0, U32))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def key(self, i: int) -> bytes:
        start = int(self.ends[i - 1]) if i else 0
        return self.blob[start : int(self.ends[i])]

    def keys(self) -> list[bytes]:
        """Every key as its own bytes object (not for hot paths)."""
        ends = self.ends.tolist()
        blob = self.blob
        return [blob[s:e] for s, e in zip([0] + ends[:-1], ends)]

    def take(self, positions: np.ndarray) -> SeriesTable:
        """The sub-table of the series at ``positions``, built with array operations."""
        positions = np.asarray(positions, dtype=np.int64)
        blob, ends = take_records(self.blob, self.ends, positions)
        return SeriesTable(self.ids[positions], blob, ends)

    @staticmethod
    def concat(tables: Sequence[SeriesTable]) -> SeriesTable:
        if len(tables) == 1:
            return tables[0]
        if not tables:
            return SeriesTable.empty()
        shift = np.cumsum([0] + [len(t.blob) for t in tables[:-1]])
        return SeriesTable(
            np.concatenate([t.ids for t in tables]).astype(U64, copy=False),
            b"".join(t.blob for t in tables),
            np.concatenate([t.ends.astype(np.int64) + s for t, s in zip(tables, shift)]).astype(U32),
        )


class SampleBatch(NamedTuple):
    """Samples of several series, in columns.

    Sample ``j`` belongs to series ``sample_series[j]`` of ``series`` and has ``timestamps_ms[j]``
    and ``values[j]``. The same series may appear more than once in the table.
    """

    series: SeriesTable
    sample_series: np.ndarray  # uint32, one per sample
    timestamps_ms: np.ndarray  # int64, one per sample
    values: np.ndarray  # float64, one per sample
    #: Native histogram samples of the same series table (None: none). A series' float and histogram
    #: samples together are its samples; one timestamp holds one of them at most.
    histograms: HistogramColumns | None = None

    @classmethod
    def of(cls, ids, keys: Sequence[bytes], sample_series, timestamps_ms, values) -> SampleBatch:
        """A batch from a list of keys (convenient; hot paths build the table once and reuse it)."""
        return cls(
            SeriesTable.from_keys(ids, keys),
            np.asarray(sample_series, dtype=U32),
            np.asarray(timestamps_ms, dtype=I64),
            np.asarray(values, dtype=F64),
        )

    @property
    def series_ids(self) -> np.ndarray:
        return self.series.ids

    @property
    def num_samples(self) -> int:
        """Float samples (``num_histograms`` counts the histogram samples)."""
        return int(self.timestamps_ms.shape[0])

    @property
    def num_histograms(self) -> int:
        return 0 if self.histograms is None else len(self.histograms)

    @property
    def num_series(self) -> int:
        return len(self.series)

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls(SeriesTable.empty(), np.empty(0, U32), np.empty(0, I64), np.empty(0, F64))

    def select_series(self, mask: np.ndarray) -> SampleBatch:
        """The sub-batch of the series where ``mask`` (one bool per series) is true, and their samples."""
        keep = np.flatnonzero(mask)
        if keep.shape[0] == self.num_series:
            return self
        remap = np.full(self.num_series, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.shape[0])
        new_ref = remap[self.sample_series]
        sample_mask = new_ref >= 0
        hists = self.histograms
        if hists is not None and len(hists):
            hist_ref = remap[hists.sample_series]
            kept = np.flatnonzero(hist_ref >= 0)
            hists = hists.take(kept).with_series(hist_ref[kept].astype(U32))
        return SampleBatch(
            self.series.take(keep),
            new_ref[sample_mask].astype(U32),
            self.timestamps_ms[sample_mask],
            self.values[sample_mask],
            hists,
        )

    def to_pb(self) -> types_pb2.SampleColumns:
        t = self.series
        pb = types_pb2.SampleColumns(
            series_ids=np.ascontiguousarray(t.ids, U64).tobytes(),
            series_keys=t.blob,
            series_key_ends=np.ascontiguousarray(t.ends, U32).tobytes(),
            sample_series=np.ascontiguousarray(self.sample_series, U32).tobytes(),
            timestamps_ms=np.ascontiguousarray(self.timestamps_ms, I64).tobytes(),
            values=np.ascontiguousarray(self.values, F64).tobytes(),
        )
        h = self.histograms
        if h is not None and len(h):
            pb.hist_sample_series = np.ascontiguousarray(h.sample_series, U32).tobytes()
            pb.hist_timestamps_ms = np.ascontiguousarray(h.timestamps_ms, I64).tobytes()
            pb.hist_blob = h.blob
            pb.hist_ends = np.ascontiguousarray(h.ends, U32).tobytes()
        return pb

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
        hists = None
        if pb.hist_timestamps_ms or pb.hist_sample_series or pb.hist_ends or pb.hist_blob:
            h_refs = np.frombuffer(pb.hist_sample_series, U32)
            h_ts = np.frombuffer(pb.hist_timestamps_ms, I64)
            h_ends = np.frombuffer(pb.hist_ends, U32)
            if not (h_refs.shape[0] == h_ts.shape[0] == h_ends.shape[0]):
                raise ValueError(
                    f"histogram columns differ in length: {h_refs.shape[0]} series refs, "
                    f"{h_ts.shape[0]} timestamps, {h_ends.shape[0]} histograms"
                )
            if h_ends.shape[0] and (int(h_ends[-1]) != len(pb.hist_blob)
                                    or np.any(np.diff(h_ends.astype(np.int64)) < 0)):
                raise ValueError("histogram offsets do not match the histogram bytes")
            if h_refs.shape[0] and int(h_refs.max()) >= ids.shape[0]:
                raise ValueError("a histogram sample refers to a series outside the series table")
            hists = HistogramColumns(h_refs, h_ts, pb.hist_blob, h_ends)
        return cls(SeriesTable(ids, blob, ends), refs, ts, vals, hists)


def concat(batches: Sequence[SampleBatch]) -> SampleBatch:
    """One batch holding all samples of ``batches`` (series tables are appended, not merged)."""
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return SampleBatch.empty()
    offsets = np.cumsum([0] + [b.num_series for b in batches[:-1]])
    hists = None
    if any(b.num_histograms for b in batches):
        pairs = [(b.histograms, o) for b, o in zip(batches, offsets) if b.num_histograms]
        hists = HistogramColumns.concat([h for h, _ in pairs], [int(o) for _, o in pairs])
    return SampleBatch(
        SeriesTable.concat([b.series for b in batches]),
        np.concatenate([b.sample_series.astype(U32) + U32.type(o) for b, o in zip(batches, offsets)]),
        np.concatenate([b.timestamps_ms for b in batches]).astype(I64, copy=False),
        np.concatenate([b.values for b in batches]).astype(F64, copy=False),
        hists,
    )
