"""``native_histogram_bucket_limit`` as Prometheus 2.53 applies it to a scraped native histogram: while the
histogram has more buckets than the limit, its resolution is halved (schema minus one: each pair of
neighbouring buckets becomes one, Prometheus's ``ReduceResolution``); one that still has too many at
schema -4 fails the scrape (``histogram bucket limit exceeded``)."""

from __future__ import annotations

from shardmon.model.histogram import MIN_SCHEMA, Histogram

#: Prometheus's error for a histogram that cannot be made to fit (errBucketLimit).
BUCKET_LIMIT_ERROR = "histogram bucket limit exceeded"


def n_buckets(h: Histogram) -> int:
    return len(h.positive_buckets) + len(h.negative_buckets)


def fit_bucket_limit(h: Histogram, limit: int) -> Histogram | None:
    """``h`` reduced in resolution until it has at most ``limit`` buckets (``h`` itself when it fits; None
    when it cannot)."""
    while n_buckets(h) > limit:
        if h.schema <= MIN_SCHEMA:
            return None
        h = reduce_resolution(h, h.schema - 1)
    return h


def reduce_resolution(h: Histogram, schema: int) -> Histogram:
    """``h`` at the lower ``schema``: bucket ``i`` goes to ``((i - 1) >> (h.schema - schema)) + 1``, counts added."""
    shift = h.schema - schema
    pos_spans, pos = _reduce(h.positive_spans, h.positive_buckets, shift)
    neg_spans, neg = _reduce(h.negative_spans, h.negative_buckets, shift)
    return Histogram(schema, h.zero_threshold, h.zero_count, h.count, h.sum, pos_spans, pos, neg_spans, neg,
                     h.counter_reset_hint, h.is_int)


def _reduce(spans, counts, shift: int):
    merged: dict[int, float] = {}
    index, k = 0, 0
    for offset, length in spans:
        index += offset
        for _ in range(length):
            target = ((index - 1) >> shift) + 1
            merged[target] = merged.get(target, 0.0) + counts[k]
            k += 1
            index += 1
    out_spans: list[list[int]] = []
    last = None
    for i in sorted(merged):
        if last is not None and i == last + 1:
            out_spans[-1][1] += 1
        else:
            out_spans.append([i - (last + 1 if last is not None else 0), 1])
        last = i
    return tuple((o, n) for o, n in out_spans), tuple(merged[i] for i in sorted(merged))
