"""The Prometheus protobuf exposition format: a body of length-delimited ``io.prometheus.client.MetricFamily``
messages (``application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited``)
to sample columns, as Prometheus 2.53's ``model/textparse/protobufparse.go`` reads it.

- Counters, gauges and untyped metrics are one series each, named after the family. Summaries are
  ``<name>_count``, ``<name>_sum`` and ``<name>{quantile="q"}``; classic histograms ``<name>_count``,
  ``<name>_sum`` and ``<name>_bucket{le="b"}`` with a ``+Inf`` bucket of the count when the target left it
  out: the series the text format gives. Label values of ``le``/``quantile`` are written as
  Prometheus writes them (``formatOpenMetricsFloat``: ``1.0``, ``0.25``, ``+Inf``).
- A histogram family is *native* when its first metric's histogram has a span, a zero threshold or a
  zero count (Prometheus's ``isNativeHistogram``); then each of its metrics is one histogram sample of
  the series named after the family (no suffix): an integer histogram from the bucket deltas, or a
  float histogram when ``sample_count_float`` or ``zero_count_float`` is positive; a gauge histogram
  carries the ``GAUGE_TYPE`` hint; empty buckets are compacted away (Prometheus's ``Compact(0)``,
  :func:`shardmon.model.histogram_buckets.compact_spans`). With
  ``classic`` (``scrape_classic_histograms``) its classic series are kept as well, when it has classic
  buckets. A family that is not native stays classic. With ``native`` off (Shardmon's
  ``ingest.native_histograms``, Prometheus's feature flag) every histogram is read as classic only.
- A ``timestamp_ms`` of 0 means none (as in Prometheus). Exemplars and created timestamps are ignored:
  no ``_created`` series come from this format.

Series texts for the per-target :class:`~.body.SeriesCache` are the name and label pairs as exposed,
joined by 0xff; a known one costs a dict lookup. Errors (:class:`~.body.BodyError`) name the metric family
(1-based) and its byte offset, with Prometheus's wording where it has one.
"""

from __future__ import annotations

import math

import numpy as np
from google.protobuf.message import DecodeError

from shardmon.ingest.exposition.body import BodyError, ParsedHistograms, ParsedScrape, SeriesCache
from shardmon.ingest.exposition.tokens import NO_TIMESTAMP
from shardmon.model.gotemplate.gofmt import format_float
from shardmon.model.histogram import GAUGE_TYPE, Histogram
from shardmon.model.histogram_buckets import compact_spans
from shardmon.model.label_limits import show_series
from shardmon.model.labels import METRIC_NAME, Labels, is_valid_label_name, is_valid_metric_name
from shardmon.model.pb import metrics_pb2

MEDIA_TYPE = "application/vnd.google.protobuf"
_T = metrics_pb2
_TYPES = {_T.COUNTER: "counter", _T.GAUGE: "gauge", _T.SUMMARY: "summary", _T.UNTYPED: "untyped",
          _T.HISTOGRAM: "histogram", _T.GAUGE_HISTOGRAM: "gaugehistogram"}
_SEP = "\xff"


def parse_protobuf(body: bytes, cache: SeriesCache, *, native: bool = True, classic: bool = False) -> ParsedScrape:
    """Parse a protobuf body, resolving series through (and adding new ones to) ``cache``.

    Raises :class:`BodyError` for the first bad metric family; no series is then added to the cache.
    """
    return _Parser(body, cache, native, classic).run()


def encode_delimited(families) -> bytes:
    """A protobuf body: each ``MetricFamily`` preceded by its length as a uvarint (for tests and tools)."""
    out = bytearray()
    for mf in families:
        data = mf.SerializeToString()
        n = len(data)
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        out += data
    return bytes(out)


def go_openmetrics_float(f: float) -> str:
    """Prometheus's ``formatOpenMetricsFloat``: Go's ``%v`` with ``.0`` added to an integral number."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    s = format_float(f, "g", -1)
    return s if ("e" in s or "." in s) else s + ".0"


def is_native(h: metrics_pb2.Histogram) -> bool:
    """Prometheus's ``isNativeHistogram``: any span, a zero threshold or a zero count."""
    return bool(h.positive_span or h.negative_span or h.zero_threshold > 0 or h.zero_count > 0)


def native_histogram(h: metrics_pb2.Histogram, gauge: bool) -> Histogram:
    """The native histogram of a ``Histogram`` message, compacted; ``ValueError`` when it is not one."""
    pos_spans = [(s.offset, s.length) for s in h.positive_span]
    neg_spans = [(s.offset, s.length) for s in h.negative_span]
    hint = GAUGE_TYPE if gauge else 0
    if h.sample_count_float > 0 or h.zero_count_float > 0:
        pos, neg = list(h.positive_count), list(h.negative_count)
        is_int = False
        count, zero = h.sample_count_float, h.zero_count_float
    else:
        _check_lengths(pos_spans, h.positive_delta, "positive")
        _check_lengths(neg_spans, h.negative_delta, "negative")
        pos = np.cumsum(np.asarray(h.positive_delta, np.int64)).astype(np.float64).tolist()
        neg = np.cumsum(np.asarray(h.negative_delta, np.int64)).astype(np.float64).tolist()
        is_int = True
        count, zero = float(h.sample_count), float(h.zero_count)
    _check_lengths(pos_spans, pos, "positive")
    _check_lengths(neg_spans, neg, "negative")
    pos_spans, pos = compact_spans(pos_spans, pos)
    neg_spans, neg = compact_spans(neg_spans, neg)
    return Histogram(h.schema, h.zero_threshold, zero, count, h.sample_sum, pos_spans, pos, neg_spans, neg, hint,
                     is_int)


def _check_lengths(spans: list[tuple[int, int]], buckets, side: str) -> None:
    n = sum(length for _, length in spans)
    if n != len(buckets):
        raise ValueError(f"histogram {side} spans specify {n} buckets but {len(buckets)} are given")
    for i, (offset, _) in enumerate(spans):
        if i and offset < 0:
            raise ValueError(f"histogram {side} span {i} has a negative offset {offset}")


class _Parser:
    def __init__(self, body: bytes, cache: SeriesCache, native: bool, classic: bool) -> None:
        self.body, self.cache, self.native, self.classic = body, cache, native, classic
        self.keys: list[bytes] = []  # float samples' series texts
        self.values: list[float] = []
        self.stamps: list[int] = []
        self.h_keys: list[bytes] = []
        self.h_stamps: list[int] = []
        self.hists: list[Histogram] = []
        self.new: dict[bytes, Labels] = {}
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.family = 0
        self.offset = 0

    def run(self) -> ParsedScrape:
        body, pos, mf = self.body, 0, metrics_pb2.MetricFamily()
        while pos < len(body):
            self.family += 1
            self.offset = pos
            length, width = _uvarint(body, pos)
            if width == 0 or width > 5:
                raise self.error("protobufparse: invalid varint encountered")
            end = pos + width + length
            if end > len(body):
                raise self.error(f"protobufparse: insufficient length of buffer, expected at least "
                                 f"{width + length} bytes, got {len(body) - pos} bytes")
            try:
                mf.ParseFromString(body[pos + width:end])
            except DecodeError as exc:
                raise self.error(f"protobuf decode error: {exc}") from None
            pos = end
            if mf.metric:
                self.family_samples(mf)
        keys = self.keys + self.h_keys
        refs = self.cache.index_keys(keys, self.new)
        n = len(self.keys)
        hists = None
        if self.hists:
            hists = ParsedHistograms(refs[n:], np.asarray(self.h_stamps, np.int64), self.hists)
        return ParsedScrape(refs[:n], np.asarray(self.values, np.float64), np.asarray(self.stamps, np.int64),
                            self.types, self.helps, self.units, hists)

    def error(self, message: str) -> BodyError:
        known = [r for r in map(self.cache.index_of, self.keys + self.h_keys) if r is not None]
        seen = len(self.keys) + len(self.h_keys)
        return BodyError(message, self.family, samples=seen, refs_before=np.asarray(known, np.int64),
                         new_samples=seen - len(known), new_keys=tuple(self.new),
                         where=f"metric family {self.family} (byte {self.offset})")

    def family_samples(self, mf: metrics_pb2.MetricFamily) -> None:
        name = mf.name
        if not is_valid_metric_name(name):
            raise self.error(f"invalid metric name: {name}")
        kind = mf.type
        if kind not in _TYPES:
            raise self.error(f"unknown metric type for metric {name!r}: {kind}")
        unit = mf.unit
        if unit:
            base = name[:-6] if kind == _T.COUNTER and name.endswith("_total") else name
            if not base.endswith("_" + unit):
                what = "counter" if base is not name else "metric"
                raise self.error(f"unit {unit!r} not a suffix of {what} {name!r}")
            self.units[name] = unit
        self.types[name] = _TYPES[kind]
        if mf.help:
            self.helps[name] = mf.help
        histogram = kind in (_T.HISTOGRAM, _T.GAUGE_HISTOGRAM)
        native = histogram and self.native and is_native(mf.metric[0].histogram)
        add = self.add
        for m in mf.metric:
            pairs = [(lp.name, lp.value) for lp in m.label]
            ts = m.timestamp_ms or NO_TIMESTAMP
            if kind == _T.COUNTER:
                add(name, pairs, m.counter.value, ts)
            elif kind == _T.GAUGE:
                add(name, pairs, m.gauge.value, ts)
            elif kind == _T.UNTYPED:
                add(name, pairs, m.untyped.value, ts)
            elif kind == _T.SUMMARY:
                s = m.summary
                add(name + "_count", pairs, float(s.sample_count), ts)
                add(name + "_sum", pairs, s.sample_sum, ts)
                for q in s.quantile:
                    add(name, pairs + [("quantile", go_openmetrics_float(q.quantile))], q.value, ts)
            else:
                h = m.histogram
                if native:
                    self.add_histogram(name, pairs, h, kind == _T.GAUGE_HISTOGRAM, ts)
                if not native or (self.classic and h.bucket):
                    self.add_classic(name, pairs, h, ts)

    def add_classic(self, name: str, pairs: list[tuple[str, str]], h: metrics_pb2.Histogram, ts: int) -> None:
        count = h.sample_count_float or float(h.sample_count)
        self.add(name + "_count", pairs, count, ts)
        self.add(name + "_sum", pairs, h.sample_sum, ts)
        inf = False
        for b in h.bucket:
            inf = math.isinf(b.upper_bound) and b.upper_bound > 0
            self.add(name + "_bucket", pairs + [("le", go_openmetrics_float(b.upper_bound))],
                     b.cumulative_count_float or float(b.cumulative_count), ts)
            if inf:
                break
        if not inf:
            self.add(name + "_bucket", pairs + [("le", "+Inf")], count, ts)

    def key(self, name: str, pairs: list[tuple[str, str]]) -> bytes:
        key = _SEP.join([name, *(x for p in pairs for x in p)]).encode()
        if self.cache.index_of(key) is None and key not in self.new:
            for n, _ in pairs:
                if not is_valid_label_name(n) or n == METRIC_NAME:
                    raise self.error(f"invalid label name: {n}")
            if len({n for n, _ in pairs}) != len(pairs):
                dup = next(n for i, (n, _) in enumerate(pairs) if any(n == m for m, _ in pairs[:i]))
                raise self.error(f"label name {dup!r} is not unique in a metric of {name!r}")
            self.new[key] = Labels.from_pairs([(METRIC_NAME, name), *pairs])
        return key

    def add(self, name: str, pairs: list[tuple[str, str]], value: float, ts: int) -> None:
        self.keys.append(self.key(name, pairs))
        self.values.append(value)
        self.stamps.append(ts)

    def add_histogram(self, name: str, pairs: list[tuple[str, str]], h: metrics_pb2.Histogram, gauge: bool,
                      ts: int) -> None:
        key = self.key(name, pairs)
        try:
            hist = native_histogram(h, gauge)
        except ValueError as exc:
            raise self.error(f"invalid native histogram in {show_series([(METRIC_NAME, name), *pairs])}: "
                             f"{exc}") from None
        self.h_keys.append(key)
        self.h_stamps.append(ts)
        self.hists.append(hist)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """A uvarint at ``pos``: (value, bytes read), bytes read 0 when it does not end within 10 bytes."""
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        b = data[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i - pos + 1
        shift += 7
    return 0, 0
