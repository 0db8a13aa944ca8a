"""Native histograms in, for real: a real HTTP target (tests/native_hist_target.py) serving the protobuf format
built from Shardmon's compiled io.prometheus.client schema, scraped by the scrape loop, and scraped by Debian's
Prometheus 2.42 (--enable-feature=native-histograms) that remote-writes to a receiver endpoint decoding with
Shardmon's remote_write module. What reaches the Appender (the forwarder's side of the scrape loop) and what the
receiver decodes must equal what the target exposed, bucket for bucket."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from shardmon.ingest import remote_write
from shardmon.ingest.scrape_loop import ScrapeLoop
from shardmon.ingest.target import targets_from_config
from shardmon.model.config import parse_config
from shardmon.model.labels import Labels
from shardmon.model.samples import SampleBatch, concat, is_stale
from tests.integration.procs import free_port, prometheus_proc, wait_until
from tests.native_hist_target import NativeHistogramTarget


class Recording:
    """An Appender that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[SampleBatch] = []

    def append(self, batch: SampleBatch) -> None:
        self.batches.append(batch)


def hist_by_name(batch: SampleBatch) -> dict[str, list]:
    out: dict[str, list] = {}
    h = batch.histograms
    if h is None:
        return out
    for j in range(len(h)):
        labels = Labels.from_canonical(batch.series.key(int(h.sample_series[j])))
        out.setdefault(labels.get("__name__"), []).append(h.histogram(j))
    return out


def float_names(batch: SampleBatch) -> set[str]:
    return {Labels.from_canonical(batch.series.key(int(i))).get("__name__") for i in batch.sample_series}


def test_the_scrape_loop_stores_the_histograms_the_target_exposed():
    async def main(target):
        (t,) = targets_from_config(parse_config(f"""
ingest: {{native_histograms: true}}
scrape_configs:
  - job_name: hist
    scrape_interval: 1s
    static_configs: [{{targets: ["{target.address}"]}}]
"""))
        rec = Recording()
        async with aiohttp.ClientSession() as session:
            loop = ScrapeLoop(t, rec, session, native_histograms=True)
            healths = [await loop.scrape_once() for _ in range(3)]
            target.reset()
            healths.append(await loop.scrape_once())
        return rec, healths

    with NativeHistogramTarget() as target:
        rec, healths = asyncio.run(main(target))
    assert [h.health for h in healths] == ["up"] * 4, [h.last_error for h in healths]
    assert target.requests[0].startswith("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                                         "encoding=delimited;q=0.5,")
    assert [h.samples for h in healths] == [4] * 4  # three histograms and a counter: one sample each
    for batch, snapshot in zip(rec.batches, target.snapshots):
        got = hist_by_name(batch)
        assert got == {name: [h] for name, h in snapshot.items()}
        assert "test_latency_seconds_bucket" not in float_names(batch)  # scrape_classic_histograms is off
        assert "test_requests_total" in float_names(batch)
    assert rec.batches[-1].histograms.histogram(0).count < rec.batches[-2].histograms.histogram(0).count  # the reset


def test_classic_series_are_kept_too_with_scrape_classic_histograms_and_stale_markers_end_histograms():
    async def main(target):
        (t,) = targets_from_config(parse_config(f"""
ingest: {{native_histograms: true}}
scrape_configs:
  - job_name: hist
    scrape_interval: 1s
    scrape_classic_histograms: true
    static_configs: [{{targets: ["{target.address}"]}}]
"""))
        rec = Recording()
        async with aiohttp.ClientSession() as session:
            loop = ScrapeLoop(t, rec, session, native_histograms=True)
            first = await loop.scrape_once()
            await asyncio.sleep(0.01)
            target.stop()  # the target goes away: the next scrape fails and ends every series
            second = await loop.scrape_once()
        return rec, first, second

    target = NativeHistogramTarget().start()
    rec, first, second = asyncio.run(main(target))
    assert first.health == "up" and second.health == "down"
    names = float_names(rec.batches[0])
    assert {"test_latency_seconds_bucket", "test_latency_seconds_count", "test_latency_seconds_sum"} <= names
    assert "test_signed_value_count" not in names  # native only: no classic buckets, no classic series
    assert first.samples == 4 + 7  # the native ones and the counter, plus 4 buckets, +Inf, _count and _sum
    stale = concat(rec.batches[1:])
    stale_names = {Labels.from_canonical(stale.series.key(int(i))).get("__name__")
                   for i in stale.sample_series[is_stale(stale.values)]}
    assert {"test_latency_seconds", "test_signed_value", "test_float_ratio"} <= stale_names


def test_prometheus_remote_writes_the_same_histograms(tmp_path):
    received: list[SampleBatch] = []

    async def receive(request: web.Request) -> web.Response:
        decoded = remote_write.decode(await request.read())
        assert decoded.invalid_series == 0, decoded.invalid
        received.append(decoded.batch)
        return web.Response(status=204)

    async def main(target):
        port, p_port = free_port(), free_port()
        app = web.Application()
        app.router.add_post("/api/v1/write", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "hist", "static_configs": [{"targets": [target.address]}]}],
            "remote_write": [{"url": f"http://127.0.0.1:{port}/api/v1/write", "send_native_histograms": True,
                              "queue_config": {"batch_send_deadline": "1s"}}],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        prometheus = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", p_port, tmp_path,
                                     "--enable-feature=native-histograms")
        try:
            await asyncio.to_thread(prometheus.up)
            await asyncio.to_thread(wait_until, lambda: sum(b.num_histograms for b in received) >= 9, 60,
                                    "Prometheus's remote-written histograms")
        finally:
            await asyncio.to_thread(prometheus.stop)
            await runner.cleanup()

    with NativeHistogramTarget() as target:
        asyncio.run(main(target))
        snapshots = list(target.snapshots)
    assert any("application/vnd.google.protobuf" in a for a in target.requests)
    got: dict[str, list] = {}
    for batch in received:
        for name, hs in hist_by_name(batch).items():
            got.setdefault(name, []).extend(hs)
    # test_float_ratio is left out: Debian's Prometheus 2.42 scrapes it but never remote-writes it (observed: its
    # 2.42 storage keeps no float histograms from scrapes); the scrape loop test above covers it.
    for name in ("test_latency_seconds", "test_signed_value"):
        exposed = [s[name] for s in snapshots]
        assert got[name], name
        for h in got[name]:
            # Prometheus sends the integer ones as integer histograms and the float one as a float histogram;
            # the reset hint is its own (counter reset detection), the rest is what the target exposed.
            assert any(_same(h, e) for e in exposed), (name, h, exposed)


def _same(a, b) -> bool:
    fields = ("schema", "zero_threshold", "zero_count", "count", "sum", "positive_spans", "positive_buckets",
              "negative_spans", "negative_buckets", "is_int")
    return all(getattr(a, f) == getattr(b, f) for f in fields)
