"""The protobuf exposition parser, as Prometheus 2.53's protobufparse.go reads a body: every metric type, native
integer and float histograms (negative buckets, the zero bucket, gaps in spans), classic and native together,
and bad input refused with an error naming the metric family."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.ingest.exposition import NO_TIMESTAMP, BodyError, SeriesCache, encode_delimited, parse_protobuf
from shardmon.ingest.exposition.protobuf import go_openmetrics_float
from shardmon.ingest.histogram_limits import fit_bucket_limit
from shardmon.model.histogram import GAUGE_TYPE, Histogram
from shardmon.model.histogram_buckets import compact_spans, reduce_resolution
from shardmon.model.pb import metrics_pb2 as pb


def family(name, kind, *metrics, help="", unit=""):
    return pb.MetricFamily(name=name, type=kind, help=help, unit=unit, metric=list(metrics))


def lp(**labels):
    return [pb.LabelPair(name=n, value=v) for n, v in labels.items()]


def parse(*families, cache=None, **kw):
    cache = SeriesCache() if cache is None else cache
    p = parse_protobuf(encode_delimited(families), cache, **kw)
    floats = [(dict(cache.labels[r]), v, t) for r, v, t in zip(p.refs.tolist(), p.values.tolist(), p.timestamps_ms.tolist())]
    hists = []
    if p.histograms is not None:
        h = p.histograms
        hists = [(dict(cache.labels[r]), t, x) for r, t, x in zip(h.refs.tolist(), h.timestamps_ms.tolist(), h.histograms)]
    return floats, hists, p


def native(**kw):
    return pb.Histogram(**kw)


def test_counters_gauges_untyped_and_summaries_are_the_text_formats_series():
    floats, hists, p = parse(
        family("reqs_total", pb.COUNTER, pb.Metric(label=lp(code="200"), counter=pb.Counter(value=3)), help="Requests."),
        family("temp", pb.GAUGE, pb.Metric(gauge=pb.Gauge(value=-1.5), timestamp_ms=1700000000000)),
        family("thing", pb.UNTYPED, pb.Metric(untyped=pb.Untyped(value=7))),
        family("rpc_seconds", pb.SUMMARY, pb.Metric(summary=pb.Summary(
            sample_count=4, sample_sum=2.5, quantile=[pb.Quantile(quantile=0.5, value=0.4),
                                                      pb.Quantile(quantile=0.99, value=1.2)]))),
    )
    assert floats == [
        ({"__name__": "reqs_total", "code": "200"}, 3.0, NO_TIMESTAMP),
        ({"__name__": "temp"}, -1.5, 1700000000000),
        ({"__name__": "thing"}, 7.0, NO_TIMESTAMP),
        ({"__name__": "rpc_seconds_count"}, 4.0, NO_TIMESTAMP),
        ({"__name__": "rpc_seconds_sum"}, 2.5, NO_TIMESTAMP),
        ({"__name__": "rpc_seconds", "quantile": "0.5"}, 0.4, NO_TIMESTAMP),
        ({"__name__": "rpc_seconds", "quantile": "0.99"}, 1.2, NO_TIMESTAMP),
    ]
    assert hists == []
    assert p.types == {"reqs_total": "counter", "temp": "gauge", "thing": "untyped", "rpc_seconds": "summary"}
    assert p.helps == {"reqs_total": "Requests."}


def test_a_classic_histogram_gets_its_inf_bucket_from_the_count():
    h = native(sample_count=5, sample_sum=9.0, bucket=[pb.Bucket(upper_bound=1, cumulative_count=2),
                                                      pb.Bucket(upper_bound=2.5, cumulative_count=4)])
    floats, hists, _ = parse(family("lat", pb.HISTOGRAM, pb.Metric(label=lp(a="x"), histogram=h)))
    assert hists == []
    assert [(d["__name__"], d.get("le"), v) for d, v, _ in floats] == [
        ("lat_count", None, 5.0), ("lat_sum", None, 9.0), ("lat_bucket", "1.0", 2.0), ("lat_bucket", "2.5", 4.0),
        ("lat_bucket", "+Inf", 5.0)]


def test_native_integer_histogram_with_negative_buckets_zero_bucket_and_span_gaps():
    h = native(sample_count=12, sample_sum=-3.5, schema=2, zero_threshold=0.001, zero_count=2,
               positive_span=[pb.BucketSpan(offset=-1, length=2), pb.BucketSpan(offset=3, length=1)],
               positive_delta=[1, 2, -2], negative_span=[pb.BucketSpan(offset=0, length=1)], negative_delta=[6])
    floats, hists, p = parse(family("v", pb.HISTOGRAM, pb.Metric(histogram=h, timestamp_ms=5)))
    assert floats == []
    assert hists == [({"__name__": "v"}, 5, Histogram(2, 0.001, 2.0, 12.0, -3.5, ((-1, 2), (3, 1)), (1.0, 3.0, 1.0),
                                                        ((0, 1),), (6.0,), 0, True))]
    assert p.types == {"v": "histogram"}


def test_native_float_histogram_and_a_gauge_histogram():
    fh = native(sample_count_float=3.5, sample_sum=1.0, schema=0, zero_count_float=0.5,
                positive_span=[pb.BucketSpan(offset=1, length=1)], positive_count=[3.0])
    gh = native(sample_count=1, sample_sum=1.0, schema=0, positive_span=[pb.BucketSpan(offset=0, length=1)],
                positive_delta=[1])
    _, hists, _ = parse(family("f", pb.HISTOGRAM, pb.Metric(histogram=fh)),
                        family("g", pb.GAUGE_HISTOGRAM, pb.Metric(histogram=gh)))
    (_, _, f), (_, _, g) = hists
    assert f == Histogram(0, 0.0, 0.5, 3.5, 1.0, ((1, 1),), (3.0,), counter_reset_hint=0, is_int=False)
    assert g.counter_reset_hint == GAUGE_TYPE and g.is_int


def test_empty_buckets_and_spans_are_compacted_as_prometheus():
    assert compact_spans([(0, 3), (2, 0), (1, 2)], [1, 0, 2, 0, 5]) == (((0, 1), (1, 1), (4, 1)), (1, 2, 5))
    h = native(sample_count=0, schema=3, positive_span=[pb.BucketSpan(offset=0, length=0)])
    _, ((_, _, x),), _ = parse(family("empty", pb.HISTOGRAM, pb.Metric(histogram=h)))
    assert x.positive_spans == () and x.count == 0  # the no-op span marks it native, then goes


def test_classic_and_native_together_follow_scrape_classic_histograms():
    h = native(sample_count=3, sample_sum=2.0, schema=0, zero_threshold=0.01,
               positive_span=[pb.BucketSpan(offset=1, length=1)], positive_delta=[3],
               bucket=[pb.Bucket(upper_bound=2, cumulative_count=3)])
    fam = family("both", pb.HISTOGRAM, pb.Metric(histogram=h))
    floats, hists, _ = parse(fam)
    assert floats == [] and len(hists) == 1
    floats, hists, _ = parse(fam, classic=True)
    assert [d["__name__"] for d, _, _ in floats] == ["both_count", "both_sum", "both_bucket", "both_bucket"]
    assert len(hists) == 1 and hists[0][0] == {"__name__": "both"}
    floats, hists, _ = parse(fam, native=False)  # native histograms off: the classic series only
    assert hists == [] and len(floats) == 4


def test_the_first_metric_decides_whether_a_family_is_native():
    classic_first = family("m", pb.HISTOGRAM, pb.Metric(label=lp(i="1"), histogram=native(sample_count=1)),
                           pb.Metric(label=lp(i="2"), histogram=native(sample_count=1, schema=0, zero_threshold=1e-3)))
    floats, hists, _ = parse(classic_first)
    assert hists == [] and {d["i"] for d, _, _ in floats} == {"1", "2"}


def test_series_are_cached_across_scrapes():
    cache = SeriesCache()
    fam = family("c_total", pb.COUNTER, pb.Metric(counter=pb.Counter(value=1)))
    _, _, p1 = parse(fam, cache=cache)
    _, _, p2 = parse(fam, cache=cache)
    assert p1.refs.tolist() == p2.refs.tolist() and len(cache) == 1


@pytest.mark.parametrize("body, message", [
    (b"\x05ab", "metric family 1 (byte 0): protobufparse: insufficient length of buffer, expected at least 6 bytes, "
                "got 3 bytes"),
    (b"\xff\xff\xff\xff\xff\xff", "metric family 1 (byte 0): protobufparse: invalid varint encountered"),
    (encode_delimited([family("bad-name", pb.GAUGE, pb.Metric(gauge=pb.Gauge(value=1)))]),
     "metric family 1 (byte 0): invalid metric name: bad-name"),
    (encode_delimited([family("ok", pb.GAUGE, pb.Metric(gauge=pb.Gauge(value=1))),
                       family("g", pb.GAUGE, pb.Metric(label=lp(**{"0x": "v"}), gauge=pb.Gauge(value=1)))]),
     "metric family 2 (byte 20): invalid label name: 0x"),
    (encode_delimited([family("size", pb.GAUGE, pb.Metric(gauge=pb.Gauge(value=1)), unit="bytes")]),
     "metric family 1 (byte 0): unit 'bytes' not a suffix of metric 'size'"),
    (encode_delimited([family("h", pb.HISTOGRAM, pb.Metric(histogram=native(
        schema=1, positive_span=[pb.BucketSpan(offset=0, length=2)], positive_delta=[1])))]),
     "metric family 1 (byte 0): invalid native histogram in h{}: histogram positive spans specify 2 "
     "buckets but 1 are given"),
    (encode_delimited([family("h", pb.HISTOGRAM, pb.Metric(histogram=native(
        schema=9, positive_span=[pb.BucketSpan(offset=0, length=1)], positive_delta=[1])))]),
     "metric family 1 (byte 0): invalid native histogram in h{}: histogram schema 9 outside [-4, 8]"),
])
def test_bad_input_is_refused_naming_the_family(body, message):
    cache = SeriesCache()
    with pytest.raises(BodyError) as info:
        parse_protobuf(body, cache)
    assert str(info.value) == message
    assert len(cache) == 0  # a refused body adds no series


def test_label_values_of_le_and_quantile_are_written_as_prometheus_writes_them():
    assert [go_openmetrics_float(x) for x in (1, 0, 0.25, 1e6, 123456.0, 2.5e-5, float("inf"))] == [
        "1.0", "0.0", "0.25", "1e+06", "123456.0", "2.5e-05", "+Inf"]


def test_bucket_limit_reduces_resolution_until_it_fits():
    h = Histogram(2, 0.0, 0.0, 10.0, 1.0, ((1, 4),), (1.0, 2.0, 3.0, 4.0), is_int=True)
    r = reduce_resolution(h, 1)
    assert r.schema == 1 and r.positive_spans == ((1, 2),) and r.positive_buckets == (3.0, 7.0)
    assert fit_bucket_limit(h, 4) is h
    assert fit_bucket_limit(h, 2) == r
    assert fit_bucket_limit(Histogram(-4, 0.0, 0.0, 2.0, 1.0, ((0, 2),), (1.0, 1.0)), 1) is None
    assert np.isclose(sum(r.positive_buckets), sum(h.positive_buckets))
