"""Service discovery end to end: the ingest service scrapes what a file_sd file and an http_sd endpoint
list, and follows them as targets are added, changed and removed (seen in /api/v1/targets and in the
stored series), with relabeling applied and a relabel-dropped target listed as dropped."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web

from shardmon.model.labels import Matcher, MatchType
from shardmon.model.samples import is_stale
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import get_json
from tests.integration.procs import Cluster, CounterTargets, free_port, run_shardmon, wait_until

INTERVAL_S = 1.0


class HTTPSD:
    """An http_sd endpoint serving whatever list of groups the test sets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.groups: list[dict] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

        async def start():
            app = web.Application()
            async def serve(request: web.Request) -> web.Response:
                return web.json_response(self.groups)

            app.router.add_get("/sd", serve)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def _targets(cluster) -> dict:
    return get_json(f"{cluster.ingest_url}/api/v1/targets")["data"]


def _active(cluster, pool: str) -> dict[str, dict]:
    return {t["labels"]["instance"]: t for t in _targets(cluster)["activeTargets"] if t["scrapePool"] == pool}


def _stored(cluster) -> dict[str, tuple]:
    out = {}
    for i, port in enumerate(cluster.shard_ports):
        client = ShardClient(i, f"127.0.0.1:{port}")
        for s in client.series([Matcher(MatchType.EQ, "__name__", "test_scrapes_total")], 0, 2**62):
            out[(s.labels.get("job"), s.labels.get("instance"), s.labels.get("team"))] = (s.timestamps_ms, s.values)
        client.close()
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd")
    targets = CounterTargets(6).start()
    sd_file = tmp / "targets.json"
    sd_file.write_text(json.dumps([{"targets": targets.addresses()[:2], "labels": {"team": "a"}}]))
    http_sd = HTTPSD()
    http_sd.groups = [{"targets": [targets.addresses()[3]], "labels": {"team": "b"}}]
    scrape_configs = [
        {"job_name": "files", "scrape_interval": "1s", "scrape_timeout": "1s",
         "file_sd_configs": [{"files": [str(tmp / "*.json")], "refresh_interval": "1s"}],
         # Relabeling: drop a target labelled drop=yes; copy the discovered file path into a label.
         "relabel_configs": [{"source_labels": ["drop"], "regex": "yes", "action": "drop"},
                             {"source_labels": ["__meta_filepath"], "target_label": "sd_file", "regex": ".*/(.*)"}]},
        {"job_name": "http", "scrape_interval": "1s", "scrape_timeout": "1s",
         "http_sd_configs": [{"url": f"http://127.0.0.1:{http_sd.port}/sd", "refresh_interval": "1s"}]},
    ]
    cluster = Cluster(tmp, n_shards=1, scrape_configs=scrape_configs, ingest={"self_monitoring": False}).start()
    ingest = cluster.ingest()
    try:
        ingest.up(120)
        yield cluster, targets, sd_file, http_sd
    finally:
        ingest.stop()
        cluster.stop()
        http_sd.stop()
        targets.stop()


def test_file_and_http_discovery_add_change_and_remove_targets(setup):
    cluster, targets, sd_file, http_sd = setup
    a = targets.addresses()
    files = wait_until(lambda: (t := _active(cluster, "files")) and len(t) == 2 and t, 30, "file targets")
    assert set(files) == set(a[:2])
    t0 = files[a[0]]
    assert t0["labels"] == {"instance": a[0], "job": "files", "team": "a", "sd_file": "targets.json"}
    assert t0["discoveredLabels"]["__meta_filepath"] == str(sd_file)
    assert t0["scrapeInterval"] == "1s" and t0["scraper"].startswith("scraper-")
    wait_until(lambda: set(_active(cluster, "http")) == {a[3]}, 30, "the http target")
    wait_until(lambda: _active(cluster, "files")[a[0]]["health"] == "up", 30, "a first scrape")
    # The same through the querier's Prometheus API (which asks the ingest service) and the CLI.
    via_querier = get_json(f"http://127.0.0.1:{cluster.http_port}/api/v1/targets",
                           {"scrapePool": "files"})["data"]["activeTargets"]
    assert {t["labels"]["instance"] for t in via_querier} == set(a[:2])
    out = run_shardmon("targets", config=cluster.config_path, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if f"http://{a[0]}/metrics" in ln)
    assert "files" in line and " up " in line and "scraper-" in line

    # Add a target, change another's labels, drop one by relabeling, in the file; and in the HTTP list.
    sd_file.write_text(json.dumps([
        {"targets": [a[0]], "labels": {"team": "a"}},
        {"targets": [a[1]], "labels": {"team": "c"}},
        {"targets": [a[2]], "labels": {"team": "a"}},
        {"targets": [a[5]], "labels": {"team": "a", "drop": "yes"}},
    ]))
    http_sd.groups = [{"targets": [a[4]], "labels": {"team": "b"}}]
    files = wait_until(lambda: (t := _active(cluster, "files")) and len(t) == 3 and t, 30, "the file change")
    assert files[a[1]]["labels"]["team"] == "c" and a[2] in files
    dropped = [t["discoveredLabels"] for t in _targets(cluster)["droppedTargets"]]
    assert any(d["__address__"] == a[5] for d in dropped)
    wait_until(lambda: set(_active(cluster, "http")) == {a[4]}, 30, "the http change")
    time.sleep(4 * INTERVAL_S)

    stored = _stored(cluster)
    assert ("files", a[2], "a") in stored and ("http", a[4], "b") in stored  # added: scraped
    assert ("files", a[1], "c") in stored  # changed: a new series...
    assert is_stale(stored[("files", a[1], "a")][1][-1:]).all()  # ...and the old one ended
    assert is_stale(stored[("http", a[3], "b")][1][-1:]).all()  # removed: ended
    assert not any(key[1] == a[5] for key in stored)  # dropped by relabeling: never scraped

    # Remove the file: its targets go, their series end.
    sd_file.unlink()
    wait_until(lambda: not _active(cluster, "files"), 30, "the file's targets to go")
    time.sleep(3 * INTERVAL_S)
    stored = _stored(cluster)
    assert is_stale(stored[("files", a[0], "a")][1][-1:]).all()
