"""Write-ahead-log records: one per acknowledged Write, an entry of the shard's Redis stream.

A record holds the batch's series ids and its sample columns, zstd-compressed; the series' labels
are not repeated in every record but written once, when the shard first sees a series, to the
series hash (see FORMAT.md). Replaying the stream after the series hash restores the head exactly.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from shardmon.model.samples import F64, I64, U32, U64

FORMAT_COLUMNS_ZSTD = 1
_HEADER = struct.Struct("<BII")  # format, series count, sample count
_compressor = zstandard.ZstdCompressor(level=1)
_decompressor = zstandard.ZstdDecompressor()


def encode_record(series_ids: np.ndarray, sample_series: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> bytes:
    raw = b"".join(
        (
            _HEADER.pack(FORMAT_COLUMNS_ZSTD, series_ids.shape[0], ts.shape[0]),
            np.ascontiguousarray(series_ids, U64).tobytes(),
            np.ascontiguousarray(sample_series, U32).tobytes(),
            np.ascontiguousarray(ts, I64).tobytes(),
            np.ascontiguousarray(vals, F64).tobytes(),
        )
    )
    return _compressor.compress(raw)


def decode_record(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_record`: ``(series_ids, sample_series, timestamps_ms, values)``."""
    raw = _decompressor.decompress(data)
    fmt, n_series, n = _HEADER.unpack_from(raw)
    if fmt != FORMAT_COLUMNS_ZSTD:
        raise ValueError(f"unknown WAL record format {fmt}")
    off = _HEADER.size
    ids = np.frombuffer(raw, U64, n_series, off)
    off += 8 * n_series
    refs = np.frombuffer(raw, U32, n, off)
    off += 4 * n
    ts = np.frombuffer(raw, I64, n, off)
    off += 8 * n
    vals = np.frombuffer(raw, F64, n, off)
    # The columns start at odd offsets (the header is 9 bytes); numpy's fast loops want them aligned.
    return ids.copy(), refs.copy(), ts.copy(), vals.copy()

