"""The querier's status APIs (``/api/v1/status/runtimeinfo``, ``config``, ``flags``) in Prometheus 2.42's
shape, and the ``/api/v1/scrapers`` pass-through the Targets page reads."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shardmon.model.config import parse_config
from shardmon.model.memory import MemoryStorage
from shardmon.querier.http_api import PrometheusAPI
from shardmon.querier.promql import Engine
from shardmon.querier.status_api import StatusAPI, flags, go_time, storage_retention

CONFIG = """
scrape_configs:
  - {job_name: a, basic_auth: {username: u, password: s3cret-pw}, static_configs: [{targets: ["h:1"]}]}
querier: {lookback_delta: 2m, query_timeout: 30s, max_samples: 1000}
shards: {retention_time: 10d}
"""

#: Prometheus 2.42's RuntimeInfo: each field and its JSON type.
RUNTIMEINFO = {"startTime": str, "CWD": str, "reloadConfigSuccess": bool, "lastConfigTime": str,
               "corruptionCount": int, "goroutineCount": int, "GOMAXPROCS": int, "GOGC": str, "GODEBUG": str,
               "storageRetention": str}


def _serve(config, calls, ingest_api=None):
    async def main():
        st = MemoryStorage()
        api = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000, ingest_api=ingest_api,
                            status=StatusAPI(config, config_file="/etc/shardmon.yml", started=1_700_000_000.25))
        async with TestClient(TestServer(api.app())) as client:
            out = []
            for path in calls:
                resp = await client.get(path)
                out.append((resp.status, json.loads(await resp.text())))
            return out

    return asyncio.run(main())


def test_the_three_status_apis_answer_prometheus_shapes():
    cfg = parse_config(CONFIG)
    (s1, info), (s2, conf), (s3, fl) = _serve(cfg, ["/api/v1/status/runtimeinfo", "/api/v1/status/config",
                                                    "/api/v1/status/flags"])
    assert (s1, s2, s3) == (200, 200, 200)
    assert {k: type(v) for k, v in info["data"].items()} == RUNTIMEINFO
    assert info["data"]["startTime"] == "2023-11-14T22:13:20.25Z"
    assert info["data"]["lastConfigTime"] == "2023-11-14T22:13:20Z"
    assert info["data"]["storageRetention"] == "10d"
    assert list(conf["data"]) == ["yaml"] and "s3cret-pw" not in conf["data"]["yaml"]
    assert "password: <secret>" in conf["data"]["yaml"]
    assert all(isinstance(v, str) for v in fl["data"].values())
    assert fl["data"]["query.lookback-delta"] == "2m" and fl["data"]["query.timeout"] == "30s"
    assert fl["data"]["query.max-samples"] == "1000" and fl["data"]["config.file"] == "/etc/shardmon.yml"
    assert fl["data"]["storage.tsdb.retention.time"] == "10d"


def test_storage_retention_as_prometheus_joins_time_and_size():
    assert storage_retention(parse_config("{}")) == "15d"
    assert storage_retention(parse_config("shards: {retention_size: 512MB}")) == "512MiB"
    assert storage_retention(parse_config("shards: {retention_time: 1d, retention_size: 1GB}")) == "1d or 1GiB"
    assert flags(parse_config("{}"))["storage.tsdb.retention.size"] == "0B"
    assert go_time(0) == "1970-01-01T00:00:00Z"


def test_scrapers_are_passed_through_from_the_ingest_service():
    async def run():
        ingest = web.Application()

        async def scrapers(request):
            return web.json_response({"status": "success", "data": [{"scraper_id": "scraper-0", "node_ip": "10.0.0.1"}]})

        ingest.router.add_get("/api/v1/scrapers", scrapers)
        async with TestServer(ingest) as fake:
            st = MemoryStorage()
            app = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000, ingest_api=f"127.0.0.1:{fake.port}").app()
            bare = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000).app()
            async with TestClient(TestServer(app)) as client, TestClient(TestServer(bare)) as unconfigured:
                a = await client.get("/api/v1/scrapers")
                b = await unconfigured.get("/api/v1/scrapers")
                c = await unconfigured.get("/api/v1/status/flags")
                return a.status, await a.json(), b.status, await b.json(), c.status

    s1, body, s2, body2, s3 = asyncio.run(run())
    assert s1 == 200 and body["data"] == [{"scraper_id": "scraper-0", "node_ip": "10.0.0.1"}]
    assert s2 == 503 and body2["errorType"] == "unavailable"
    assert s3 == 404  # without a configuration (tests), the status APIs are not served
