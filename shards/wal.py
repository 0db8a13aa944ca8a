"""Write-ahead-log records: one per acknowledged Write, an entry of the shard's Redis stream.

A record holds the batch's series ids and its sample columns; the series' labels are not repeated in
every record but written once, when the shard first sees a series, to the series hash (see FORMAT.md).
Replaying the stream after the series hash restores the head exactly.

Writers write format 2: a small header and the series ids as they are (random 64-bit hashes do not
compress), then one zstd frame of the values, the timestamps (as 32-bit offsets from the batch's
earliest when they fit, as a scrape's do) and the per-sample series references, left out when the
batch is one sample per series in table order (a scrape). Readers read formats 2 and 1 (the whole
record one zstd frame), so a WAL written before replays.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from shardmon.model.samples import F64, I64, U32, U64

FORMAT_COLUMNS_ZSTD = 1
FORMAT_RAW_IDS = 2
_HEADER_1 = struct.Struct("<BII")  # format, series count, sample count (inside the zstd frame)
# format, flags, 2 zero bytes, series count, sample count, 4 zero bytes, base timestamp: 24 bytes, so the
# ids after it are 8-byte aligned.
_HEADER_2 = struct.Struct("<BBxxIIxxxxq")
_REFS = 1  # flag: the per-sample series references are in the frame (absent: sample i is series i)
_TS32 = 2  # flag: timestamps are uint32 offsets from the base (absent: int64, and the base is 0)
_compressor = zstandard.ZstdCompressor(level=1)
_decompressor = zstandard.ZstdDecompressor()
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def encode_record(series_ids: np.ndarray, sample_series: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> bytes:
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
    return b"".join((
        _HEADER_2.pack(FORMAT_RAW_IDS, flags, n_series, n, base),
        np.ascontiguousarray(series_ids, U64).tobytes(),
        _compressor.compress(b"".join(parts)),
    ))


def decode_record(data: bytes) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_record`, for records of either format: ``(series_ids, sample_series,
    timestamps_ms, values)``. ``sample_series`` is None when sample i is of series i (a scrape's batch
    in format 2). The arrays are aligned, and read-only where they are views of ``data``."""
    if data[:1] == bytes((FORMAT_RAW_IDS,)):
        _, flags, n_series, n, base = _HEADER_2.unpack_from(data)
        ids = np.frombuffer(data, U64, n_series, _HEADER_2.size)
        raw = _decompressor.decompress(memoryview(data)[_HEADER_2.size + 8 * n_series:])
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
        return ids, refs, ts, vals
    if data[:4] != _ZSTD_MAGIC:
        raise ValueError(f"unknown WAL record format {data[:1].hex()} (this version reads formats 1 and 2)")
    raw = _decompressor.decompress(data)
    fmt, n_series, n = _HEADER_1.unpack_from(raw)
    if fmt != FORMAT_COLUMNS_ZSTD:
        raise ValueError(f"unknown WAL record format {fmt} (this version reads formats 1 and 2)")
    off = _HEADER_1.size
    ids = np.frombuffer(raw, U64, n_series, off)
    off += 8 * n_series
    refs = np.frombuffer(raw, U32, n, off)
    off += 4 * n
    ts = np.frombuffer(raw, I64, n, off)
    off += 8 * n
    vals = np.frombuffer(raw, F64, n, off)
    # The columns start at odd offsets (the header is 9 bytes); numpy's fast loops want them aligned.
    return ids.copy(), refs.copy(), ts.copy(), vals.copy()
