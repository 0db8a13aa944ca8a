"""Native histograms end to end, against a real Prometheus.

One real target (tests/native_hist_target.py) exposes native histograms in the protobuf format. A Shardmon
cluster (3 shards, Ray scrapers, the receiver, the querier) scrapes it as job ``direct``; Debian's Prometheus
2.42 with ``--enable-feature=native-histograms`` scrapes it as job ``via-prometheus`` and remote-writes what it
scraped to Shardmon's receiver. Then, through the HTTP API as a user would look:

- every histogram Shardmon stored from its own scrapes is one the target exposed, bucket for bucket;
- what Prometheus remote-wrote equals what Prometheus itself stored, bucket for bucket (raw samples of
  ``x[1m]`` from both APIs);
- ``rate``, ``histogram_quantile``, ``histogram_count``/``_sum``/``_fraction`` of those samples agree between
  Shardmon and Prometheus, instant and range queries.

Prometheus 2.42 does not ingest float histograms from a scrape, so ``test_float_ratio`` is compared only for the
direct path.
"""

from __future__ import annotations

import math
import time

import pytest
import yaml

from shardmon.model.labels import Labels
from shardmon.querier.result_json import histogram_json
from tests.integration.httpapi import get_json
from tests.integration.procs import Cluster, free_port, prometheus_proc, wait_until
from tests.native_hist_target import NativeHistogramTarget

NATIVE = ("test_latency_seconds", "test_signed_value")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("native-e2e")
    target = NativeHistogramTarget().start()
    cluster = Cluster(
        tmp, n_shards=3,
        scrape_configs=[{"job_name": "direct", "scrape_interval": "1s", "scrape_timeout": "1s",
                         "static_configs": [{"targets": [target.address]}]}],
        ingest={"native_histograms": True, "self_monitoring": False}, receiver={},
    ).start()
    ingest = cluster.ingest()
    prom_port = free_port()
    prom_cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "via-prometheus", "static_configs": [{"targets": [target.address]}]}],
        "remote_write": [{
            "url": f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write",
            "send_native_histograms": True,
            "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
    prom = prometheus_proc("prometheus", tmp / "prometheus.yml", tmp / "prom-data", prom_port, tmp,
                           "--log.level=warn", "--enable-feature=native-histograms").start()
    shardmon = f"http://127.0.0.1:{cluster.http_port}"
    prometheus = f"http://127.0.0.1:{prom_port}"
    try:
        ingest.up(120)
        for base, job in ((shardmon, "direct"), (shardmon, "via-prometheus"), (prometheus, "via-prometheus")):
            wait_until(lambda b=base, j=job: max(map(len, _raw(b, f'test_latency_seconds{{job="{j}"}}[1m]',
                                                             time.time()).values()), default=0) >= 8,
                       90, f"8 histograms of job {job} in {base}")
        yield target, shardmon, prometheus
    finally:
        prom.stop(30)
        ingest.stop()
        cluster.stop()
        target.stop()


def _key(name: str, job: str, **extra: str) -> Labels:
    labels = {"__name__": name, "job": job, "instance": "", **extra}
    return Labels.from_dict(labels)


def _query(base: str, expr: str, at: float) -> dict:
    body = get_json(f"{base}/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, timeout=30)
    assert body["status"] == "success", body
    return body["data"]


def _strip_instance(metric: dict) -> Labels:
    return Labels.from_dict({**metric, "instance": ""})


def _raw(base: str, expr: str, at: float) -> dict[Labels, list[tuple[int, dict]]]:
    """``expr`` (a range selector) at ``at``: each series' histogram points as (ms, JSON object)."""
    data = _query(base, expr, at)
    assert data["resultType"] == "matrix", data
    return {_strip_instance(r["metric"]): [(round(float(t) * 1000), h) for t, h in r.get("histograms", [])]
            for r in data["result"]}


def _numbers(h: dict) -> tuple:
    """A histogram's JSON as numbers (Prometheus 2.42 and Shardmon may spell a float differently)."""
    return (float(h["count"]), float(h["sum"]),
            tuple((b[0], float(b[1]), float(b[2]), float(b[3])) for b in h.get("buckets", [])))


def _close(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _close_numbers(a: tuple, b: tuple) -> bool:
    if len(a[2]) != len(b[2]):
        return False
    pairs = [(a[0], b[0]), (a[1], b[1])] + [(x, y) for ba, bb in zip(a[2], b[2]) for x, y in zip(ba[1:], bb[1:])]
    return all(ba[0] == bb[0] for ba, bb in zip(a[2], b[2])) and all(_close(x, y) for x, y in pairs)


def test_histograms_scraped_by_shardmon_are_those_the_target_exposed(setup):
    target, shardmon, _ = setup
    at = time.time()
    exposed = {name: {histogram_json(s[name]) for s in target.snapshots} for name in (*NATIVE, "test_float_ratio")}
    for name in (*NATIVE, "test_float_ratio"):
        raw = _raw(shardmon, f'{name}{{job="direct"}}[1m]', at)
        labels = {"path": "/api"} if name == "test_latency_seconds" else {}
        points = raw[_key(name, "direct", **labels)]
        assert len(points) >= 8, (name, points)
        for _, h in points:
            # Compared as the API writes them: same count, sum and every bucket (bounds and count).
            assert _canonical(h) in exposed[name], (name, h)
        counts = [float(h["count"]) for _, h in points]
        assert counts == sorted(counts) and len(set(counts)) == len(counts), counts  # one scrape, one sample


def _canonical(h: dict) -> str:
    import json

    return json.dumps(h, separators=(",", ":"))


def test_remote_written_histograms_equal_prometheus_own_bucket_for_bucket(setup):
    _, shardmon, prometheus = setup
    time.sleep(3)
    at = time.time() - 3  # leave remote write time to deliver what Prometheus scraped before `at`
    for name in NATIVE:
        expr = f'{name}{{job="via-prometheus"}}[1m]'
        in_prom, in_shardmon = _raw(prometheus, expr, at), _raw(shardmon, expr, at)
        assert in_prom and set(in_shardmon) == set(in_prom), (name, in_prom.keys(), in_shardmon.keys())
        for labels, points in in_prom.items():
            got = in_shardmon[labels]
            assert len(points) >= 8 and [t for t, _ in got] == [t for t, _ in points], (name, labels)
            for (t, want), (_, have) in zip(points, got):
                assert _numbers(have) == _numbers(want), (name, t, have, want)


QUERIES = [
    'rate(test_latency_seconds{job="via-prometheus"}[10s])',
    'histogram_quantile(0.9, rate(test_latency_seconds{job="via-prometheus"}[10s]))',
    'histogram_quantile(0.5, rate(test_latency_seconds{job="via-prometheus"}[10s]))',
    'histogram_quantile(0.2, test_signed_value{job="via-prometheus"})',
    'histogram_count(rate(test_latency_seconds{job="via-prometheus"}[10s]))',
    'histogram_sum(rate(test_latency_seconds{job="via-prometheus"}[10s]))',
    'histogram_fraction(0, 0.1, test_latency_seconds{job="via-prometheus"})',
    'sum by (job) (rate(test_latency_seconds{job="via-prometheus"}[10s]))',
    'increase(test_signed_value{job="via-prometheus"}[10s])',
]


def _results(base: str, expr: str, at: float) -> dict[Labels, tuple]:
    data = _query(base, expr, at)
    out = {}
    for r in data["result"]:
        if "histogram" in r:
            out[_strip_instance(r["metric"])] = ("h", _numbers(r["histogram"][1]))
        else:
            out[_strip_instance(r["metric"])] = ("f", float(r["value"][1]))
    return out


def test_rate_and_histogram_quantile_agree_with_prometheus(setup):
    _, shardmon, prometheus = setup
    at = time.time() - 4
    # Evaluate at a time between scrapes of both: the raw samples are equal (the test above), so are the results.
    for expr in QUERIES:
        want, got = _results(prometheus, expr, at), _results(shardmon, expr, at)
        assert want and set(got) == set(want), (expr, want, got)
        for labels, (kind, value) in want.items():
            assert got[labels][0] == kind, (expr, labels, got[labels], value)
            if kind == "h":
                assert _close_numbers(got[labels][1], value), (expr, labels, got[labels][1], value)
            else:
                assert _close(got[labels][1], value), (expr, labels, got[labels][1], value)


def test_range_queries_agree_with_prometheus(setup):
    _, shardmon, prometheus = setup
    end = time.time() - 4
    params = {"start": f"{end - 20:.3f}", "end": f"{end:.3f}", "step": "2"}
    for expr in ('histogram_quantile(0.9, rate(test_latency_seconds{job="via-prometheus"}[10s]))',
                 'rate(test_latency_seconds{job="via-prometheus"}[10s])'):
        both = []
        for base in (prometheus, shardmon):
            body = get_json(f"{base}/api/v1/query_range", {"query": expr, **params}, timeout=30)
            assert body["status"] == "success", body
            both.append({_strip_instance(r["metric"]): r for r in body["data"]["result"]})
        want, got = both
        assert want and set(got) == set(want), expr
        for labels, series in want.items():
            other = got[labels]
            for key in ("values", "histograms"):
                w, g = series.get(key, []), other.get(key, [])
                assert [p[0] for p in g] == [p[0] for p in w], (expr, key)
                for (_, wv), (_, gv) in zip(w, g):
                    if key == "values":
                        assert _close(float(gv), float(wv)), (expr, gv, wv)
                    else:
                        assert _close_numbers(_numbers(gv), _numbers(wv)), (expr, gv, wv)
