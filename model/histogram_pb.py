"""Native histograms in the gRPC Query API's messages: a :class:`~shardmon.model.histogram.Histogram` as the
``shardmon.v1.Histogram`` message and back, and a result series' points split into the message's float
columns and its ``histograms`` list (and merged back).

A result series (``ResultSeries`` of the querier's engine) holds its points in time order with an optional
object array ``histograms`` beside ``values`` (a Histogram where the point is one, its value a NaN
placeholder). On the wire the float points stay the packed ``timestamps_ms``/``values`` columns (a float-only
series is encoded exactly as before histograms existed, at the same cost) and the histogram points are
``HistogramPoint`` messages (timestamp and histogram), as the HTTP API's ``values`` and ``histograms``.
"""

from __future__ import annotations

import numpy as np

from shardmon.model.histogram import Histogram
from shardmon.model.pb import query_pb2
from shardmon.model.samples import F64, I64


def histogram_to_pb(h: Histogram) -> query_pb2.Histogram:
    """``h`` as the ``Histogram`` message: every field, bucket counts absolute."""
    return query_pb2.Histogram(
        schema=h.schema, zero_threshold=h.zero_threshold, zero_count=h.zero_count, count=h.count, sum=h.sum,
        positive_spans=[query_pb2.BucketSpan(offset=o, length=n) for o, n in h.positive_spans],
        positive_buckets=h.positive_buckets,
        negative_spans=[query_pb2.BucketSpan(offset=o, length=n) for o, n in h.negative_spans],
        negative_buckets=h.negative_buckets,
        counter_reset_hint=h.counter_reset_hint, is_int=h.is_int,
    )


def histogram_of_pb(m: query_pb2.Histogram) -> Histogram:
    """The :class:`Histogram` a ``Histogram`` message holds; ``ValueError`` when its spans and buckets disagree
    or its schema is outside Prometheus's range."""
    return Histogram(
        m.schema, m.zero_threshold, m.zero_count, m.count, m.sum,
        tuple((s.offset, s.length) for s in m.positive_spans), tuple(m.positive_buckets),
        tuple((s.offset, s.length) for s in m.negative_spans), tuple(m.negative_buckets),
        int(m.counter_reset_hint), m.is_int,
    )


def split_points(timestamps_ms: np.ndarray, values: np.ndarray, histograms: np.ndarray | None
                 ) -> tuple[bytes, bytes, list[query_pb2.HistogramPoint]]:
    """A series' points as the message's fields: the float points' packed timestamps and values, and the
    histogram points (none, and no per-point work, when ``histograms`` is None)."""
    if histograms is None:
        return (np.ascontiguousarray(timestamps_ms, I64).tobytes(), np.ascontiguousarray(values, F64).tobytes(), [])
    is_hist = np.fromiter((h is not None for h in histograms), dtype=bool, count=len(histograms))
    ts = np.asarray(timestamps_ms, I64)
    points = [query_pb2.HistogramPoint(timestamp_ms=t, histogram=histogram_to_pb(h))
              for t, h in zip(ts[is_hist].tolist(), histograms[is_hist].tolist())]
    return (np.ascontiguousarray(ts[~is_hist]).tobytes(),
            np.ascontiguousarray(np.asarray(values, F64)[~is_hist]).tobytes(), points)


def merge_points(timestamps_ms: bytes, values: bytes, points) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The inverse of :func:`split_points`: the series' points in time order (a histogram point's value NaN)
    and the object array of histograms (None when there are none)."""
    ts = np.frombuffer(timestamps_ms, I64)
    vals = np.frombuffer(values, F64)
    if not points:
        return ts, vals, None
    h_ts = np.fromiter((p.timestamp_ms for p in points), dtype=np.int64, count=len(points))
    all_ts = np.concatenate((ts, h_ts))
    order = np.argsort(all_ts, kind="stable")
    all_vals = np.concatenate((vals, np.full(len(points), np.nan)))
    hists = np.empty(all_ts.shape[0], dtype=object)
    hists[ts.shape[0]:] = [histogram_of_pb(p.histogram) for p in points]
    return all_ts[order], all_vals[order], hists[order]
