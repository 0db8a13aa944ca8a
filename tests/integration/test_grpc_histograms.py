"""Native histograms over the querier's gRPC Query API, read with ``shardmon.client.QueryClient``: 3 real shards
(real Redis) hold histogram series (one also with floats) and a float-only series; a real querier answers both
its HTTP API and its gRPC API. The client returns :class:`~shardmon.model.histogram.Histogram` objects that are
the ones written (raw samples, bit for bit) and, for PromQL results (``rate``, ``sum``), the same histograms the
HTTP API writes as JSON; float results carry no histograms."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from shardmon.client import QueryClient
from shardmon.model.hashing import shards_for_series
from shardmon.model.histogram import HistogramColumns
from shardmon.model.labels import Labels
from shardmon.model.samples import SampleBatch
from shardmon.querier.result_json import histogram_json
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import get_json
from tests.integration.procs import Cluster
from tests.unit.shards.histkit import scrape_series

N = 40
STEP = 15_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster, what was written (labels -> [(ms, ("h", Histogram) | ("f", float))]) and the first time."""
    tmp = tmp_path_factory.mktemp("grpc-hist")
    c = Cluster(tmp, n_shards=3, scrape_configs=[]).start()
    clients = [ShardClient(i, f"127.0.0.1:{p}") for i, p in enumerate(c.shard_ports)]
    try:
        t0 = (int(time.time() * 1000) // STEP - N - 4) * STEP
        written = _write(clients, t0)
        yield c, written, t0
    finally:
        for sc in clients:
            sc.close()
        c.stop()


def _write(clients: list[ShardClient], t0: int) -> dict:
    written, keys, ids = {}, [], []
    refs, h_ts, hists, f_refs, f_ts, f_vals = [], [], [], [], [], []
    for i in range(4):
        name = "latency_seconds" if i < 3 else "plain_total"
        labels = Labels.from_dict({"__name__": name, "job": "api", "i": str(i)})
        keys.append(labels.canonical())
        ids.append(labels.series_id())
        points = []
        if i < 3:
            for k, h in enumerate(scrape_series(N, seed=i)):
                t = t0 + k * STEP + (7_000 if i == 2 and k % 10 == 5 else 0)
                if i == 2 and k % 10 == 0:  # series 2 mixes floats and histograms
                    f_refs.append(i), f_ts.append(t), f_vals.append(float(k))
                    points.append((t, ("f", float(k))))
                else:
                    refs.append(i), h_ts.append(t), hists.append(h)
                    points.append((t, ("h", h)))
        else:
            for k in range(N):
                f_refs.append(i), f_ts.append(t0 + k * STEP), f_vals.append(float(k * k))
                points.append((t0 + k * STEP, ("f", float(k * k))))
        written[labels] = points
    ids = np.array(ids, np.uint64)
    owners = shards_for_series(ids, list(range(len(clients))), 1)[:, 0]
    f_ts, h_ts = np.array(f_ts, np.int64), np.array(h_ts, np.int64)
    for k in range(N):  # a batch per scrape interval, as a scraper sends (a series' samples in time order)
        lo, hi = t0 + k * STEP, t0 + (k + 1) * STEP
        f_in, h_in = np.flatnonzero((f_ts >= lo) & (f_ts < hi)), np.flatnonzero((h_ts >= lo) & (h_ts < hi))
        batch = SampleBatch.of(ids, keys, np.array(f_refs, np.uint32)[f_in], f_ts[f_in],
                               np.array(f_vals, np.float64)[f_in])
        batch = batch._replace(histograms=HistogramColumns.of(np.array(refs)[h_in], h_ts[h_in],
                                                              [hists[j] for j in h_in.tolist()]))
        for pos, sc in enumerate(clients):
            part = batch.select_series(owners == pos)
            if part.num_series:
                sc.write(f"grpc-hist-{pos}-{k}", part)
    return written


def _points(s) -> list:
    out = []
    for j, t in enumerate(s.timestamps_ms.tolist()):
        h = None if s.histograms is None else s.histograms[j]
        out.append((t, ("f", float(s.values[j])) if h is None else ("h", h)))
    return out


def _http(cluster, path: str, params: dict) -> dict:
    body = get_json(f"http://127.0.0.1:{cluster.http_port}/api/v1/{path}", params, timeout=30)
    assert body["status"] == "success", body
    return {Labels.from_dict(r["metric"]): r for r in body["data"]["result"]}


def _as_http(points: list) -> tuple[list, list]:
    """A series' points as the HTTP API's ``values`` and ``histograms`` (ts in seconds, JSON objects)."""
    floats = [(t / 1000, v) for t, (kind, v) in points if kind == "f"]
    hists = [(t / 1000, histogram_json(h)) for t, (kind, h) in points if kind == "h"]
    return floats, hists


def _from_http(r: dict) -> tuple[list, list]:
    import json

    floats = [(float(t), float(v)) for t, v in r.get("values", [])]
    hists = [(float(t), json.dumps(h, separators=(",", ":"))) for t, h in r.get("histograms", [])]
    return floats, hists


def test_raw_histograms_come_back_as_written(cluster):
    c, written, t0 = cluster
    end = t0 + (N + 1) * STEP
    with QueryClient(f"127.0.0.1:{c.grpc_port}") as qc:
        res = qc.instant(f"{{job=\"api\"}}[{(N + 2) * STEP // 1000}s]", end)
    assert res.result_type == "matrix"
    got = {s.labels: s for s in res.series}
    assert set(got) == set(written)
    for labels, want in written.items():
        have = _points(got[labels])
        assert [t for t, _ in have] == [t for t, _ in want], labels
        for (t, (k1, v1)), (_, (k2, v2)) in zip(have, want):
            assert k1 == k2, (labels, t)
            if k1 == "h":
                assert v1.identical(v2) and v1.is_int, (labels, t, v1, v2)
                assert math.isnan(got[labels].values[[p for p, _ in have].index(t)])
            else:
                assert v1 == v2
    assert got[Labels.from_dict({"__name__": "plain_total", "job": "api", "i": "3"})].histograms is None


@pytest.mark.parametrize("expr", [
    'latency_seconds{job="api"}',
    'rate(latency_seconds{job="api"}[1m])',
    'sum(rate(latency_seconds[1m]))',
    'sum by (i) (increase(latency_seconds[2m])) * 2',
    '{job="api"}',
])
def test_range_query_histograms_equal_the_http_api(cluster, expr):
    c, _, t0 = cluster
    start, end, step = t0 + 2 * STEP, t0 + (N - 1) * STEP, 30_000
    with QueryClient(f"127.0.0.1:{c.grpc_port}") as qc:
        res = qc.range(expr, start, end, step)
    http = _http(c, "query_range", {"query": expr, "start": start / 1000, "end": end / 1000, "step": step / 1000})
    assert res.result_type == "matrix" and {s.labels for s in res.series} == set(http)
    assert any(s.histograms is not None for s in res.series)
    for s in res.series:
        assert _as_http(_points(s)) == _from_http(http[s.labels]), (expr, s.labels)


def test_instant_histogram_and_float_results(cluster):
    c, _, t0 = cluster
    at = t0 + (N - 2) * STEP
    with QueryClient(f"127.0.0.1:{c.grpc_port}") as qc:
        hist = qc.instant("sum(rate(latency_seconds[1m]))", at)
        quant = qc.instant("histogram_quantile(0.9, sum(rate(latency_seconds[1m])))", at)
        count = qc.instant("histogram_count(rate(latency_seconds[1m]))", at)
    assert hist.result_type == "vector" and len(hist.series) == 1
    (s,) = hist.series
    h = s.histograms[0]
    assert math.isnan(s.values[0]) and s.timestamps_ms.tolist() == [at] and not h.is_int and h.count > 0
    body = _http(c, "query", {"query": "sum(rate(latency_seconds[1m]))", "time": at / 1000})
    import json

    assert histogram_json(h) == json.dumps(body[s.labels]["histogram"][1], separators=(",", ":"))
    assert all(x.histograms is None for x in quant.series + count.series)
    assert quant.series[0].values[0] > 0 and len(count.series) == 3


def test_shardmon_query_prints_histograms(cluster):
    """``shardmon query`` (over the gRPC API): the table shows a histogram in the scripts' notation, and
    ``--json`` is the HTTP API's answer."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    c, _, t0 = cluster
    at = (t0 + (N - 2) * STEP) / 1000
    exe = str(Path(sys.executable).with_name("shardmon"))
    expr = 'sum by (i) (rate(latency_seconds{i="0"}[1m]))'
    table = subprocess.run([exe, "query", "--config", str(c.config_path), "--time", str(at), expr],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert '{i="0"}' in table.stdout and "{{schema:3 count:" in table.stdout and "buckets:[" in table.stdout
    out = subprocess.run([exe, "query", "--json", "--config", str(c.config_path), "--time", str(at), expr],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["data"]["result"]
    want = get_json(f"http://127.0.0.1:{c.http_port}/api/v1/query", {"query": expr, "time": at})["data"]["result"]
    assert got == want and "histogram" in got[0]
