"""http_sd_configs against a local aiohttp endpoint: groups, __meta_url, removed groups, failures that
keep the last groups, authentication headers and the refresh-interval header."""

import asyncio
import base64
import json

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shardmon.ingest.discovery import TargetGroup
from shardmon.ingest.discovery.http import HTTPDiscoverer, HTTPDiscoveryError
from shardmon.model.sd_config import HTTPSDConfig


def _failures() -> float:
    return REGISTRY.get_sample_value("shardmon_sd_http_failures_total") or 0.0


class Endpoint:
    def __init__(self):
        self.body = "[]"
        self.status = 200
        self.content_type = "application/json"
        self.requests = []

    async def handle(self, request):
        self.requests.append(dict(request.headers))
        return web.Response(text=self.body, status=self.status, headers={"Content-Type": self.content_type})


async def _serve(endpoint):
    app = web.Application()
    app.router.add_get("/sd", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/sd"


def test_fetch_groups_removed_groups_and_failures():
    async def main():
        ep = Endpoint()
        runner, url = await _serve(ep)
        d = HTTPDiscoverer(HTTPSDConfig(url=url, refresh_interval="15s"))
        try:
            async with aiohttp.ClientSession() as s:
                ep.body = json.dumps([{"targets": ["a:1", "b:1"], "labels": {"env": "prod"}}, {"targets": ["c:1"]}])
                assert await d.fetch(s) == [
                    TargetGroup(f"{url}:0", [{"__address__": "a:1"}, {"__address__": "b:1"}],
                                {"env": "prod", "__meta_url": url}),
                    TargetGroup(f"{url}:1", [{"__address__": "c:1"}], {"__meta_url": url}),
                ]
                h = ep.requests[-1]
                assert h["Accept"] == "application/json"
                assert h["X-Prometheus-Refresh-Interval-Seconds"] == "15"
                ep.body = json.dumps([{"targets": ["c:1"]}])
                assert await d.fetch(s) == [
                    TargetGroup(f"{url}:0", [{"__address__": "c:1"}], {"__meta_url": url}),
                    TargetGroup(f"{url}:1", [], {}),
                ]
                ep.status = 500
                with pytest.raises(HTTPDiscoveryError, match="HTTP status 500"):
                    await d.fetch(s)
                ep.status, ep.content_type = 200, "text/plain"
                with pytest.raises(HTTPDiscoveryError, match="unsupported content type"):
                    await d.fetch(s)
                ep.content_type = "application/json; charset=utf-8"
                ep.body = "[{\"targets\": "
                with pytest.raises(HTTPDiscoveryError):
                    await d.fetch(s)
                ep.body = "[]"
                assert await d.fetch(s) == [TargetGroup(f"{url}:0", [], {})]
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_run_keeps_last_groups_on_failure_and_counts_it():
    async def main():
        ep = Endpoint()
        ep.body = json.dumps([{"targets": ["a:1"]}])
        runner, url = await _serve(ep)
        sent = []
        before = _failures()
        task = asyncio.create_task(HTTPDiscoverer(HTTPSDConfig(url=url, refresh_interval="20ms")).run(sent.append))
        try:
            for _ in range(200):
                if sent:
                    break
                await asyncio.sleep(0.01)
            ep.status = 503
            await asyncio.sleep(0.05)  # a refresh in flight may still have succeeded
            n = len(sent)
            await asyncio.sleep(0.1)
            assert len(sent) == n  # failures send nothing: the last groups stay
            assert _failures() >= before + 2
        finally:
            task.cancel()
            await runner.cleanup()
        return sent

    sent = asyncio.run(main())
    assert sent[0][0].targets == [{"__address__": "a:1"}]


@pytest.mark.parametrize("extra,header", [
    ({"basic_auth": {"username": "u", "password": "p"}}, "Basic " + base64.b64encode(b"u:p").decode()),
    ({"authorization": {"credentials": "tok"}}, "Bearer tok"),
    ({"authorization": {"type": "Token", "credentials": "tok"}}, "Token tok"),
    ({"bearer_token": "legacy"}, "Bearer legacy"),
])
def test_authentication_headers(extra, header):
    async def main():
        ep = Endpoint()
        runner, url = await _serve(ep)
        try:
            async with aiohttp.ClientSession() as s:
                await HTTPDiscoverer(HTTPSDConfig(url=url, **extra)).fetch(s)
        finally:
            await runner.cleanup()
        return ep.requests[-1]["Authorization"]

    assert asyncio.run(main()) == header


def test_credentials_file_is_read_per_request(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("one\n")

    async def main():
        ep = Endpoint()
        runner, url = await _serve(ep)
        d = HTTPDiscoverer(HTTPSDConfig(url=url, authorization={"credentials_file": str(secret)}))
        try:
            async with aiohttp.ClientSession() as s:
                await d.fetch(s)
                secret.write_text("two")
                await d.fetch(s)
                secret.unlink()
                with pytest.raises(HTTPDiscoveryError):
                    await d.fetch(s)
        finally:
            await runner.cleanup()
        return [r["Authorization"] for r in ep.requests]

    assert asyncio.run(main()) == ["Bearer one", "Bearer two"]
