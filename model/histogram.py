"""Native (sparse, exponential) histograms: one sample's value, its binary encoding, and columns of them.

A :class:`Histogram` is Prometheus's ``FloatHistogram``: the schema (bucket resolution), the zero
bucket (threshold and count), the observation count and sum, and the populated buckets on each side
of zero as *spans* (runs of consecutive bucket indices: ``(offset, length)``, the first offset from
index 0, each later one from the end of the previous span) with one **absolute** count per bucket
(not deltas). An integer histogram (what client libraries expose, Prometheus's ``Histogram``) is the
same with ``is_int`` set: its counts are whole numbers, kept exactly as float64 (up to 2**53).

Bucket ``i`` of schema ``s`` on the positive side covers ``(base**(i-1), base**i]`` with
``base = 2**(2**-s)``; negative buckets mirror them; the zero bucket covers
``[-zero_threshold, zero_threshold]``.

``counter_reset_hint``: :data:`UNKNOWN_COUNTER_RESET`, :data:`COUNTER_RESET`,
:data:`NOT_COUNTER_RESET` or :data:`GAUGE_TYPE`, as Prometheus's ``CounterResetHint``.

The encoding (:func:`encode`, :func:`decode`) is what every Shardmon process sends and keeps (the
``hist_*`` fields of ``SampleColumns``, the WAL, chunks); ``shards/FORMAT.md`` documents it.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import NamedTuple

import numpy as np

from shardmon.model.blob_records import take_records

UNKNOWN_COUNTER_RESET = 0
COUNTER_RESET = 1
NOT_COUNTER_RESET = 2
GAUGE_TYPE = 3

#: Schemas Prometheus accepts for exponential histograms.
MIN_SCHEMA = -4
MAX_SCHEMA = 8

Spans = tuple[tuple[int, int], ...]

_ENCODING_VERSION = 1
_HEAD = struct.Struct("<BBbdddd")  # version, flags, schema, zero_threshold, zero_count, count, sum


@dataclass(frozen=True, slots=True)
class Histogram:
    """One native histogram sample (see the module docstring). Immutable: operations return new ones."""

    schema: int = 0
    zero_threshold: float = 0.0
    zero_count: float = 0.0
    count: float = 0.0
    sum: float = 0.0
    positive_spans: Spans = ()
    positive_buckets: tuple[float, ...] = ()
    negative_spans: Spans = ()
    negative_buckets: tuple[float, ...] = ()
    counter_reset_hint: int = UNKNOWN_COUNTER_RESET
    #: An integer histogram (counts are whole numbers); PromQL results are float histograms.
    is_int: bool = False

    def __post_init__(self) -> None:
        if not MIN_SCHEMA <= self.schema <= MAX_SCHEMA:
            raise ValueError(f"histogram schema {self.schema} outside [{MIN_SCHEMA}, {MAX_SCHEMA}]")
        for side, spans, buckets in (("positive", self.positive_spans, self.positive_buckets),
                                     ("negative", self.negative_spans, self.negative_buckets)):
            n = 0
            for i, (offset, length) in enumerate(spans):
                if length < 0 or (i and offset < 0):
                    raise ValueError(f"histogram {side} span {i} has offset {offset}, length {length}")
                n += length
            if n != len(buckets):
                raise ValueError(f"histogram {side} spans cover {n} buckets but {len(buckets)} counts are given")

    @classmethod
    def from_deltas(cls, *, schema: int, zero_threshold: float, zero_count: float, count: float, sum: float,
                    positive_spans: Sequence[tuple[int, int]] = (), positive_deltas: Sequence[float] = (),
                    negative_spans: Sequence[tuple[int, int]] = (), negative_deltas: Sequence[float] = (),
                    counter_reset_hint: int = UNKNOWN_COUNTER_RESET, is_int: bool = True) -> Histogram:
        """An integer histogram as the wire formats carry it: bucket counts as deltas from the previous bucket."""
        return cls(schema, float(zero_threshold), float(zero_count), float(count), float(sum),
                   _spans(positive_spans), tuple(float(x) for x in np.cumsum(positive_deltas, dtype=np.int64)),
                   _spans(negative_spans), tuple(float(x) for x in np.cumsum(negative_deltas, dtype=np.int64)),
                   counter_reset_hint, is_int)

    def deltas(self, positive: bool = True) -> list[int]:
        """An integer histogram's bucket counts as deltas (the wire formats' form)."""
        counts = self.positive_buckets if positive else self.negative_buckets
        out, prev = [], 0
        for c in counts:
            out.append(int(c) - prev)
            prev = int(c)
        return out

    def to_float(self) -> Histogram:
        """The same histogram marked as a float histogram (what PromQL returns)."""
        if not self.is_int:
            return self
        return Histogram(self.schema, self.zero_threshold, self.zero_count, self.count, self.sum,
                         self.positive_spans, self.positive_buckets, self.negative_spans, self.negative_buckets,
                         self.counter_reset_hint, False)

    def identical(self, other: Histogram) -> bool:
        """Equal field for field, float bits included (NaN sums compare equal to themselves)."""
        return encode(self) == encode(other)


def _spans(spans: Sequence[tuple[int, int]]) -> Spans:
    return tuple((int(o), int(n)) for o, n in spans)


# Prometheus's bounds for schemas 1..8 come from a table of the fractions 2**(i/2**s)/2 (i < 2**s) in
# [0.5, 1), scaled with ldexp (model/histogram/generic.go's exponentialBounds). Its entries are not all the
# correctly rounded values: each differs from them by a few units in the last place. We compute the
# correctly rounded fractions of schema 8 (every other schema's are a subset: schema s, fraction i is
# schema 8's i << (8 - s)) and apply those differences, so the bounds are Prometheus's bit for bit.
# One digit per fraction of schema 8: its difference in ULPs from the correctly rounded value, plus 4.
_ULP_FIX = ("4444443444344444443244333333333344344434433344334433453344334433"
            "4444443333223423443444344443444444434544342244334333443434223333"
            "3434332233233433333333232322232244334434332234223322343323223323"
            "3312332322122212222222111100120133233222231133222312332222012211")
_MAX_FLOAT = sys.float_info.max


def _fractions() -> np.ndarray:
    with localcontext() as ctx:
        ctx.prec = 40
        exact = [float((Decimal(2) ** (Decimal(i) / 256)) / 2) for i in range(256)]
    raw = np.asarray(exact, dtype=np.float64).view(np.int64)
    return (raw + np.frombuffer(_ULP_FIX.encode(), dtype=np.uint8).astype(np.int64) - ord("4")).view(np.float64)


#: The fractions of schema 8; schema s uses every 2**(8-s)-th.
_FRACTIONS = _fractions()


def bucket_bound(index: int, schema: int) -> float:
    """The upper bound of positive bucket ``index`` under ``schema``, exactly as Prometheus's ``getBound``
    (the last bucket below the one that counts +Inf ends at the largest float, not at +Inf)."""
    if schema < 0:
        exp = index << -schema
        if exp == 1024:
            return _MAX_FLOAT
        return _ldexp(1.0, exp)
    frac = float(_FRACTIONS[(index & ((1 << schema) - 1)) << (8 - schema)])
    exp = (index >> schema) + 1
    if frac == 0.5 and exp == 1025:
        return _MAX_FLOAT
    return _ldexp(frac, exp)


def _ldexp(frac: float, exp: int) -> float:
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.inf


def bucket_bounds(schema: int, index: int) -> tuple[float, float]:
    """The positive bucket ``index``'s (lower, upper] bounds under ``schema``, exactly as Prometheus's."""
    return bucket_bound(index - 1, schema), bucket_bound(index, schema)


def bucket_bounds_array(schema: int, indices: np.ndarray) -> np.ndarray:
    """:func:`bucket_bound` of every index (an int array): the upper bounds of those positive buckets."""
    idx = np.asarray(indices, dtype=np.int64)
    if schema < 0:
        frac = np.ones(idx.shape, dtype=np.float64)
        exp = idx << -schema
        last = exp == 1024
    else:
        frac = _FRACTIONS[(idx & ((1 << schema) - 1)) << (8 - schema)]
        exp = (idx >> schema) + 1
        last = (frac == 0.5) & (exp == 1025)
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(frac, np.clip(exp, -2000, 2000).astype(np.int32))
    out[last] = _MAX_FLOAT
    return out


class Bucket(NamedTuple):
    """One bucket of a histogram as Prometheus's API shows it: bounds, count, and which ends are closed."""

    lower: float
    upper: float
    count: float
    lower_inclusive: bool
    upper_inclusive: bool
    #: The bucket's index on its side (0 for the zero bucket).
    index: int = 0

    @property
    def boundary_rule(self) -> int:
        """The JSON's first element: 0 open left, 1 open right, 2 open both, 3 closed both."""
        if self.lower_inclusive:
            return 3 if self.upper_inclusive else 1
        return 0 if self.upper_inclusive else 2


def bucket_map(spans: Spans, counts: Sequence[float]) -> dict[int, float]:
    """One side's buckets as ``{bucket index: count}`` in ascending index order (the spans walked: the first
    offset from index 0, each later one from one past the previous span's last bucket)."""
    out: dict[int, float] = {}
    idx, j = 0, 0
    for offset, length in spans:
        idx += offset
        for _ in range(length):
            out[idx] = counts[j]
            idx += 1
            j += 1
    return out


def spans_of(buckets: Mapping[int, float]) -> tuple[Spans, tuple[float, ...]]:
    """The spans and counts of one side given as ``{bucket index: count}`` (any order): the runs of
    consecutive indices, every bucket kept (empty ones too); the inverse of :func:`bucket_map`."""
    spans: list[list[int]] = []
    prev = None
    order = sorted(buckets)
    for idx in order:
        if prev is not None and idx == prev + 1:
            spans[-1][1] += 1
        else:
            spans.append([idx if prev is None else idx - prev - 1, 1])
        prev = idx
    return tuple((o, n) for o, n in spans), tuple(buckets[i] for i in order)


def iter_buckets(h: Histogram) -> Iterator[Bucket]:
    """Every bucket of ``h`` in Prometheus's order (``AllBucketIterator``): the negative ones from the most
    negative, the zero bucket (only when its count is not 0), then the positive ones ascending. Empty
    buckets are included (the API's JSON leaves them out). A bucket that overlaps the zero bucket has
    that end moved to the zero threshold, as Prometheus does."""
    zt = h.zero_threshold
    for idx, count in reversed(bucket_map(h.negative_spans, h.negative_buckets).items()):
        lower, upper = -bucket_bound(idx, h.schema), -bucket_bound(idx - 1, h.schema)
        yield _clamped(lower, upper, count, idx, zt)
    if h.zero_count > 0:
        yield Bucket(-zt, zt, h.zero_count, True, True, 0)
    for idx, count in bucket_map(h.positive_spans, h.positive_buckets).items():
        yield _clamped(bucket_bound(idx - 1, h.schema), bucket_bound(idx, h.schema), count, idx, zt)


def _clamped(lower: float, upper: float, count: float, idx: int, zt: float) -> Bucket:
    lower_inclusive, upper_inclusive = lower < 0, upper > 0
    if -zt < upper < 0:
        upper = -zt
    elif 0 < lower < zt:
        lower = zt
    return Bucket(lower, upper, count, lower_inclusive, upper_inclusive, idx)


def encode(h: Histogram) -> bytes:
    """The histogram's bytes (FORMAT.md, "Histogram samples"): every float bit for bit."""
    flags = (1 if h.is_int else 0) | (h.counter_reset_hint & 3) << 1
    parts = [_HEAD.pack(_ENCODING_VERSION, flags, h.schema, h.zero_threshold, h.zero_count, h.count, h.sum)]
    for spans, buckets in ((h.positive_spans, h.positive_buckets), (h.negative_spans, h.negative_buckets)):
        parts.append(struct.pack("<HI", len(spans), len(buckets)))
        if spans:
            parts.append(np.asarray(spans, dtype="<i4").tobytes())
        if buckets:
            parts.append(np.asarray(buckets, dtype="<f8").tobytes())
    return b"".join(parts)


def decode(data: bytes | memoryview) -> Histogram:
    """The histogram :func:`encode` wrote; raises ``ValueError`` on bytes that are not one."""
    data = bytes(data)
    if len(data) < _HEAD.size or data[0] != _ENCODING_VERSION:
        raise ValueError(f"not an encoded histogram (version byte {data[:1].hex() or 'missing'})")
    _, flags, schema, zt, zc, count, total = _HEAD.unpack_from(data)
    pos = _HEAD.size
    sides = []
    for _ in range(2):
        if len(data) < pos + 6:
            raise ValueError("encoded histogram truncated")
        n_spans, n_buckets = struct.unpack_from("<HI", data, pos)
        pos += 6
        end = pos + 8 * n_spans + 8 * n_buckets
        if len(data) < end:
            raise ValueError("encoded histogram truncated")
        spans = np.frombuffer(data, dtype="<i4", count=2 * n_spans, offset=pos).reshape(-1, 2)
        pos += 8 * n_spans
        buckets = np.frombuffer(data, dtype="<f8", count=n_buckets, offset=pos)
        pos += 8 * n_buckets
        sides.append((tuple((int(o), int(n)) for o, n in spans.tolist()), tuple(buckets.tolist())))
    if pos != len(data):
        raise ValueError(f"encoded histogram has {len(data) - pos} bytes left over")
    return Histogram(schema, zt, zc, count, total, sides[0][0], sides[0][1], sides[1][0], sides[1][1],
                     (flags >> 1) & 3, bool(flags & 1))


class HistogramColumns(NamedTuple):
    """Histogram samples in columns, beside a batch's float samples.

    Sample ``j`` belongs to series ``sample_series[j]`` of the batch's series table, at ``timestamps_ms[j]``,
    and is ``decode(blob[ends[j-1]:ends[j]])``. On the wire: the ``hist_*`` fields of ``SampleColumns``.
    """

    sample_series: np.ndarray  # uint32, one per histogram sample
    timestamps_ms: np.ndarray  # int64
    blob: bytes  # the encoded histograms, concatenated
    ends: np.ndarray  # uint32 end offset of each in blob

    @classmethod
    def of(cls, sample_series, timestamps_ms, histograms: Sequence[Histogram]) -> HistogramColumns:
        encoded = [encode(h) for h in histograms]
        ends = np.cumsum(np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded)))
        return cls(np.asarray(sample_series, dtype=np.uint32), np.asarray(timestamps_ms, dtype=np.int64),
                   b"".join(encoded), ends.astype(np.uint32))

    @classmethod
    def empty(cls) -> HistogramColumns:
        return cls(np.empty(0, np.uint32), np.empty(0, np.int64), b"", np.empty(0, np.uint32))

    def __len__(self) -> int:
        return int(self.timestamps_ms.shape[0])

    def raw(self, j: int) -> bytes:
        start = int(self.ends[j - 1]) if j else 0
        return self.blob[start:int(self.ends[j])]

    def histogram(self, j: int) -> Histogram:
        return decode(self.raw(j))

    def histograms(self) -> list[Histogram]:
        return [self.histogram(j) for j in range(len(self))]

    def take(self, positions: np.ndarray) -> HistogramColumns:
        """The samples at ``positions`` (in that order)."""
        positions = np.asarray(positions, dtype=np.int64)
        blob, ends = take_records(self.blob, self.ends, positions)
        return HistogramColumns(self.sample_series[positions], self.timestamps_ms[positions], blob, ends)

    def with_series(self, sample_series: np.ndarray) -> HistogramColumns:
        return HistogramColumns(np.asarray(sample_series, dtype=np.uint32), self.timestamps_ms, self.blob, self.ends)

    @staticmethod
    def concat(columns: Sequence[HistogramColumns], series_offsets: Sequence[int]) -> HistogramColumns:
        """The samples of ``columns`` one after another, ``series_offsets[i]`` added to the i-th's series refs."""
        if not columns:
            return HistogramColumns.empty()
        shift = np.cumsum([0] + [len(c.blob) for c in columns[:-1]])
        return HistogramColumns(
            np.concatenate([c.sample_series.astype(np.uint32) + np.uint32(o) for c, o in zip(columns, series_offsets)]),
            np.concatenate([c.timestamps_ms for c in columns]).astype(np.int64, copy=False),
            b"".join(c.blob for c in columns),
            np.concatenate([c.ends.astype(np.int64) + s for c, s in zip(columns, shift)]).astype(np.uint32),
        )
