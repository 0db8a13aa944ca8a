"""The ingest API's handlers: the lifecycle endpoints (reload, scaling) answer as Prometheus's do when
``web.enable_lifecycle`` is off, and scaling is bounded by ``ingest.max_scrapers``."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from shardmon.ingest.api import LIFECYCLE_DISABLED, Coordinator, IngestAPI
from shardmon.model.config import parse_config
from shardmon.model.errors import BadRequestError, ConfigError


class FakeCoordinator:
    """Records the calls the API makes (the real one is a Ray actor)."""

    def __init__(self) -> None:
        self.calls: list = []

    def handle(self) -> Coordinator:
        def scale(n: int) -> dict:
            self.calls.append(("scale", n))
            if n == 13:
                raise BadRequestError("count 13 is more than ingest.max_scrapers (12)")
            return {"scrapers": n, "targets": 10, "moved": 2}

        def reload() -> dict:
            self.calls.append(("reload",))
            return {"jobs": ["a"], "restart_needed_for": []}

        return Coordinator(targets=lambda state, pool: {"activeTargets": [], "droppedTargets": []},
                           scrapers=lambda: [{"scraper_id": "scraper-0"}], scale=scale, reload=reload)


def _run(config_text: str, requests: list[tuple[str, str, dict | None]]):
    fake = FakeCoordinator()
    config = parse_config(config_text)
    api = IngestAPI(fake.handle(), lambda: config)

    async def main():
        out = []
        async with TestClient(TestServer(api.app())) as client:
            for method, path, data in requests:
                resp = await client.request(method, path, data=data)
                out.append((resp.status, resp.headers.get("Content-Type", ""), await resp.text()))
        return out

    return asyncio.run(main()), fake.calls


def test_reload_and_scaling_answer_403_until_the_lifecycle_api_is_enabled():
    answers, calls = _run("", [
        ("POST", "/-/reload", None), ("PUT", "/-/reload", None), ("GET", "/-/reload", None),
        ("POST", "/api/v1/scrapers", {"count": "3"}), ("PUT", "/api/v1/scrapers", {"count": "3"}),
        ("GET", "/api/v1/scrapers", None), ("GET", "/api/v1/targets", None),
    ])
    (post, put, get, scale_post, scale_put, scrapers, targets) = answers
    # Exactly Prometheus 2.42's answer (403, text/plain, "Lifecycle API is not enabled."), plus the field.
    for status, ctype, text in (post, put):
        assert status == 403 and ctype.startswith("text/plain")
        assert text.startswith("Lifecycle API is not enabled.") and "web.enable_lifecycle: true" in text
    assert get[0] == 405 and get[2] == "Only POST or PUT requests allowed"
    for status, ctype, text in (scale_post, scale_put):
        assert status == 403 and ctype.startswith("application/json")
        assert '"errorType": "unavailable"' in text and "web.enable_lifecycle" in text
    assert text.count(LIFECYCLE_DISABLED) == 1
    # Reading stays open; nothing reached the coordinator.
    assert scrapers[0] == 200 and targets[0] == 200
    assert calls == []


def test_with_the_lifecycle_api_on_reload_and_scaling_work_within_max_scrapers():
    answers, calls = _run("web: {enable_lifecycle: true}\ningest: {max_scrapers: 12}", [
        ("POST", "/-/reload", None),
        ("POST", "/api/v1/scrapers", {"count": "12"}),
        ("POST", "/api/v1/scrapers?count=100000", None),
        ("POST", "/api/v1/scrapers", {"count": "0"}),
        ("POST", "/api/v1/scrapers", {"count": "13"}),  # the coordinator's own bound, as it says it
    ])
    reload, ok, huge, zero, coordinator_bound = answers
    assert reload[0] == 200 and '"jobs": ["a"]' in reload[2]
    assert ok[0] == 200 and '"scrapers": 12' in ok[2]
    assert huge[0] == 400 and "count 100000 is more than ingest.max_scrapers (12)" in huge[2]
    assert '"errorType": "bad_data"' in huge[2]
    assert zero[0] == 400 and "at least 1" in zero[2]
    assert calls == [("reload",), ("scale", 12)]  # 13 is over the API's bound: never sent
    assert coordinator_bound[0] == 400


def test_a_bad_configuration_on_reload_is_a_400_and_refusals_are_counted():
    fake = FakeCoordinator()
    handle = fake.handle()

    def bad_reload() -> dict:
        raise ConfigError("scrape_configs[0].scrape_interval: not a valid duration string: '5x'")

    config = parse_config("web: {enable_lifecycle: false}")
    api = IngestAPI(handle._replace(reload=bad_reload), lambda: config)

    async def main():
        async with TestClient(TestServer(api.app())) as client:
            refused = await client.post("/-/reload")
            config_on = parse_config("web: {enable_lifecycle: true}")
            api.config = lambda: config_on  # a reload turned it on: the next request sees it
            bad = await client.post("/-/reload")
            metrics = await (await client.get("/metrics")).text()
            return refused.status, bad.status, await bad.json(), metrics

    refused, bad, body, metrics = asyncio.run(main())
    assert refused == 403
    assert bad == 400 and body["errorType"] == "bad_data" and "scrape_configs[0].scrape_interval" in body["error"]
    assert 'shardmon_ingest_api_requests_total{code="403",handler="reload"}' in metrics
    assert 'shardmon_ingest_api_requests_total{code="400",handler="reload"}' in metrics
