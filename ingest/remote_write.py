"""Prometheus remote-write 1.0 bodies: snappy-compressed protobuf ``WriteRequest`` into sample columns.

A series' ``histograms`` (native histograms, prompb's ``Histogram``) become the batch's histogram columns:
an integer histogram when ``count_int`` is the set member of its ``count`` oneof (bucket deltas, as
Prometheus's ``IsFloatHistogram``), else a float one (absolute counts), with its ``reset_hint``. A series with
a histogram that is not valid (spans and buckets that disagree, a schema outside -4..8) is left out and
reported as those with invalid labels are (reason ``invalid_histogram``).

Validation follows Prometheus's own receiver: a series whose labels are not valid (no or a bad metric
name, a bad or repeated label name) is left out and reported, and the valid series of the same request
are still ingested; the request then answers 400, which senders do not retry. (Invalid UTF-8 in a label
makes the protobuf decoder refuse the whole body, also a 400, where Prometheus drops only that series.) A series
over the receiver's label limits (as the scrape ``label_limit``, ``label_name_length_limit``,
``label_value_length_limit``) is left out and reported the same way.

Size comes first: the snappy block format starts with the decoded length (a uvarint), so a body whose
header declares more than the limit is refused (:class:`BodyTooLargeError`, HTTP 413) before a byte is
decoded, and the decoder never writes past what the header declared. :func:`decode` is CPU-bound (the
receiver runs it on a thread, off its event loop); error messages quote bounded excerpts only.
"""

from __future__ import annotations

from typing import NamedTuple

import cramjam
import numpy as np
from google.protobuf.message import DecodeError

from shardmon.model.errors import BodyTooLargeError, RemoteWriteError
from shardmon.model.histogram import Histogram, HistogramColumns
from shardmon.model.label_limits import LabelLimits, excerpt, show_series
from shardmon.model.labels import METRIC_NAME, Labels, is_valid_label_name, is_valid_metric_name, series_id_of
from shardmon.model.pb import remote_pb2
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch, SeriesTable

__all__ = ["BodyTooLargeError", "DecodedWrite", "RemoteWriteError", "decode", "decoded_length", "encode",
           "histogram_from_pb", "histogram_to_pb", "max_compressed_bytes"]

#: The compressed size no body may exceed, whatever the decoded limit.
MAX_BODY_BYTES = 64 << 20
#: ``receiver.max_decoded_body_bytes`` by default.
DEFAULT_MAX_DECODED_BYTES = 32 << 20
_MAX_REPORTED = 5
#: Why a series is left out: invalid labels, an invalid native histogram, or the label limit it exceeds.
INVALID_LABELS = "invalid_labels"
INVALID_HISTOGRAM = "invalid_histogram"


class DecodedWrite(NamedTuple):
    batch: SampleBatch
    series: int  # valid series
    invalid: list[str]  # what was wrong with (up to a few of) the series left out, bounded in length
    invalid_series: int  # series left out, for whatever reason
    refused: dict[str, int] = {}  # series left out by reason: "invalid_labels" or the limit's name
    refused_samples: int = 0  # their samples (floats and histograms)


def max_compressed_bytes(max_decoded_bytes: int) -> int:
    """The largest compressed body worth reading for ``max_decoded_bytes``: snappy's worst case for that
    many bytes (``32 + n + n/6``, its ``MaxEncodedLen``), and never more than :data:`MAX_BODY_BYTES`."""
    return min(MAX_BODY_BYTES, 32 + max_decoded_bytes + max_decoded_bytes // 6)


def decoded_length(body: bytes) -> int:
    """The decoded size a snappy block declares in its header, read without decoding anything."""
    try:
        return cramjam.snappy.decompress_raw_len(body)
    except Exception as exc:  # noqa: BLE001 - cramjam raises its own DecompressionError
        raise RemoteWriteError(f"snappy decode error: {exc}") from None


def check_size(body: bytes, max_decoded_bytes: int) -> int:
    """Refuse a body over the limits (compressed, then as its header declares); return the decoded size."""
    limit = max_compressed_bytes(max_decoded_bytes)
    if len(body) > limit:
        raise BodyTooLargeError(f"body of {len(body)} bytes exceeds the limit of {limit} bytes "
                                f"(receiver.max_decoded_body_bytes: {max_decoded_bytes})",
                                size=len(body), limit=limit, field="receiver.max_decoded_body_bytes", decoded=False)
    size = decoded_length(body)
    if size > max_decoded_bytes:
        raise BodyTooLargeError(f"body decodes to {size} bytes, over the limit of {max_decoded_bytes} bytes "
                                f"(receiver.max_decoded_body_bytes)",
                                size=size, limit=max_decoded_bytes, field="receiver.max_decoded_body_bytes",
                                decoded=True)
    return size


def _check(pairs: list[tuple[str, str]]) -> str | None:
    """Why a series' labels are invalid, or None."""
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        return "duplicate label names"
    name = ""
    for n, v in pairs:
        if n == METRIC_NAME:
            name = v
        elif not is_valid_label_name(n):
            return f"invalid label name {excerpt(n)!r}"
    if not is_valid_metric_name(name):
        return f"invalid metric name {excerpt(name)!r}"
    return None


def decode(body: bytes, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
           limits: LabelLimits = LabelLimits()) -> DecodedWrite:
    """Decode a remote-write body into one batch (raises :class:`RemoteWriteError`, of which
    :class:`BodyTooLargeError` before decoding anything)."""
    check_size(body, max_decoded_bytes)
    try:
        raw = cramjam.snappy.decompress_raw(body)
    except Exception as exc:  # noqa: BLE001 - cramjam raises its own DecompressionError
        raise RemoteWriteError(f"snappy decode error: {exc}") from None
    req = remote_pb2.WriteRequest()
    try:
        req.ParseFromString(memoryview(raw))
    except DecodeError as exc:
        raise RemoteWriteError(f"protobuf decode error: {exc}") from None
    del raw
    keys: list[bytes] = []
    counts: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    invalid: list[str] = []
    refused: dict[str, int] = {}
    refused_samples = 0
    h_refs: list[int] = []
    h_stamps: list[int] = []
    hists: list[Histogram] = []
    for ts in req.timeseries:
        pairs = [(lb.name, lb.value) for lb in ts.labels]
        why = _check(pairs)
        reason = INVALID_LABELS
        if why is not None:
            why = f"{why} in {show_series(pairs)}"
        else:
            over = limits.check(pairs)
            if over is not None:
                reason, why = over
        series_hists: list[Histogram] = []
        if why is None and ts.histograms:
            try:
                series_hists = [histogram_from_pb(hp) for hp in ts.histograms]
            except ValueError as exc:
                reason, why = INVALID_HISTOGRAM, f"invalid native histogram in {show_series(pairs)}: {exc}"
        if why is not None:
            refused[reason] = refused.get(reason, 0) + 1
            refused_samples += len(ts.samples) + len(ts.histograms)
            if len(invalid) < _MAX_REPORTED:
                invalid.append(why)
            continue
        samples = ts.samples
        if not samples and not series_hists:
            continue
        if series_hists:
            h_refs.extend([len(keys)] * len(series_hists))
            h_stamps.extend(hp.timestamp for hp in ts.histograms)
            hists.extend(series_hists)
        keys.append(Labels.from_pairs(pairs).canonical())
        counts.append(len(samples))
        values.extend(s.value for s in samples)
        stamps.extend(s.timestamp for s in samples)
    ids = np.fromiter((series_id_of(k) for k in keys), U64, len(keys))
    table = SeriesTable.from_keys(ids, keys)
    refs = np.repeat(np.arange(len(keys), dtype=U32), np.asarray(counts, dtype=np.int64))
    columns = HistogramColumns.of(h_refs, h_stamps, hists) if hists else None
    batch = SampleBatch(table, refs, np.asarray(stamps, dtype=I64), np.asarray(values, dtype=F64), columns)
    return DecodedWrite(batch, len(keys), invalid, sum(refused.values()), refused, refused_samples)


def histogram_from_pb(hp: remote_pb2.Histogram) -> Histogram:
    """A prompb ``Histogram`` as a :class:`Histogram` (``ValueError`` when it is not a valid one)."""
    pos_spans = [(s.offset, s.length) for s in hp.positive_spans]
    neg_spans = [(s.offset, s.length) for s in hp.negative_spans]
    if hp.WhichOneof("count") == "count_float":
        return Histogram(hp.schema, hp.zero_threshold, hp.zero_count_float, hp.count_float, hp.sum,
                         tuple(pos_spans), tuple(hp.positive_counts), tuple(neg_spans), tuple(hp.negative_counts),
                         int(hp.reset_hint), False)
    for side, spans, deltas in (("positive", pos_spans, hp.positive_deltas), ("negative", neg_spans, hp.negative_deltas)):
        n = sum(length for _, length in spans)
        if n != len(deltas):
            raise ValueError(f"histogram {side} spans specify {n} buckets but {len(deltas)} are given")
    return Histogram.from_deltas(schema=hp.schema, zero_threshold=hp.zero_threshold, zero_count=hp.zero_count_int,
                                 count=hp.count_int, sum=hp.sum, positive_spans=pos_spans,
                                 positive_deltas=list(hp.positive_deltas), negative_spans=neg_spans,
                                 negative_deltas=list(hp.negative_deltas), counter_reset_hint=int(hp.reset_hint))


def histogram_to_pb(h: Histogram, timestamp_ms: int) -> remote_pb2.Histogram:
    """A :class:`Histogram` as prompb's ``Histogram`` (deltas for an integer one, counts for a float one)."""
    hp = remote_pb2.Histogram(sum=h.sum, schema=h.schema, zero_threshold=h.zero_threshold,
                              reset_hint=h.counter_reset_hint, timestamp=timestamp_ms)
    for spans, field in ((h.positive_spans, hp.positive_spans), (h.negative_spans, hp.negative_spans)):
        for o, n in spans:
            field.add(offset=o, length=n)
    if h.is_int:
        hp.count_int, hp.zero_count_int = int(h.count), int(h.zero_count)
        hp.positive_deltas.extend(h.deltas(True))
        hp.negative_deltas.extend(h.deltas(False))
    else:
        hp.count_float, hp.zero_count_float = h.count, h.zero_count
        hp.positive_counts.extend(h.positive_buckets)
        hp.negative_counts.extend(h.negative_buckets)
    return hp


def encode(series: list[tuple]) -> bytes:
    """A remote-write body (for tests and tools): series as ``(labels, [(timestamp ms, value)...])``, or
    ``(labels, samples, [(timestamp ms, Histogram)...])`` with native histograms."""
    req = remote_pb2.WriteRequest()
    for labels, samples, *rest in series:
        ts = req.timeseries.add()
        for n, v in labels:
            ts.labels.add(name=n, value=v)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
        for t, h in (rest[0] if rest else ()):
            ts.histograms.append(histogram_to_pb(h, t))
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
