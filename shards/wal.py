"""Write-ahead-log records: one per acknowledged Write, an entry of the shard's Redis stream.

A record holds the batch's series ids and its sample columns; the series' labels are not repeated in
every record but written once, when the shard first sees a series, to the series hash (see FORMAT.md).
Replaying the stream after the series hash restores the head exactly.

Writers write format 2: a small header and the series ids as they are (random 64-bit hashes do not
compress), then one zstd frame of the values, the timestamps (as 32-bit offsets from the batch's
earliest when they fit, as a scrape's do) and the per-sample series references, left out when the
batch is one sample per series in table order (a scrape). A batch with native histograms is written
in format 3: format 2's header and ids, its float frame with its length in front, then a frame of the
histogram columns. Readers read formats 3, 2 and 1 (the whole record one zstd frame), so a WAL written
before replays.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from shardmon.model.histogram import HistogramColumns
from shardmon.model.samples import F64, I64, U32, U64

FORMAT_COLUMNS_ZSTD = 1
FORMAT_RAW_IDS = 2
FORMAT_WITH_HISTOGRAMS = 3
_U32 = struct.Struct("<I")
_HEADER_1 = struct.Struct("<BII")  # format, series count, sample count (inside the zstd frame)
# format, flags, 2 zero bytes, series count, sample count, 4 zero bytes, base timestamp: 24 bytes, so the
# ids after it are 8-byte aligned.
_HEADER_2 = struct.Struct("<BBxxIIxxxxq")
_REFS = 1  # flag: the per-sample series references are in the frame (absent: sample i is series i)
_TS32 = 2  # flag: timestamps are uint32 offsets from the base (absent: int64, and the base is 0)
_compressor = zstandard.ZstdCompressor(level=1)
_decompressor = zstandard.ZstdDecompressor()
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def encode_record(series_ids: np.ndarray, sample_series: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                  histograms: HistogramColumns | None = None) -> bytes:
    """A batch's record: format 2, or format 3 when it has ``histograms`` (at least one)."""
    n_series, n = series_ids.shape[0], ts.shape[0]
    flags = 0
    parts = [np.ascontiguousarray(vals, F64).tobytes()]
    base = int(ts.min()) if n else 0
    if n and int(ts.max()) - base < 2**32:
        flags |= _TS32
        parts.append((ts - base).astype(U32).tobytes())
    else:
        base = 0
        parts.append(np.ascontiguousarray(ts, I64).tobytes())
    if not (n == n_series and (sample_series == np.arange(n, dtype=U32)).all()):
        flags |= _REFS
        parts.append(np.ascontiguousarray(sample_series, U32).tobytes())
    frame = _compressor.compress(b"".join(parts))
    ids = np.ascontiguousarray(series_ids, U64).tobytes()
    if histograms is None or not len(histograms):
        return b"".join((_HEADER_2.pack(FORMAT_RAW_IDS, flags, n_series, n, base), ids, frame))
    h = histograms
    hframe = _compressor.compress(b"".join((
        np.ascontiguousarray(h.sample_series, U32).tobytes(), np.ascontiguousarray(h.timestamps_ms, I64).tobytes(),
        np.ascontiguousarray(h.ends, U32).tobytes(), h.blob)))
    return b"".join((_HEADER_2.pack(FORMAT_WITH_HISTOGRAMS, flags, n_series, n, base), ids,
                     _U32.pack(len(frame)), frame, _U32.pack(len(h)), hframe))


def decode_record(data: bytes) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The float part of a record (see :func:`decode_record_with_histograms`)."""
    return decode_record_with_histograms(data)[:4]


def _decode_histograms(data: memoryview, n_series: int) -> HistogramColumns:
    m = _U32.unpack_from(data)[0]
    raw = _decompressor.decompress(data[4:])
    if len(raw) < 16 * m:
        raise ValueError("WAL record's histogram columns truncated")
    refs = np.frombuffer(raw, U32, m, 0)
    ts = np.frombuffer(raw, I64, m, 4 * m)
    ends = np.frombuffer(raw, U32, m, 12 * m)
    blob = bytes(raw[16 * m:])
    if m and (int(ends[-1]) != len(blob) or (np.diff(ends.astype(np.int64)) < 0).any()):
        raise ValueError("WAL record's histogram offsets do not match its histogram bytes")
    if m and int(refs.max()) >= n_series:
        raise ValueError("WAL record's histogram refers to a series outside its series ids")
    return HistogramColumns(refs.copy(), ts.copy(), blob, ends.copy())


def decode_record_with_histograms(data: bytes) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray,
                                                         HistogramColumns | None]:
    """Inverse of :func:`encode_record`, for records of any format: ``(series_ids, sample_series,
    timestamps_ms, values, histograms)``. ``sample_series`` is None when sample i is of series i (a scrape's
    batch in format 2 or 3); ``histograms`` None unless format 3. The arrays are aligned, and read-only where
    they are views of ``data``."""
    hist = None
    if data[:1] in (bytes((FORMAT_RAW_IDS,)), bytes((FORMAT_WITH_HISTOGRAMS,))):
        fmt, flags, n_series, n, base = _HEADER_2.unpack_from(data)
        ids = np.frombuffer(data, U64, n_series, _HEADER_2.size)
        view = memoryview(data)[_HEADER_2.size + 8 * n_series:]
        if fmt == FORMAT_WITH_HISTOGRAMS:
            size = _U32.unpack_from(view)[0]
            hist = _decode_histograms(view[4 + size:], n_series)
            view = view[4:4 + size]
        raw = _decompressor.decompress(view)
        vals = np.frombuffer(raw, F64, n, 0)  # at offset 0: aligned
        off = 8 * n
        if flags & _TS32:
            ts = np.frombuffer(raw, U32, n, off).astype(I64) + base
            off += 4 * n
        else:
            ts = np.frombuffer(raw, I64, n, off)
            off += 8 * n
        refs = np.frombuffer(raw, U32, n, off) if flags & _REFS else None
        if refs is None and n != n_series:
            raise ValueError(f"WAL record of {n_series} series and {n} samples without its series references")
        return ids, refs, ts, vals, hist
    if data[:4] != _ZSTD_MAGIC:
        raise ValueError(f"unknown WAL record format {data[:1].hex()} (this version reads formats 1, 2 and 3)")
    raw = _decompressor.decompress(data)
    fmt, n_series, n = _HEADER_1.unpack_from(raw)
    if fmt != FORMAT_COLUMNS_ZSTD:
        raise ValueError(f"unknown WAL record format {fmt} (this version reads formats 1, 2 and 3)")
    off = _HEADER_1.size
    ids = np.frombuffer(raw, U64, n_series, off)
    off += 8 * n_series
    refs = np.frombuffer(raw, U32, n, off)
    off += 4 * n
    ts = np.frombuffer(raw, I64, n, off)
    off += 8 * n
    vals = np.frombuffer(raw, F64, n, off)
    # The columns start at odd offsets (the header is 9 bytes); numpy's fast loops want them aligned.
    return ids.copy(), refs.copy(), ts.copy(), vals.copy(), None
