"""The push API's admin endpoint: ``PUT /api/v1/admin/wipe`` answers 403 unless ``web.enable_admin_api``."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from shardmon.ingest.pushgateway import PushStore
from shardmon.ingest.receiver import ADMIN_DISABLED, Receiver
from shardmon.model.config import parse_config


def _wipe(config_text: str):
    config = parse_config(config_text + "\nreceiver: {}\n")
    store = PushStore(None)
    receiver = Receiver(config, None, store)  # the wipe sends nothing to the shards: no forwarder needed

    async def main():
        async with TestClient(TestServer(receiver.pushgateway_app())) as client:
            pushed = await client.put("/metrics/job/batch", data=b"some_metric 3.14\n")
            wiped = await client.put("/api/v1/admin/wipe")
            body = await wiped.text()
            listed = await (await client.get("/api/v1/metrics")).json()
            return pushed.status, wiped.status, wiped.headers.get("Content-Type", ""), body, listed["data"]

    return asyncio.run(main())


def test_wipe_is_refused_with_403_while_the_admin_api_is_off_and_nothing_is_lost():
    pushed, status, ctype, body, groups = _wipe("")
    assert pushed == 200
    # Prometheus's body for its disabled admin API (errorType unavailable), with 403 as the status.
    assert status == 403 and ctype.startswith("application/json")
    assert '"errorType": "unavailable"' in body and ADMIN_DISABLED in body
    assert "web.enable_admin_api: true" in ADMIN_DISABLED
    assert len(groups) == 1


def test_wipe_works_with_the_admin_api_on():
    pushed, status, _, _, groups = _wipe("web: {enable_admin_api: true}")
    assert pushed == 200 and status == 202
    assert groups == []
