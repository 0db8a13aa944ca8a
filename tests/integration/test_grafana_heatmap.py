"""Grafana's heatmap of a native histogram, through the HTTP API: Debian's Prometheus 2.42
(``--enable-feature=native-histograms``) scrapes a real target of native histograms (tests/native_hist_target.py)
and remote-writes what it scraped to Shardmon's receiver (3 real shards). ``query_range`` of
``sum(rate(x[1m]))`` from both is parsed as Grafana's Prometheus data source parses it (tests/grafana_heatmap.py):
Shardmon's answer has the shape Grafana requires and gives the same heatmap cells as Prometheus's (time, bounds,
boundary rule, count), for a histogram with positive buckets only and one with negative and zero buckets."""

from __future__ import annotations

import math
import time

import pytest

from tests.grafana_heatmap import heatmap_frames
from tests.integration.httpapi import get_json
from tests.integration.procs import Cluster, native_histogram_prometheus, wait_until
from tests.native_hist_target import NativeHistogramTarget


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grafana-heatmap")
    target = NativeHistogramTarget().start()
    cluster = Cluster(tmp, n_shards=3, scrape_configs=[], receiver={}).start()
    prom, prom_port = native_histogram_prometheus(tmp, "app", target.address, cluster.receiver_port)
    prom.up(60)
    shardmon, prometheus = f"http://127.0.0.1:{cluster.http_port}", f"http://127.0.0.1:{prom_port}"
    try:
        def enough(base):
            body = get_json(f"{base}/api/v1/query", {"query": "count_over_time(test_latency_seconds[1m])"})
            res = body["data"]["result"]
            return res and float(res[0]["value"][1]) >= 12

        for base in (prometheus, shardmon):
            wait_until(lambda b=base: enough(b), 90, f"12 histograms in {base}")
        yield shardmon, prometheus
    finally:
        prom.stop(30)
        cluster.stop()
        target.stop()


def _close(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("expr", ["sum(rate(test_latency_seconds[1m]))", "sum by (job) (rate(test_signed_value[1m]))"])
def test_query_range_gives_grafana_the_heatmap_prometheus_gives(setup, expr):
    shardmon, prometheus = setup
    time.sleep(2)
    end = time.time() - 3  # remote write has delivered what Prometheus scraped before this
    params = {"query": expr, "start": f"{end - 10:.3f}", "end": f"{end:.3f}", "step": "1"}
    frames = []
    for base in (prometheus, shardmon):
        body = get_json(f"{base}/api/v1/query_range", params, timeout=30)
        assert body["status"] == "success", body
        frames.append(heatmap_frames(body["data"]))
    want, got = frames
    assert want and set(got) == set(want), (want.keys(), got.keys())
    for labels, cells in want.items():
        mine = got[labels]
        assert len(cells) >= 10 * 3 and len(mine) == len(cells), (labels, len(mine), len(cells))
        for a, b in zip(mine, cells):
            assert (a.x_max_ms, a.y_layout) == (b.x_max_ms, b.y_layout), (a, b)
            assert _close(a.y_min, b.y_min) and _close(a.y_max, b.y_max) and _close(a.count, b.count), (a, b)
    if "signed" in expr:  # negative buckets and the zero bucket: every boundary rule Prometheus writes
        assert {c.y_layout for cells in got.values() for c in cells} >= {0, 1, 3}
