"""``native_histogram_bucket_limit`` as Prometheus 2.53 applies it to a scraped native histogram: while the
histogram has more buckets than the limit, its resolution is halved (schema minus one: each pair of
neighbouring buckets becomes one, Prometheus's ``ReduceResolution``,
:func:`shardmon.model.histogram_buckets.reduce_resolution`); one that still has too many at schema -4 fails
the scrape (``histogram bucket limit exceeded``)."""

from __future__ import annotations

from shardmon.model.histogram import MIN_SCHEMA, Histogram
from shardmon.model.histogram_buckets import bucket_count, reduce_resolution

#: Prometheus's error for a histogram that cannot be made to fit (errBucketLimit).
BUCKET_LIMIT_ERROR = "histogram bucket limit exceeded"


def fit_bucket_limit(h: Histogram, limit: int) -> Histogram | None:
    """``h`` reduced in resolution until it has at most ``limit`` buckets (``h`` itself when it fits; None
    when it cannot)."""
    while bucket_count(h) > limit:
        if h.schema <= MIN_SCHEMA:
            return None
        h = reduce_resolution(h, h.schema - 1)
    return h
