"""Chunk encoding: the samples of one series in one block, as bytes.

:func:`encode` writes format 2; :func:`decode` reads format 2 and the legacy format 1. FORMAT.md
("Blocks") has the byte layouts. The round trip is bit-exact for every float64 (NaN payloads such as
the staleness marker, -0.0, infinities, subnormals) and every strictly increasing int64 timestamp
sequence, in both formats.

Format 1 (legacy): timestamps as ``t0, d0, dod1, dod2, ...`` and the XOR of consecutive float64 bit
patterns, both as 8-byte columns in one zstd frame.

Format 2 stores timestamps, and values where it can, as int64 *columns*, each through one pipeline:

1. a *predictor*, chosen per column by a cheap estimate of the bits its residuals need: the raw
   numbers, the residual from a line (``x[i] - i*D``, D the median step: what regular scrapes leave
   is their jitter), deltas, or deltas of deltas. All arithmetic wraps modulo 2**64 in both
   directions, so no input (however large or negative) can overflow into a wrong result;
2. frame of reference: the residuals minus their minimum, as uint64, divided by their GCD (pages of
   4096 bytes, timestamps in whole seconds);
3. the smallest width (0, 1, 2, 4 or 8 bytes) that holds the largest, split into byte planes (all
   lowest bytes, then all second bytes, ...), each plane zstd-compressed on its own, so it gets its
   own entropy tables, or stored raw when zstd does not make it smaller.

Values are stored as *decimal-scaled integers* when the chunk allows: the smallest k in -22..22
such that every value is exactly ``int / 10**k`` (``int * 10**-k`` for negative k), checked bit for bit
by rebuilding the values with :func:`_unscale`, the very operation the decoder uses. Exporters print
decimals, so counters, byte counts and gauges with a few decimals qualify. NaN, infinities and -0.0
(which no integer gives back) are kept aside as exceptions, positions and bits, so a staleness marker
does not spoil its chunk. A chunk whose values have no such scale (float noise, subnormals, more
than 2**53 in units of 10**-k) stores the float64 bit patterns themselves, in 8 byte planes.
"""

from __future__ import annotations

import functools
import struct
import threading

import numpy as np
import zstandard

from shardmon.model.samples import F64, I64, U64

FORMAT_DOD_XOR_ZSTD = 1
"""Legacy: delta-of-delta timestamps and XOR'd float bits in one zstd frame. Read, no longer written."""
FORMAT_COLUMNS_ZSTD = 2
"""Predicted, frame-of-reference, byte-plane columns; values as decimal-scaled integers or float bits."""

ZSTD_LEVEL = 3
"""zstd level of format 2's planes, with a minimum match of 7 bytes: 2-5% smaller than level 3's default
of 5 on monitoring data, in the same time. Level 19 saved another 3-8% but took 1.5 to 4 times as long
to encode a chunk; decoding speed does not depend on the level."""
ZSTD_MIN_MATCH = 7

VALUES_DECIMAL = 0
VALUES_FLOAT = 1

PRED_RAW, PRED_LINEAR, PRED_DELTA, PRED_DOD = range(4)
_PRED_PARAMS = (0, 1, 1, 2)  # zigzag varints after the descriptor: -, D, x0, (x0, d0)
_PRED_SKIP = (0, 0, 1, 2)  # values the residuals lack: delta and delta of delta start later
_WIDTHS = (0, 1, 2, 4, 8)
_WIDTH_CODE = {w: i for i, w in enumerate(_WIDTHS)}
_UINT = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
_GCD_FLAG = 0x20
MAX_SAMPLES = 2**32 - 1  # per chunk, as in format 1; also bounds what a corrupt chunk makes a reader allocate
_U64_MASK = (1 << 64) - 1

_V1_HEADER = struct.Struct("<BI")  # format, sample count
# zstd contexts are not thread-safe: one set per thread (shards encode blocks off the event loop).
_local = threading.local()


def _contexts() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor, zstandard.ZstdDecompressor]:
    """(format-2 compressor, format-2 decompressor, format-1 decompressor) of this thread."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        # Format 2's frames: no magic number, content size or checksum (the chunk says how long each plane is).
        compressor = zstandard.ZstdCompressor(
            compression_params=zstandard.ZstdCompressionParameters.from_level(
                ZSTD_LEVEL,
                min_match=ZSTD_MIN_MATCH,
                format=zstandard.FORMAT_ZSTD1_MAGICLESS,
                write_content_size=0,
                write_checksum=0,
                write_dict_id=0,
            )
        )
        ctx = _local.ctx = (compressor, zstandard.ZstdDecompressor(format=zstandard.FORMAT_ZSTD1_MAGICLESS),
                            zstandard.ZstdDecompressor())
    return ctx

# --- decimal scaling -------------------------------------------------------------------------------

MAX_SCALE = 22  # 10**22 is the largest power of ten a float64 holds exactly
_POW10 = np.array([float(10**i) for i in range(MAX_SCALE + 1)], F64)  # exact
_SCALES = np.arange(-MAX_SCALE, MAX_SCALE + 1)  # tried smallest first
# For scale k: q = v * _MUL / _DIV gives the integer, int / _MUL * _DIV the value back. One of each pair
# is 1.0, so these are exactly the operations of _scaled_ints and _unscale (x * 1.0 = x / 1.0 = x).
_MUL = np.where(_SCALES >= 0, _POW10[np.abs(_SCALES)], 1.0)
_DIV = np.where(_SCALES < 0, _POW10[np.abs(_SCALES)], 1.0)
_INT_LIMIT = float(2**53)  # scaled integers stay below this: exact in float64, and their deltas fit int64
_SAMPLE = 16  # values the scale search tries before checking the whole chunk
_ROUNDS = 3  # samples it tries, each grown by values the previous scale failed on


def _unscale(ints: np.ndarray, k: int) -> np.ndarray:
    """The values of decimal-scaled integers: the one operation the encoder checks and the decoder uses."""
    f = ints.astype(F64)
    return f / _POW10[k] if k >= 0 else f * _POW10[-k]


def _scaled_ints(vals: np.ndarray, k: int) -> np.ndarray | None:
    q = vals * _POW10[k] if k >= 0 else vals / _POW10[-k]
    if not (np.abs(q) < _INT_LIMIT).all():
        return None
    return np.rint(q).astype(I64)


@functools.lru_cache(maxsize=64)
def _sample_index(n: int) -> np.ndarray:
    """Up to _SAMPLE positions spread evenly over n, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, _SAMPLE)).astype(np.int64))


def _find_scale(vals: np.ndarray) -> tuple[int, np.ndarray] | None:
    """``(k, ints)`` with the smallest k in -22..22 such that ``_unscale(ints, k)`` is ``vals`` bit for
    bit, or ``None``. NaN, infinities and -0.0 fail every k (no integer gives them back)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflows give inf: out of range, rejected
        return _search_scale(vals)


def _search_scale(vals: np.ndarray) -> tuple[int, np.ndarray] | None:
    bits = vals.view(U64)
    idx = _sample_index(vals.shape[0])
    for _ in range(_ROUNDS):
        # The scales that work for a sample of the values, all at once; then check the whole chunk.
        q = vals[idx][:, None] * _MUL / _DIV
        inside = np.abs(q) < _INT_LIMIT
        ints = np.rint(np.where(inside, q, 0.0)).astype(I64)
        ok = inside & ((ints.astype(F64) / _MUL * _DIV).view(U64) == bits[idx][:, None])
        good = np.flatnonzero(ok.all(axis=0))
        if not good.shape[0]:
            return None
        k = int(_SCALES[good[0]])
        full = _scaled_ints(vals, k)
        if full is not None:
            back = _unscale(full, k).view(U64)
            if np.array_equal(back, bits):
                return k, full
            wrong = np.flatnonzero(back != bits)
        else:
            wrong = np.flatnonzero(~(np.abs(vals * _MUL[good[0]] / _DIV[good[0]]) < _INT_LIMIT))
        idx = np.union1d(idx, wrong[:_SAMPLE])  # k fails on these, so the next round's k is larger
    return None  # float noise can pass for 16-digit decimals in a sample; not worth more rounds


# --- varints ---------------------------------------------------------------------------------------


def put_uvarint(out: bytearray, x: int) -> None:
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)


def put_svarint(out: bytearray, x: int) -> None:
    """An int64 as a zigzag varint."""
    put_uvarint(out, ((x << 1) ^ (x >> 63)) & _U64_MASK)


def get_uvarint(data, pos: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        b = data[pos]
        pos += 1
        x |= (b & 0x7F) << shift
        if b < 0x80:
            if x > _U64_MASK:
                raise ValueError("varint out of range")
            return x, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def get_svarint(data, pos: int) -> tuple[int, int]:
    z, pos = get_uvarint(data, pos)
    return (z >> 1) ^ -(z & 1), pos


# --- columns ---------------------------------------------------------------------------------------


def put_column(out: bytearray, x: np.ndarray, *, robust: bool = False) -> None:
    """An int64 sequence of at least one number: descriptor, parameters, base, GCD, byte planes.

    ``robust``: estimate each predictor's cost from its residuals' distance to their median rather than their
    minimum, for columns with a few outliers (the bucket counts of chunk format 3, one jump per bucket) that
    widen every residual but cost little once the byte planes are compressed."""
    n = x.shape[0]
    # Each predictor's residuals, one row each (delta rows padded at the front with their first
    # residual, which changes neither minimum nor width), in order of preference.
    rows = np.zeros((4, n), I64)
    rows[0] = x
    allowed = [True, False, n >= 2, n >= 3]
    step = 0
    if n >= 2:
        d = x[1:] - x[:-1]  # wraps, like all the arithmetic here
        step = int(np.partition(d, (n - 1) // 2)[(n - 1) // 2])  # the median step
        allowed[1] = step != 0
        rows[1] = x - np.arange(n, dtype=I64) * np.int64(step)
        rows[2, 1:] = d
        rows[2, 0] = d[0]
        if n >= 3:
            rows[3, 2:] = d[1:] - d[:-1]
            rows[3, :2] = rows[3, 2]
    # About the bits each row needs once its minimum is subtracted: sum(floor(log2(u + 1))), read off
    # the float64 exponent fields (plus a constant).
    if robust and n >= 3:
        med = np.partition(rows, n // 2, axis=1)[:, n // 2 : n // 2 + 1]
        u = np.abs(rows - med).view(U64)  # a wrapped difference counts as large, as it is
    else:
        u = rows.view(U64) - rows.min(axis=1, keepdims=True).view(U64)
    cost = ((u.astype(F64) + 1.0).view(U64) >> np.uint64(52)).sum(axis=1).tolist()
    pred = min((p for p in range(4) if allowed[p]), key=cost.__getitem__)
    params = ((), (step,), (int(x[0]),), (int(x[0]), int(rows[2, 0])))[pred]

    c = rows[pred, _PRED_SKIP[pred] :]
    base = c.min()
    u = c.view(U64) - base.view(U64)  # the true distance from the minimum, whatever the wrap
    g = int(np.gcd.reduce(u))
    if g > 1:
        u = u // np.uint64(g)
    top = int(u.max())
    width = 0 if top == 0 else 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    out.append(pred | _WIDTH_CODE[width] << 2 | (_GCD_FLAG if g > 1 else 0))
    for p in params:
        put_svarint(out, p)
    put_svarint(out, int(base))
    if g > 1:
        put_uvarint(out, g)
    if width:
        _put_planes(out, u.astype(_UINT[width]))


def get_column(data, pos: int, n: int) -> tuple[np.ndarray, int]:
    desc = data[pos]
    pos += 1
    pred, width_code = desc & 3, (desc >> 2) & 7
    if desc & 0xC0 or width_code >= len(_WIDTHS):
        raise ValueError(f"bad column descriptor {desc:#x}")
    m = n - _PRED_SKIP[pred]  # residuals stored
    if m < 1:
        raise ValueError("column too short for its predictor")
    params = []
    for _ in range(_PRED_PARAMS[pred]):
        p, pos = get_svarint(data, pos)
        params.append(p)
    base, pos = get_svarint(data, pos)
    g = 1
    if desc & _GCD_FLAG:
        g, pos = get_uvarint(data, pos)
    width = _WIDTHS[width_code]
    if width:
        packed, pos = _get_planes(data, pos, m, width)
        u = packed.astype(U64)
        if g > 1:
            u *= np.uint64(g)
    else:
        u = np.zeros(m, U64)
    c = (u + np.uint64(base & _U64_MASK)).view(I64)  # wraps back
    if pred == PRED_RAW:
        return c, pos
    if pred == PRED_LINEAR:
        return c + np.arange(n, dtype=I64) * np.int64(params[0]), pos
    if pred == PRED_DELTA:
        d = c
    else:
        d = np.empty(n - 1, I64)
        d[0] = params[1]
        d[1:] = np.int64(params[1]) + np.cumsum(c)
    x = np.empty(n, I64)
    x[0] = params[0]
    x[1:] = np.int64(params[0]) + np.cumsum(d)
    return x, pos


def _put_planes(out: bytearray, col: np.ndarray) -> None:
    """The byte planes of a little-endian unsigned column, least significant first, each raw or zstd."""
    planes = np.ascontiguousarray(col.view(np.uint8).reshape(col.shape[0], col.dtype.itemsize).T)
    for plane in planes:
        raw = plane.tobytes()
        z = _contexts()[0].compress(raw)
        if len(z) < len(raw):
            put_uvarint(out, len(z) << 1 | 1)
            out += z
        else:
            put_uvarint(out, len(raw) << 1)
            out += raw


def _get_planes(data, pos: int, n: int, width: int) -> tuple[np.ndarray, int]:
    planes = np.empty((width, n), np.uint8)
    for i in range(width):
        code, pos = get_uvarint(data, pos)
        size = code >> 1
        piece = data[pos : pos + size]
        if len(piece) != size:
            raise ValueError("chunk truncated")
        pos += size
        raw = _contexts()[1].decompress(piece, max_output_size=n) if code & 1 else piece
        if len(raw) != n:
            raise ValueError("chunk plane has the wrong length")
        planes[i] = np.frombuffer(raw, np.uint8)
    return np.ascontiguousarray(planes.T).view(_UINT[width]).reshape(n), pos


# --- chunks ----------------------------------------------------------------------------------------


def encode(ts: np.ndarray, vals: np.ndarray) -> bytes:
    """Encode one series' samples (timestamps strictly increasing) in format 2."""
    ts = np.ascontiguousarray(ts, I64)
    vals = np.ascontiguousarray(vals, F64)
    n = ts.shape[0]
    if vals.shape[0] != n:
        raise ValueError(f"{n} timestamps but {vals.shape[0]} values")
    if n > MAX_SAMPLES:
        raise ValueError(f"{n} samples is more than a chunk holds ({MAX_SAMPLES})")
    out = bytearray((FORMAT_COLUMNS_ZSTD,))
    put_uvarint(out, n)
    if not n:
        return bytes(out)
    put_column(out, ts)
    put_values(out, vals)
    return bytes(out)


def put_values(out: bytearray, vals: np.ndarray, *, robust: bool = False) -> None:
    """N >= 1 float64 values: the value mode byte and what follows it (FORMAT.md, chunk format 2);
    ``robust`` as :func:`put_column`'s."""
    n = vals.shape[0]
    bits = vals.view(U64)
    n_special = 0
    scaled = _find_scale(vals)
    if scaled is None:
        special = ~np.isfinite(vals) | (bits == np.uint64(1 << 63))  # NaN, infinities, -0.0
        n_special = int(special.sum())
        if 0 < n_special < n:
            regular = ~special
            scaled = _find_scale(vals[regular])
    if scaled is None:
        out.append(VALUES_FLOAT)
        _put_planes(out, bits)
        return
    k, ints = scaled
    out.append(VALUES_DECIMAL)
    out.append(k & 0xFF)
    put_uvarint(out, n_special)
    if n_special:
        where = np.flatnonzero(special)
        put_column(out, where)
        put_column(out, bits[where].view(I64))
        # Exceptions' integers are placeholders: continue from the nearest earlier regular integer (the
        # first one if none) by the median step, so counters and gauges alike keep their usual deltas.
        step = 0
        if ints.shape[0] >= 2:
            d = ints[1:] - ints[:-1]
            step = int(np.partition(d, (d.shape[0] - 1) // 2)[(d.shape[0] - 1) // 2])
        full = np.zeros(n, I64)
        full[regular] = ints
        i = np.arange(n, dtype=I64)
        near = np.maximum.accumulate(np.where(regular, i, -1))
        near[near < 0] = np.argmax(regular)
        ints = full[near] + (i - near) * np.int64(step)
    put_column(out, ints, robust=robust)


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`, and reads format 1: ``(int64 timestamps, float64 values)``."""
    if not data:
        raise ValueError("empty chunk")
    fmt = data[0]
    if fmt == FORMAT_COLUMNS_ZSTD:
        try:
            return _decode_v2(memoryview(data))
        except (IndexError, struct.error) as e:
            raise ValueError("chunk truncated") from e
        except zstandard.ZstdError as e:
            raise ValueError(f"corrupt chunk: {e}") from e
    if fmt == FORMAT_DOD_XOR_ZSTD:
        return _decode_v1(data)
    raise ValueError(f"unknown chunk format {fmt}")


def _decode_v2(data: memoryview) -> tuple[np.ndarray, np.ndarray]:
    n, pos = get_uvarint(data, 1)
    if n > MAX_SAMPLES:
        raise ValueError(f"chunk claims {n} samples")
    if not n:
        if pos != len(data):
            raise ValueError("trailing bytes after chunk")
        return np.empty(0, I64), np.empty(0, F64)
    ts, pos = get_column(data, pos, n)
    vals, pos = get_values(data, pos, n)
    if pos != len(data):
        raise ValueError("trailing bytes after chunk")
    return ts, vals


def get_values(data, pos: int, n: int) -> tuple[np.ndarray, int]:
    """Inverse of :func:`put_values`: ``(values, position after them)``."""
    mode = data[pos]
    pos += 1
    if mode == VALUES_DECIMAL:
        k = struct.unpack_from("<b", data, pos)[0]
        if not -MAX_SCALE <= k <= MAX_SCALE:
            raise ValueError(f"bad decimal scale {k}")
        n_special, pos = get_uvarint(data, pos + 1)
        if n_special > n:
            raise ValueError("more exceptions than samples")
        if n_special:
            where, pos = get_column(data, pos, n_special)
            special, pos = get_column(data, pos, n_special)
            if where.min() < 0 or where.max() >= n:
                raise ValueError("exception position out of range")
        ints, pos = get_column(data, pos, n)
        vals = _unscale(ints, k)
        if n_special:
            vals.view(U64)[where] = special.view(U64)
    elif mode == VALUES_FLOAT:
        packed, pos = _get_planes(data, pos, n, 8)
        vals = packed.view(F64)
    else:
        raise ValueError(f"unknown value mode {mode}")
    return vals, pos


def _decode_v1(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    fmt, n = _V1_HEADER.unpack_from(data)
    raw = _contexts()[2].decompress(data[_V1_HEADER.size :], max_output_size=16 * n)
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
