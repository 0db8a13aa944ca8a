"""Chunk encoding: the samples of one series in one block, as bytes.

Format 1 (see FORMAT.md): a header (format byte, sample count) and a zstd frame holding two columns,
timestamps as ``t0, d0, dod1, dod2, ...`` (first value, first delta, then deltas of deltas, int64)
and values as the XOR of each float64's bits with the previous one's (uint64). Regular scrapes make
the timestamp column almost all zeros and slowly changing values make the XOR column sparse, which
zstd then squeezes. The round trip is bit-exact for every float64, NaN payloads included.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from model.samples import F64, I64, U64

FORMAT_DOD_XOR_ZSTD = 1
_HEADER = struct.Struct("<BI")  # format, sample count
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


def encode(ts: np.ndarray, vals: np.ndarray) -> bytes:
    """Encode one series' samples (timestamps strictly increasing)."""
    n = ts.shape[0]
    ts = np.ascontiguousarray(ts, I64)
    tcol = np.empty(n, I64)
    if n:
        tcol[0] = ts[0]
        if n > 1:
            d = np.diff(ts)
            tcol[1] = d[0]
            tcol[2:] = np.diff(d)
    bits = np.ascontiguousarray(vals, F64).view(U64)
    vcol = bits.copy()
    vcol[1:] ^= bits[:-1]
    return _HEADER.pack(FORMAT_DOD_XOR_ZSTD, n) + _compressor.compress(tcol.tobytes() + vcol.tobytes())


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`: ``(int64 timestamps, float64 values)``."""
    fmt, n = _HEADER.unpack_from(data)
    if fmt != FORMAT_DOD_XOR_ZSTD:
        raise ValueError(f"unknown chunk format {fmt}")
    raw = _decompressor.decompress(data[_HEADER.size :], max_output_size=16 * n)
    tcol = np.frombuffer(raw, I64, n)
    vcol = np.frombuffer(raw, U64, n, offset=8 * n)
    ts = np.empty(n, I64)
    if n:
        ts[0] = tcol[0]
        if n > 1:
            deltas = np.cumsum(tcol[1:])  # d0, d0+dod1, ... = the deltas
            ts[1:] = tcol[0] + np.cumsum(deltas)
    vals = np.bitwise_xor.accumulate(vcol).view(F64) if n else np.empty(0, F64)
    return ts, vals
