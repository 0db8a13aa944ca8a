"""The structural operations on a native histogram's buckets, once for every user (PromQL's arithmetic, the
test scripts' notation, the scrape's bucket limit and the protobuf exposition format):

- :func:`reduce_buckets` / :func:`reduce_resolution`: a lower schema, as Prometheus's ``reduceResolution`` /
  ``ReduceResolution`` (bucket ``i`` of schema ``s`` goes to ``((i - 1) >> (s - t)) + 1`` of schema ``t``,
  counts of the buckets that meet there added; empty buckets stay, as there).
- :func:`compact_spans` / :func:`compact`: Prometheus's ``Compact(0)``: every bucket of count zero dropped,
  empty spans removed, adjacent spans merged (a NaN count is kept).
- :func:`bucket_count`: the number of buckets on both sides (what ``native_histogram_bucket_limit`` counts).

A side as ``{bucket index: count}`` and back is :func:`~shardmon.model.histogram.bucket_map` /
:func:`~shardmon.model.histogram.spans_of`. Every function returns a new histogram; the counter reset hint
and the integer/float kind are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shardmon.model.histogram import Histogram, Spans, bucket_map, spans_of


def reduce_buckets(buckets: Mapping[int, float], from_schema: int, to_schema: int) -> dict[int, float]:
    """One side's ``{index: count}`` at the lower ``to_schema`` (ascending in, ascending out)."""
    if from_schema == to_schema:
        return dict(buckets)
    shift = from_schema - to_schema
    out: dict[int, float] = {}
    for idx, c in buckets.items():
        t = ((idx - 1) >> shift) + 1
        out[t] = out.get(t, 0.0) + c
    return out


def reduce_resolution(h: Histogram, schema: int) -> Histogram:
    """``h`` at the lower ``schema`` (Prometheus's ``ReduceResolution``)."""
    pos = spans_of(reduce_buckets(bucket_map(h.positive_spans, h.positive_buckets), h.schema, schema))
    neg = spans_of(reduce_buckets(bucket_map(h.negative_spans, h.negative_buckets), h.schema, schema))
    return Histogram(schema, h.zero_threshold, h.zero_count, h.count, h.sum, pos[0], pos[1], neg[0], neg[1],
                     h.counter_reset_hint, h.is_int)


def compact_spans(spans: Spans | Sequence[tuple[int, int]], counts: Sequence[float]) -> tuple[Spans, tuple[float, ...]]:
    """``Compact(0)`` of one side: its spans and counts without the empty buckets."""
    return spans_of({i: c for i, c in bucket_map(spans, counts).items() if c != 0})


def compact(h: Histogram) -> Histogram:
    """``h`` without empty buckets, its spans as few as that allows (Prometheus's ``Compact(0)``)."""
    pos = compact_spans(h.positive_spans, h.positive_buckets)
    neg = compact_spans(h.negative_spans, h.negative_buckets)
    return Histogram(h.schema, h.zero_threshold, h.zero_count, h.count, h.sum, pos[0], pos[1], neg[0], neg[1],
                     h.counter_reset_hint, h.is_int)


def bucket_count(h: Histogram) -> int:
    """The buckets of ``h``, positive and negative (the zero bucket aside)."""
    return len(h.positive_buckets) + len(h.negative_buckets)


__all__ = ["bucket_count", "compact", "compact_spans", "reduce_buckets", "reduce_resolution"]
