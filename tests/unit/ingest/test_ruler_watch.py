"""Self-monitoring finds the ruler service and its rulers: static component ``rules``, and each ruler's
metrics address from ``GET /api/v1/rulers`` (kept while the service does not answer)."""

import asyncio
import json

from aiohttp import web

from shardmon.ingest import ruler_watch
from shardmon.ingest.ruler_watch import RulerWatch, metrics_addresses, rulers_url
from shardmon.ingest.target import self_targets, static_components
from shardmon.model.config import parse_config


def _config(address: str, *, rule_files=("/dev/null",), self_monitoring=True):
    return parse_config(
        f"rule_files: {json.dumps(list(rule_files))}\n"
        f"rules: {{http_address: '{address}'}}\n"
        f"ingest: {{self_monitoring: {str(self_monitoring).lower()}}}\n")


def test_the_ruler_service_is_a_static_component_only_with_rule_files():
    assert ("rules", "127.0.0.1:9093", "/metrics") in static_components(_config("127.0.0.1:9093"))
    assert not [c for c in static_components(_config("127.0.0.1:9093", rule_files=())) if c[0] == "rules"]


def test_the_rulers_url_needs_self_monitoring_rule_files_and_the_api():
    assert rulers_url(_config("127.0.0.1:9093")) == "http://127.0.0.1:9093/api/v1/rulers"
    assert rulers_url(_config("127.0.0.1:9093", self_monitoring=False)) is None
    assert rulers_url(_config("127.0.0.1:9093", rule_files=())) is None


def test_metrics_addresses_in_ruler_order():
    doc = {"status": "success", "data": [{"id": "ruler-1", "metrics_address": "10.0.0.2:4000"},
                                         {"id": "ruler-0", "metrics_address": "10.0.0.1:4000"},
                                         {"id": "ruler-2", "metrics_address": None}]}
    assert metrics_addresses(doc) == ["10.0.0.1:4000", "10.0.0.2:4000"]


def test_refresh_learns_the_rulers_and_keeps_them_while_the_service_is_down(monkeypatch):
    monkeypatch.setattr(ruler_watch, "POLL_INTERVAL_S", 0.0)
    rulers = [{"id": "ruler-0", "metrics_address": "127.0.0.1:4001"}]

    async def handler(request):
        return web.json_response({"status": "success", "data": rulers})

    async def scenario():
        app = web.Application()
        app.router.add_get("/api/v1/rulers", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        config = _config(f"127.0.0.1:{port}")
        watch = RulerWatch()
        assert await watch.refresh(config) is True
        assert watch.components() == [("ruler", "127.0.0.1:4001", "/metrics")]
        targets = self_targets(config, watch.components())
        assert [t.labels.to_dict() for t in targets] == [
            {"job": "shardmon", "instance": "127.0.0.1:4001", "component": "ruler"}]
        assert await watch.refresh(config) is False  # the same rulers
        await runner.cleanup()  # the service goes away: the last rulers stay, the failure is counted
        before = ruler_watch.ASKS.labels("error")._value.get()
        assert await watch.refresh(config) is False
        assert watch.addresses == ["127.0.0.1:4001"]
        assert ruler_watch.ASKS.labels("error")._value.get() == before + 1
        assert await watch.refresh(_config(f"127.0.0.1:{port}", rule_files=())) is True  # no rules any more
        assert watch.components() == []

    asyncio.run(scenario())
