"""Chunk format 3: one series' floats *and* native histograms in one block (FORMAT.md, "Format 3").

A series with no histogram sample in a block keeps format 2 (:mod:`shardmon.shards.chunk`), byte for byte, so
float-only series pay nothing. Format 3 is a format 2 chunk of the series' floats (possibly empty) followed by
the histograms in columns, reusing format 2's int64 column and float value encodings:

- the timestamps, and one small integer per sample for its flags and schema;
- the zero threshold, zero count, count and sum each as a value block (decimal-scaled integers when they
  are, float64 bits otherwise; NaN sums, as exceptions);
- the distinct bucket layouts (spans of both sides) once each, and a layout number per sample;
- the bucket counts as one value block over the union of bucket indices seen in the chunk, bucket by bucket
  (a bucket's counts over time are contiguous, so a counter histogram's buckets take deltas of a scrape's
  increase); a bucket absent from a sample's layout repeats its previous count (0 before its first), a
  placeholder readers ignore.

Every field round-trips bit for bit (:func:`encode_series`, :func:`decode_series`), integer and float
histograms alike.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import zstandard

from shardmon.model.histogram import MIN_SCHEMA, Histogram, Spans
from shardmon.model.samples import F64, I64
from shardmon.shards import chunk
from shardmon.shards.chunk import (
    get_column,
    get_svarint,
    get_uvarint,
    get_values,
    put_column,
    put_svarint,
    put_uvarint,
    put_values,
)

FORMAT_WITH_HISTOGRAMS = 3
"""A format 2 chunk of the floats followed by the histograms in columns."""

_MAX_SPANS = 1 << 16  # per side, as the sample encoding allows (model/histogram.py)


def encode_series(ts: np.ndarray, vals: np.ndarray, hts: np.ndarray | None = None,
                  hists: Sequence[Histogram] = ()) -> bytes:
    """One series' chunk: format 2 when it has no histograms, else format 3. Timestamps strictly increasing
    within each kind."""
    floats = chunk.encode(ts, vals)
    if not len(hists):
        return floats
    hts = np.ascontiguousarray(hts, I64)
    h = hts.shape[0]
    if len(hists) != h:
        raise ValueError(f"{h} histogram timestamps but {len(hists)} histograms")
    out = bytearray((FORMAT_WITH_HISTOGRAMS,))
    put_uvarint(out, len(floats))
    out += floats
    put_uvarint(out, h)
    put_column(out, hts)
    put_column(out, np.fromiter(((int(x.is_int) | (x.counter_reset_hint & 3) << 1 | (x.schema - MIN_SCHEMA) << 3)
                                  for x in hists), I64, h))
    for field in ("zero_threshold", "zero_count", "count", "sum"):
        put_values(out, np.fromiter((getattr(x, field) for x in hists), F64, h))
    layouts: dict[tuple[Spans, Spans], int] = {}
    numbers = np.fromiter((layouts.setdefault((x.positive_spans, x.negative_spans), len(layouts)) for x in hists),
                          I64, h)
    put_uvarint(out, len(layouts))
    for pos_spans, neg_spans in layouts:
        put_uvarint(out, len(pos_spans))
        put_uvarint(out, len(neg_spans))
        for offset, length in (*pos_spans, *neg_spans):
            put_svarint(out, offset)
            put_uvarint(out, length)
    put_column(out, numbers)
    indices = [{key: _bucket_indices(key[side]) for key in layouts} for side in (0, 1)]
    unions = [np.unique(np.concatenate([np.empty(0, I64), *indices[side].values()])) for side in (0, 1)]
    for u in unions:
        put_uvarint(out, u.shape[0])
        if u.shape[0]:
            put_column(out, u)
    width = unions[0].shape[0] + unions[1].shape[0]
    if width:
        matrix = np.full((h, width), np.nan, F64)
        present = np.zeros((h, width), bool)
        for t, x in enumerate(hists):
            key = (x.positive_spans, x.negative_spans)
            for side, (u, buckets, base) in enumerate(((unions[0], x.positive_buckets, 0),
                                                       (unions[1], x.negative_buckets, unions[0].shape[0]))):
                if buckets:
                    cols = base + np.searchsorted(u, indices[side][key])
                    matrix[t, cols] = buckets
                    present[t, cols] = True
        # Placeholders: a bucket's previous count (0 before its first), so they add no deltas.
        rows = np.where(present, np.arange(h)[:, None], -1)
        np.maximum.accumulate(rows, axis=0, out=rows)
        filled = np.where(rows >= 0, matrix[np.maximum(rows, 0), np.arange(width)[None, :]], 0.0)
        put_values(out, np.ascontiguousarray(filled.T).reshape(-1), robust=True)
    return bytes(out)


def _bucket_indices(spans: Spans) -> np.ndarray:
    """The absolute bucket index of each bucket the spans cover, in order."""
    out: list[int] = []
    at = 0
    for i, (offset, length) in enumerate(spans):
        at = offset if i == 0 else at + offset
        out.extend(range(at, at + length))
        at += length
    return np.asarray(out, I64)


def decode_series(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Histogram]]:
    """Any chunk format: ``(timestamps, values, histogram timestamps, histograms)``; the last two empty for
    formats 1 and 2."""
    if not data:
        raise ValueError("empty chunk")
    if data[0] != FORMAT_WITH_HISTOGRAMS:
        ts, vals = chunk.decode(data)
        return ts, vals, np.empty(0, I64), []
    try:
        return _decode_v3(memoryview(data))
    except (IndexError, struct.error) as e:
        raise ValueError("chunk truncated") from e
    except zstandard.ZstdError as e:
        raise ValueError(f"corrupt chunk: {e}") from e


def _decode_v3(data: memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Histogram]]:
    size, pos = get_uvarint(data, 1)
    if pos + size > len(data):
        raise ValueError("chunk truncated")
    ts, vals = chunk.decode(bytes(data[pos:pos + size]))
    pos += size
    h, pos = get_uvarint(data, pos)
    if not 1 <= h <= chunk.MAX_SAMPLES:
        raise ValueError(f"chunk claims {h} histograms")
    hts, pos = get_column(data, pos, h)
    heads, pos = get_column(data, pos, h)
    fields = []
    for _ in range(4):
        v, pos = get_values(data, pos, h)
        fields.append(v.tolist())
    n_layouts, pos = get_uvarint(data, pos)
    if not 1 <= n_layouts <= h:
        raise ValueError(f"chunk claims {n_layouts} bucket layouts for {h} histograms")
    layouts: list[tuple[Spans, Spans]] = []
    for _ in range(n_layouts):
        sides = []
        counts = []
        for _side in range(2):
            c, pos = get_uvarint(data, pos)
            if c >= _MAX_SPANS:
                raise ValueError(f"chunk claims {c} spans")
            counts.append(c)
        for c in counts:
            spans = []
            for _ in range(c):
                offset, pos = get_svarint(data, pos)
                length, pos = get_uvarint(data, pos)
                spans.append((offset, length))
            sides.append(tuple(spans))
        layouts.append((sides[0], sides[1]))
    numbers, pos = get_column(data, pos, h)
    if numbers.min() < 0 or numbers.max() >= n_layouts:
        raise ValueError("histogram layout number out of range")
    unions = []
    for _ in range(2):
        n, pos = get_uvarint(data, pos)
        if n > chunk.MAX_SAMPLES:
            raise ValueError(f"chunk claims {n} buckets")
        if n:
            u, pos = get_column(data, pos, n)
        else:
            u = np.empty(0, I64)
        unions.append(u)
    width = unions[0].shape[0] + unions[1].shape[0]
    matrix = np.empty((h, 0), F64)
    if width:
        flat, pos = get_values(data, pos, h * width)
        matrix = flat.reshape(width, h).T
    if pos != len(data):
        raise ValueError("trailing bytes after chunk")
    cols: list[tuple[np.ndarray, np.ndarray]] = []
    for pos_spans, neg_spans in layouts:
        pc = np.searchsorted(unions[0], _bucket_indices(pos_spans))
        nc = unions[0].shape[0] + np.searchsorted(unions[1], _bucket_indices(neg_spans))
        if (pc.shape[0] and pc.max() >= unions[0].shape[0]) or (nc.shape[0] and nc.max() >= width):
            raise ValueError("a bucket layout names buckets the chunk does not hold")
        cols.append((pc, nc))
    zt, zc, count, total = fields
    out = []
    for t, (head, n) in enumerate(zip(heads.tolist(), numbers.tolist())):
        pos_spans, neg_spans = layouts[n]
        pc, nc = cols[n]
        row = matrix[t]
        out.append(Histogram(int(head >> 3) + MIN_SCHEMA, zt[t], zc[t], count[t], total[t],
                             pos_spans, tuple(row[pc].tolist()), neg_spans, tuple(row[nc].tolist()),
                             (head >> 1) & 3, bool(head & 1)))
    return ts, vals, hts, out
