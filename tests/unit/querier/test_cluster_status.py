"""The Cluster page's figures from the components' metrics (pure), the rates kept between calls, the slow
query log, and /api/v1/status/cluster's document when a component does not answer."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.querier import metrics
from shardmon.querier.cluster_figures import (
    RateKeeper,
    parse_metrics,
    ruler_figures,
    scraper_figures,
    shard_figures,
    totals,
)
from shardmon.querier.cluster_status import ClusterStatus, ShardNode
from shardmon.querier.http_api import PrometheusAPI
from shardmon.querier.promql import Engine
from shardmon.querier.slow_queries import SlowQuery, SlowQueryLog, instant_params, peer_ip, range_params, rfc3339


def _shard_exposition(appended: float = 1234.0) -> str:
    """What a shard's /metrics says, written by prometheus_client as the shard's is."""
    reg = CollectorRegistry()
    for name, value in (("shardmon_shard_head_series", 42), ("shardmon_shard_series", 50),
                        ("shardmon_shard_wal_entries", 7), ("shardmon_shard_blocks", 3),
                        ("shardmon_shard_block_bytes", 9000), ("shardmon_shard_block_bytes_per_sample", 1.5),
                        ("shardmon_shard_redis_memory_used_bytes", 2_000_000),
                        ("shardmon_shard_redis_memory_max_bytes", 0),
                        ("shardmon_shard_redis_connected_replicas", 1), ("shardmon_shard_redis_appendonly", 1),
                        ("shardmon_shard_redis_data_lost", 0)):
        Gauge(name, "x", registry=reg).set(value)
    Counter("shardmon_shard_samples_appended_total", "x", registry=reg).inc(appended)
    rejected = Counter("shardmon_shard_samples_rejected_total", "x", ["reason"], registry=reg)
    rejected.labels("out_of_order").inc(2)
    rejected.labels("series_limit").inc(3)
    return generate_latest(reg).decode()


def test_a_shards_figures_are_read_from_its_metrics():
    f = shard_figures(parse_metrics(_shard_exposition()))
    assert f["activeSeries"] == 42 and f["series"] == 50 and f["walEntries"] == 7 and f["blocks"] == 3
    assert f["blockBytes"] == 9000 and f["bytesPerSample"] == 1.5
    assert f["redisMemoryBytes"] == 2_000_000 and f["redisMaxMemoryBytes"] == 0 and f["redisReplicas"] == 1
    assert f["redisAppendOnly"] is True and f["redisDataLost"] is False
    assert f["samplesAppendedTotal"] == 1234.0
    assert f["samplesRejectedTotal"] == 5.0  # summed over the reasons


def test_a_figure_without_its_metric_is_none_and_nan_is_none():
    f = shard_figures(parse_metrics("shardmon_shard_series 5\nshardmon_shard_block_bytes_per_sample NaN\n"))
    assert f["series"] == 5
    assert f["activeSeries"] is None and f["redisMemoryBytes"] is None and f["redisAppendOnly"] is None
    assert f["bytesPerSample"] is None  # JSON has no NaN


def test_a_malformed_exposition_is_an_error():
    with pytest.raises(ValueError):
        parse_metrics("this is { not metrics\n")


def test_a_scrapers_figures():
    text = ("shardmon_scraper_event_loop_lag_seconds 0.25\n"
            'shardmon_scraper_queue_samples{shard="0"} 10\nshardmon_scraper_queue_samples{shard="1"} 5\n'
            "# TYPE shardmon_scraper_samples_scraped_total counter\nshardmon_scraper_samples_scraped_total 900\n")
    f = scraper_figures(parse_metrics(text))
    assert f == {"eventLoopLagSeconds": 0.25, "queuedSamples": 15, "samplesDroppedTotal": None,
                 "samplesScrapedTotal": 900.0}


def test_a_rulers_lag_is_its_most_late_group():
    text = ('shardmon_rule_group_interval_seconds{rule_group="a.yml;fast"} 1\n'
            'shardmon_rule_group_interval_seconds{rule_group="a.yml;slow"} 60\n'
            'shardmon_rule_group_last_evaluation_timestamp_seconds{rule_group="a.yml;fast"} 990\n'
            'shardmon_rule_group_last_evaluation_timestamp_seconds{rule_group="a.yml;slow"} 950\n'
            '# TYPE shardmon_rule_group_iterations_missed_total counter\n'
            'shardmon_rule_group_iterations_missed_total{rule_group="a.yml;fast"} 4\n')
    f = ruler_figures(parse_metrics(text), now_s=1000.0)
    # fast: 10 s since its last evaluation, interval 1 s: 9 s behind; slow: 50 s of its 60 s: on time.
    assert f["lagSeconds"] == pytest.approx(9.0)
    assert f["missedIterations"] == 4 and f["evaluationFailures"] is None
    assert ruler_figures(parse_metrics(""), now_s=1000.0)["lagSeconds"] is None  # not evaluated yet
    # A labelled counter declared without series yet (prometheus_client's HELP and TYPE only) is 0, not unknown.
    declared = "# HELP shardmon_rule_group_iterations_missed_total x\n# TYPE shardmon_rule_group_iterations_missed_total counter\n"
    assert ruler_figures(parse_metrics(declared), now_s=0)["missedIterations"] == 0


def test_rates_come_from_an_earlier_reading():
    r = RateKeeper(window_s=60, min_gap_s=1, max_age_s=600)
    assert r.rate("s", 100.0, 1000) is None  # the first reading: nothing to compare with
    assert r.rate("s", 100.5, 1010) is None  # too soon after it
    assert r.rate("s", 110.0, 1100) == pytest.approx(10.0)
    # Once there are, the base is the newest reading a window old: 110 s for both (100 s is left).
    assert r.rate("s", 170.0, 1700) == pytest.approx(10.0)
    assert r.rate("s", 171.0, 1700) == pytest.approx(600 / 61)
    assert r.rate("other", 171.0, 5) is None  # each key its own


def test_a_counter_reset_counts_from_zero_and_old_readings_expire():
    r = RateKeeper(window_s=60, min_gap_s=1, max_age_s=600)
    r.rate("s", 0.0, 5000)
    assert r.rate("s", 10.0, 100) == pytest.approx(10.0)  # restarted: 100 since
    # Past the window, the newest reading before it is the base; past max_age, none.
    assert r.rate("s", 300.0, 3000) == pytest.approx((3000 - 100) / 290)
    assert r.rate("s", 1000.0, 4000) is None
    assert r.rate("s", 999.0, 4000) is None  # the clock went back: start over


def test_readings_kept_are_bounded():
    r = RateKeeper(window_s=60, min_gap_s=1, max_age_s=600)
    for i in range(10_000):
        r.rate("s", i * 0.1, float(i))
    assert len(r._readings["s"]) <= 62


def test_totals_are_over_the_shards_that_answered():
    shards = [{"health": "up", "activeSeries": 10, "samplesPerSecond": 2.5, "series": 11, "redisMemoryBytes": None},
              {"health": "up", "activeSeries": 5, "samplesPerSecond": None, "series": 6, "redisMemoryBytes": None},
              {"health": "down", "activeSeries": 100}]
    assert totals(shards) == {"shards": 3, "shardsUp": 2, "activeSeries": 15, "series": 17,
                              "samplesPerSecond": 2.5, "redisMemoryBytes": None}


# -- the slow query log -----------------------------------------------------------------------------


def _q(duration: float, expr: str = "up") -> SlowQuery:
    return SlowQuery("http", "instant", instant_params(expr, 1_700_000_000_000), 1_700_000_000.0, duration, 3, 30,
                     "ok", client_ip="127.0.0.1", user_agent="test")


def test_the_log_keeps_the_latest_slow_queries_newest_first_and_counts_them():
    log = SlowQueryLog(threshold_s=1.0, size=2)
    before = metrics.SLOW_QUERIES.labels("http", "instant")._value.get()
    assert not log.observe(_q(0.5, "fast"))
    for expr in ("a", "b", "c"):
        assert log.observe(_q(1.0, expr))
    assert [e.params["query"] for e in log.entries()] == ["c", "b"]
    assert metrics.SLOW_QUERIES.labels("http", "instant")._value.get() == before + 3
    doc = log.to_json()
    assert doc["thresholdSeconds"] == 1.0 and doc["size"] == 2
    first = doc["queries"][0]
    assert first["query"] == "c" and first["params"]["time"] == "2023-11-14T22:13:20.000Z"
    assert first["durationSeconds"] == 1.0 and first["series"] == 3 and first["samples"] == 30
    assert first["clientIP"] == "127.0.0.1" and first["outcome"] == "ok" and first["startedAt"].endswith("Z")


def test_a_threshold_of_zero_keeps_nothing():
    log = SlowQueryLog(threshold_s=0, size=10)
    assert not log.observe(_q(100.0))
    assert log.entries() == []


def test_params_and_peers():
    assert range_params("x", 0, 60_000, 15_000) == {"query": "x", "start": "1970-01-01T00:00:00.000Z",
                                                     "end": "1970-01-01T00:01:00.000Z", "step": 15.0}
    assert rfc3339(1.5) == "1970-01-01T00:00:01.500Z"
    assert peer_ip("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_ip("ipv6:[::1]:5000") == "::1"
    assert peer_ip("unix:/tmp/s") == "unix:/tmp/s"


# -- over HTTP ----------------------------------------------------------------------------------------


def _engine() -> Engine:
    st = MemoryStorage()
    ts = np.arange(0, 600_001, 15_000, dtype=np.int64)
    for i in range(20):
        st.add_series(Labels.from_dict({"__name__": "m", "i": str(i)}), ts, np.ones(len(ts)))
    return Engine(st)


async def _serve(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_queries_over_the_threshold_are_in_the_cluster_document():
    async def run():
        engine = _engine()
        log = SlowQueryLog(threshold_s=1e-9, size=10)  # every query is "slow"
        cluster = ClusterStatus(shards=[], slow_queries=log)
        client = await _serve(PrometheusAPI(engine, engine.querier, default_timeout_ms=10_000, slow_queries=log,
                                            cluster=cluster).app())
        try:
            r = await client.get("/api/v1/query_range", params={"query": "sum(m)", "start": "0", "end": "600",
                                                                "step": "60"}, headers={"User-Agent": "pytest"})
            assert r.status == 200
            r = await client.get("/api/v1/status/cluster")
            doc = await r.json()
        finally:
            await client.close()
        assert doc["status"] == "success"
        [q] = doc["data"]["slowQueries"]["queries"]
        assert q["query"] == "sum(m)" and q["kind"] == "range" and q["api"] == "http"
        assert q["params"]["step"] == 60.0 and q["series"] == 20 and q["samples"] > 0
        assert q["userAgent"] == "pytest" and q["clientIP"] == "127.0.0.1" and q["outcome"] == "ok"

    asyncio.run(run())


def test_a_shard_that_does_not_answer_shows_down_and_the_rest_answer():
    async def run():
        async def shard_metrics(request):
            return web.Response(text=_shard_exposition())

        app = web.Application()
        app.router.add_get("/metrics", shard_metrics)
        live = await _serve(app)
        dead = TestServer(web.Application())
        await dead.start_server()
        dead_address = f"127.0.0.1:{dead.port}"
        await dead.close()  # nothing listens there now
        cluster = ClusterStatus(
            shards=[ShardNode(0, "127.0.0.1:1", f"127.0.0.1:{live.port}"), ShardNode(1, "127.0.0.1:2", dead_address),
                    ShardNode(2, "127.0.0.1:3", None)],
            ingest_api=dead_address, timeout_s=2.0)
        try:
            doc = await cluster.document()
            again = await cluster.document()
        finally:
            await live.close()
        json.dumps(doc, allow_nan=False)  # plain JSON
        up, down, unknown = doc["shards"]
        assert up["health"] == "up" and up["activeSeries"] == 42 and up["lastError"] == ""
        assert down["health"] == "down" and dead_address in down["lastError"]
        assert unknown["health"] == "unknown" and "metrics_address" in unknown["lastError"]
        assert doc["totals"]["shardsUp"] == 1 and doc["totals"]["activeSeries"] == 42
        ingest = next(c for c in doc["components"] if c["component"] == "ingest")
        assert ingest["health"] == "down" and dead_address in ingest["lastError"]
        assert doc["scrapers"] == [] and doc["rulers"] == []
        rulers = next(c for c in doc["components"] if c["component"] == "rulers")
        assert rulers["health"] == "unknown" and rulers["lastError"] == "not configured"
        assert again["shards"][0]["health"] == "up"

    asyncio.run(run())
