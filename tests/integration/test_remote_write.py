"""A real Prometheus scrapes targets and remote-writes to Shardmon's receiver; Shardmon returns what
Prometheus stored, sample for sample. Then the receiver's error paths and their status codes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml

from shardmon.ingest.remote_write import encode
from shardmon.model.labels import Labels
from tests.integration.httpapi import get_json, metric, request
from tests.integration.procs import Cluster, CounterTargets, free_port, prometheus_proc, wait_until


def _post(url: str, body: bytes) -> tuple[int, str]:
    r = request("POST", url, body)
    return r.status, r.text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote-write")
    targets = CounterTargets(4).start()
    cluster = Cluster(tmp, n_shards=2, scrape_configs=[],
                      receiver={"write_timeout": "2s", "max_concurrent_writes": 3}).start()
    prom_port = free_port()
    prom_cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "prom-test", "static_configs": [{"targets": targets.addresses()}]}],
        "remote_write": [{
            "url": f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write",
            "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
    prom = prometheus_proc("prometheus", tmp / "prometheus.yml", tmp / "prom-data", prom_port, tmp,
                           "--log.level=warn").start()
    yield cluster, targets, f"http://127.0.0.1:{prom_port}", prom
    prom.stop(30)
    cluster.stop()
    targets.stop()


def _matrix(base: str, expr: str, at: float) -> dict[Labels, list[tuple[int, str]]]:
    body = get_json(f"{base}/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, timeout=30)
    assert body["status"] == "success", body
    return {
        Labels.from_dict(r["metric"]): [(round(float(t) * 1000), v) for t, v in r["values"]]
        for r in body["data"]["result"]
    }


def test_samples_remote_written_by_prometheus_equal_those_in_prometheus(setup):
    cluster, targets, prom, _ = setup
    shardmon = f"http://127.0.0.1:{cluster.http_port}"
    wait_until(lambda: _matrix(shardmon, "test_scrapes_total[1m]", time.time()), 30, "remote-written samples")
    time.sleep(6)
    at = time.time() - 2  # Leave remote write time to deliver what Prometheus scraped before `at`.
    for expr in ("test_scrapes_total[1m]", "test_gauge[1m]", "up[1m]", "scrape_duration_seconds[1m]"):
        in_prom = _matrix(prom, expr, at)
        in_shardmon = _matrix(shardmon, expr, at)
        assert len(in_prom) == 4, (expr, in_prom)
        assert in_shardmon == in_prom, expr
        assert all(len(points) >= 3 for points in in_prom.values()), {k: len(v) for k, v in in_prom.items()}


def test_a_body_that_is_not_snappy_protobuf_is_a_400(setup):
    cluster, _, _, _ = setup
    status, text = _post(f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write", b"not snappy at all")
    assert status == 400 and "snappy" in text


def test_invalid_labels_are_a_400_and_the_valid_series_are_still_written(setup):
    cluster, _, _, _ = setup
    now = int(time.time() * 1000)
    body = encode([
        (Labels.from_dict({"__name__": "rw_good", "k": "v"}), [(now, 1.5)]),
        (Labels.from_dict({"__name__": "rw_bad", "0k": "v"}), [(now, 2.0)]),
        (Labels.from_dict({"__name__": "bad metric"}), [(now, 3.0)]),
    ])
    status, text = _post(f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write", body)
    assert status == 400
    assert "2 series with invalid labels" in text and "invalid label name '0k'" in text
    got = _matrix(f"http://127.0.0.1:{cluster.http_port}", "rw_good[1m]", now / 1000)
    assert got == {Labels.from_dict({"__name__": "rw_good", "k": "v"}): [(now, "1.5")]}


def test_out_of_order_samples_are_a_400(setup):
    cluster, _, _, _ = setup
    now = int(time.time() * 1000)
    series = Labels.from_dict({"__name__": "rw_ooo"})
    url = f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write"
    assert _post(url, encode([(series, [(now, 1.0)])]))[0] == 204
    status, text = _post(url, encode([(series, [(now - 60_000, 2.0)])]))
    assert status == 400 and "1 out of order" in text
    # A retried request (same samples) is accepted: duplicates are not errors.
    assert _post(url, encode([(series, [(now, 1.0)])]))[0] == 204


def test_a_shard_down_is_a_503_and_too_many_requests_a_429_and_the_retry_succeeds(setup):
    cluster, _, _, prom = setup
    # Prometheus remote-writes to the same receiver: with the shard down its writes would wait too and
    # take one of the three slots this test counts on (the last test of the module: it stops it).
    prom.stop(30)
    url = f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write"
    now = int(time.time() * 1000)
    # Enough series that both shards own some of them.
    body = encode([(Labels.from_dict({"__name__": "rw_down", "i": str(i)}), [(now, float(i))]) for i in range(20)])
    cluster.shards[0].kill()
    try:
        t0 = time.monotonic()
        # Three requests wait for the shard (max_concurrent_writes: 3); a fourth meanwhile is a 429.
        with ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(_post, url, body) for _ in range(3)]
            receiver = f"http://127.0.0.1:{cluster.receiver_port}"
            wait_until(lambda: metric(receiver, "shardmon_receiver_requests_in_flight") >= 3, 10,
                       "the three writes to be in flight", interval_s=0.02)
            status, text = _post(url, body)
            assert status == 429 and "retry" in text
            results = [f.result() for f in waiting]
        if not all(s == 503 and "shard 0" in t for s, t in results):
            print("the writes waiting on the killed shard answered:", results)  # whole (pytest shortens messages)
        assert all(s == 503 and "shard 0" in t for s, t in results), results
        assert time.monotonic() - t0 >= 1.5  # They kept retrying for the receiver's write_timeout first.
    finally:
        cluster.restart_shard(0)
    wait_until(lambda: _post(url, body)[0] == 204, 30, "the retried write to succeed", interval_s=0.5)
    # What the retried write carried is stored once: every series, with its one sample.
    got = _matrix(f"http://127.0.0.1:{cluster.http_port}", "rw_down[1m]", now / 1000)
    assert sorted(float(v[0][1]) for v in got.values()) == [float(i) for i in range(20)]
    assert np.all([len(v) == 1 for v in got.values()])
