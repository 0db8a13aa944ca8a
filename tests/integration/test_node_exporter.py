"""Real exporters through a real scrape loop: what is stored is exactly what the body said.

Three real targets: Debian's ``prometheus-node-exporter``, a real Prometheus's own ``/metrics`` (both
answer Prometheus's Accept header with the text format, gzip-compressed) and an exporter written with
``prometheus_client`` that negotiates OpenMetrics (``_created`` series, exemplars, info and stateset
families). Each is scraped by a :class:`~shardmon.ingest.scrape_loop.ScrapeLoop` into an in-memory storage.

Fetching the body again to compare would race with the exporter (its values move), so the loop hands
over the very body it parsed (``on_body``). That body is parsed a second time by an independent parser
(``prometheus_client``'s), the target's labels and the metric relabeling are applied by hand, and the
result must equal what was stored at that scrape's timestamp: the same series, the same values. Over two
scrapes, ``scrape_series_added`` and the staleness markers of vanished series are checked too.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om_reference
from prometheus_client.parser import text_string_to_metric_families as parse_text_reference

from shardmon.ingest.scrape_loop import ScrapeLoop
from shardmon.ingest.target import Target, targets_from_config
from shardmon.ingest.target_series import SYNTHETIC
from shardmon.model.config import parse_config
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from tests.integration.procs import free_port, proc, prometheus_proc

# Drop the Go runtime's series, rename node_load1 & co.: relabeling is part of what must match.
RELABEL = """    metric_relabel_configs:
      - {source_labels: [__name__], regex: "go_.*", action: drop}
      - {source_labels: [__name__], regex: "node_load(.*)", target_label: __name__, replacement: "load_$1"}
"""


def relabel_by_hand(name: str) -> str | None:
    if name.startswith("go_"):
        return None
    if name.startswith("node_load"):
        return "load_" + name[len("node_load"):]
    return name


def _target(address: str, job: str) -> Target:
    (t,) = targets_from_config(parse_config(f"""
scrape_configs:
  - job_name: {job}
    scrape_interval: 1s
    static_configs: [{{targets: ["{address}"]}}]
{RELABEL}"""))
    return t


def _expected(body: bytes, content_type: str, target: Target) -> tuple[dict[Labels, float], int]:
    """What the body says, parsed by prometheus_client: final labels -> value, and the samples scraped."""
    om = content_type.startswith("application/openmetrics-text")
    families = (parse_om_reference if om else parse_text_reference)(body.decode())
    out: dict[Labels, float] = {}
    scraped = 0
    for family in families:
        for sample in family.samples:
            scraped += 1
            assert sample.timestamp is None, "these exporters expose no timestamps"
            name = relabel_by_hand(sample.name)
            if name is None:
                continue
            assert not {"job", "instance"} & set(sample.labels), "no exposed label conflicts with the target's"
            labels = Labels.from_dict({**sample.labels, "__name__": name, **target.labels.to_dict()})
            out.setdefault(labels, float(sample.value))
    return out, scraped


def _stored_at(storage: MemoryStorage, ts_ms: int) -> dict[Labels, float]:
    series = storage.select([Matcher(MatchType.RE, "__name__", ".+")], ts_ms, ts_ms).series
    return {s.labels: float(s.values[0]) for s in series if not is_stale(s.values[:1]).any()}


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


async def _scrape_and_compare(target: Target, scrapes: int = 2) -> list[str]:
    """Scrape ``target`` ``scrapes`` times, checking each scrape against its body; returns the Content-Types."""
    storage = MemoryStorage()
    bodies: list[tuple[bytes, str]] = []
    previous: dict[Labels, float] = {}
    async with aiohttp.ClientSession(auto_decompress=True) as session:
        loop = ScrapeLoop(target, storage, session)
        loop.on_body = lambda body, ct: bodies.append((body, ct))
        for i in range(scrapes):
            if i:
                await asyncio.sleep(1.1)
            health = await loop.scrape_once()
            assert health.health == "up", health.last_error
            body, content_type = bodies[-1]
            expected, scraped = _expected(body, content_type, target)
            assert len(expected) > 10
            stored = _stored_at(storage, health.last_scrape_ms)
            synthetic = {k: stored.pop(k) for k in list(stored) if k.name in SYNTHETIC}
            assert set(stored) == set(expected), (set(stored) ^ set(expected))
            bad = [k for k in expected if not _same_value(stored[k], expected[k])]
            assert not bad, [(k, stored[k], expected[k]) for k in bad[:5]]
            report = {k.name: v for k, v in synthetic.items()}
            assert report["up"] == 1 and report["scrape_samples_scraped"] == scraped == health.samples
            assert report["scrape_samples_post_metric_relabeling"] == len(expected)
            assert report["scrape_series_added"] == len(set(expected) - set(previous))
            for gone in set(previous) - set(expected):  # Vanished since the last scrape: ended at this one.
                (s,) = storage.select([Matcher(MatchType.EQ, n, v) for n, v in gone], 0, 2**62).series
                assert is_stale(s.values[-1:]).all() and s.timestamps_ms[-1] == health.last_scrape_ms
            previous = expected
    return [ct for _, ct in bodies]


def test_node_exporter_series_are_stored_exactly_as_exposed(tmp_path):
    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter is not installed (scripts/setup.sh installs it)"
    port = free_port()
    node = proc("node-exporter", [exe, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                                  "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.stat",
                                  "--collector.filesystem", "--collector.netdev"], tmp_path, port).up()
    try:
        types = asyncio.run(_scrape_and_compare(_target(f"127.0.0.1:{port}", "node")))
    finally:
        node.stop()
    assert all(ct.startswith("text/plain") for ct in types)


def test_a_real_prometheus_own_metrics_are_stored_exactly_as_exposed(tmp_path):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    prometheus = prometheus_proc("prometheus", config, tmp_path / "data", port, tmp_path).up()
    try:
        # Between two scrapes Prometheus counts the first one in new series (its /metrics handler's).
        asyncio.run(_scrape_and_compare(_target(f"127.0.0.1:{port}", "prometheus")))
    finally:
        prometheus.stop()


def test_an_openmetrics_exporter_is_stored_exactly_as_exposed():
    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests.", ["code"], registry=registry)
    Gauge("temperature_celsius", "Temperature.", unit="celsius", registry=registry).set(21.5)
    latency = Histogram("latency_seconds", "Latency.", registry=registry)
    Summary("payload_bytes", "Payloads.", registry=registry).observe(512)
    Info("build", "Build.", registry=registry).info({"version": "1.2.3"})
    Enum("state", "State.", states=["up", "down"], registry=registry).state("down")
    gone = Gauge("vanishing", "Gone after the first scrape.", registry=registry)
    gone.set(1)
    requests.labels("200").inc(3, exemplar={"trace_id": "abc123"})
    latency.observe(0.2)

    async def main():
        served = 0

        async def handler(request):
            nonlocal served
            served += 1
            if served == 2:
                registry.unregister(gone)
                requests.labels("500").inc()
            encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
            return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

        port = free_port()
        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            return await _scrape_and_compare(_target(f"127.0.0.1:{port}", "py"))
        finally:
            await runner.cleanup()

    types = asyncio.run(main())
    assert all(ct.startswith("application/openmetrics-text") for ct in types), types


def test_prometheus_and_shardmon_store_the_same_node_exporter_series(tmp_path):
    """Differential: a real Prometheus 2.42 and a scrape loop scrape one node exporter with the same
    config; the series they hold (by name and labels, synthetic ones included) must be the same."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    exe, prom = shutil.which("prometheus-node-exporter"), shutil.which("prometheus")
    assert exe and prom, "prometheus and prometheus-node-exporter must be installed (scripts/setup.sh)"
    ne_port, p_port = free_port(), free_port()
    address = f"127.0.0.1:{ne_port}"
    scrape_config = f"""
  - job_name: node
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs: [{{targets: ["{address}"]}}]
{RELABEL}"""
    (tmp_path / "prometheus.yml").write_text("scrape_configs:" + scrape_config)
    node = proc("node-exporter", [exe, f"--web.listen-address={address}", "--collector.disable-defaults",
                                  "--collector.cpu", "--collector.meminfo", "--collector.loadavg"], tmp_path, ne_port).up()
    prometheus = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", p_port, tmp_path)
    try:
        prometheus.up()
        (target,) = targets_from_config(parse_config("scrape_configs:" + scrape_config))
        storage = MemoryStorage()

        async def scrape():
            async with aiohttp.ClientSession() as session:
                loop = ScrapeLoop(target, storage, session)
                for _ in range(3):
                    assert (await loop.scrape_once()).health == "up"
                    await asyncio.sleep(1)

        def prometheus_series() -> set[Labels]:
            query = urllib.parse.urlencode({"match[]": '{job="node"}', "start": time.time() - 600})
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{p_port}/api/v1/series?{query}") as r:
                    return {Labels.from_dict(s) for s in json.load(r)["data"]}
            except urllib.error.HTTPError as exc:  # 503 until its storage is ready
                if exc.code != 503:
                    raise
                return set()

        deadline = time.monotonic() + 30
        while not any(s.name == "node_cpu_seconds_total" for s in prometheus_series()):  # discovery takes ~5 s
            assert time.monotonic() < deadline, "Prometheus did not scrape the node exporter"
            time.sleep(0.5)
        asyncio.run(scrape())
        ours = {s.labels for s in storage.select([Matcher(MatchType.RE, "__name__", ".+")], 0, 2**62).series}
        theirs = prometheus_series()
    finally:
        prometheus.stop()
        node.stop()
    assert ours == theirs, (sorted(ours - theirs)[:10], sorted(theirs - ours)[:10])


def test_the_node_exporter_is_a_debian_package_the_setup_installs():
    text = (Path(__file__).resolve().parents[2] / "scripts" / "setup.sh").read_text()
    assert "prometheus-node-exporter" in text
    assert subprocess.run(["prometheus-node-exporter", "--version"], capture_output=True).returncode == 0
