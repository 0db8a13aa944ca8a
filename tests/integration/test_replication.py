"""Replication: RF=2 over 3 shards. Stopping any one shard leaves every query result complete and
identical (values bit for bit, but for the last bits of sums over groups: with the aggregation push-down,
which shard adds up which series follows the shards that answer), with no partial-response warning;
stopping two makes it partial and says so."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shardmon.ingest.remote_write import encode
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import PROTOBUF, call_api, metric, request
from tests.integration.procs import Cluster, wait_until

N_SERIES = 300
N_SAMPLES = 60
STEP_MS = 10_000

QUERIES = [
    "repl_requests_total",
    "sum by (code) (rate(repl_requests_total[1m]))",
    "count by (instance) (repl_requests_total)",
    "topk(5, repl_requests_total)",
    "max_over_time(repl_requests_total[2m])",
    'sum(rate(repl_requests_total{code="500"}[1m])) / sum(rate(repl_requests_total[1m]))',
]


def _same_but_last_bits(got: dict, want: dict) -> bool:
    """Two API answers equal but for the last bits of their values (relative 1e-12, the push-down tests'
    bound: sums of partial sums add in another order)."""
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same_but_last_bits(got[k], want[k]) for k in got)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same_but_last_bits(a, b) for a, b in zip(got, want))
    if isinstance(got, str) and isinstance(want, str) and got != want:
        try:
            a, b = float(got), float(want)
        except ValueError:
            return False
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return got == want


def _query_all(cluster, end_s: float) -> dict[str, dict]:
    return {q: call_api(f"http://127.0.0.1:{cluster.http_port}", "/api/v1/query_range", query=q,
                        start=f"{end_s - 500:.3f}", end=f"{end_s:.3f}", step="15")[1] for q in QUERIES}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("replication"), n_shards=3, scrape_configs=[],
                shards_extra={"replication_factor": 2}, receiver={"write_timeout": "5s"}).start()
    yield c
    c.stop()


def test_any_one_shard_down_leaves_every_result_complete_and_identical(cluster):
    rng = np.random.default_rng(3)
    end_ms = int(time.time() * 1000) // STEP_MS * STEP_MS  # recent: the shards refuse samples from the future
    start_ms = end_ms - (N_SAMPLES - 1) * STEP_MS
    series = []
    for i in range(N_SERIES):
        labels = Labels.from_dict({"__name__": "repl_requests_total", "instance": f"host-{i % 30}",
                                   "code": ("200", "500", "404")[i % 3], "i": str(i)})
        values = np.cumsum(rng.integers(0, 100, N_SAMPLES)).astype(float)
        series.append((labels, [(start_ms + k * STEP_MS, float(v)) for k, v in enumerate(values)]))
    assert request("POST", f"http://127.0.0.1:{cluster.receiver_port}/api/v1/write", encode(series),
                   headers={"Content-Encoding": "snappy", **PROTOBUF}).status in (200, 204)

    # Every shard holds about 2/3 of the series: each series is on two of the three.
    per_shard = []
    for i, port in enumerate(cluster.shard_ports):
        client = ShardClient(i, f"127.0.0.1:{port}")
        per_shard.append(len(client.series([Matcher(MatchType.EQ, "__name__", "repl_requests_total")], 0, 2**62,
                                           skip_samples=True)))
        client.close()
    assert sum(per_shard) == 2 * N_SERIES and all(0 < n < N_SERIES for n in per_shard), per_shard

    end_s = end_ms / 1000
    baseline = _query_all(cluster, end_s)
    for q, body in baseline.items():
        assert body["status"] == "success" and body["data"]["result"], q
        assert "warnings" not in body
    assert len(baseline["repl_requests_total"]["data"]["result"]) == N_SERIES

    def shard_ok(i: int) -> float:
        return metric(f"http://127.0.0.1:{cluster.http_port}", "shardmon_querier_shard_requests_total",
                      shard=str(i), outcome="ok")

    def answers(i: int) -> bool:
        """Whether the querier reaches shard i again (with RF=2 its absence shows in no result)."""
        before = shard_ok(i)
        _query_all(cluster, end_s)
        return shard_ok(i) > before

    for i in range(3):
        cluster.shards[i].stop()
        try:
            got = _query_all(cluster, end_s)
            assert _same_but_last_bits(got, baseline), (f"results differ with shard {i} down: "
                                     f"{[b.get('warnings') for b in got.values() if b.get('warnings')]}")
        finally:
            cluster.restart_shard(i)
        # The querier reconnects to the restarted shard before the next one goes down.
        wait_until(lambda i=i: answers(i), 30, f"shard {i} to answer the querier again")

    # Two shards down out of three: some series have no replica left; the answer says it is partial.
    cluster.shards[0].stop()
    cluster.shards[1].stop()
    try:
        body = _query_all(cluster, end_s)["repl_requests_total"]
        assert body["status"] == "success" and body.get("isPartial") is True
        assert len(body["data"]["result"]) < N_SERIES
    finally:
        cluster.restart_shard(0)
        cluster.restart_shard(1)
    wait_until(lambda: "warnings" not in _query_all(cluster, end_s)["repl_requests_total"], 30, "all shards back")
