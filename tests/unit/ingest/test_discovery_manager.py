"""DiscoveryManager: on_update per job when its groups change, coalescing, reloads that keep unchanged
providers, removed jobs, callback failures."""

import asyncio
import json

from shardmon.ingest.discovery import TargetGroup
from shardmon.ingest.discovery.manager import DiscoveryManager
from shardmon.model.config import parse_config


def _configs(text):
    return parse_config(text).scrape_configs


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, job, groups):
        self.calls.append((job, groups))

    def last(self, job):
        return next(g for j, g in reversed(self.calls) if j == job)

    def count(self, job):
        return sum(1 for j, _ in self.calls if j == job)


async def _until(pred, timeout=3.0):
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_static_and_file_groups_delivered_and_updated(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"targets": ["f:1"], "labels": {"src": "file"}}]))
    cfg = _configs(f"""
scrape_configs:
- job_name: web
  static_configs: [{{targets: ['s:1']}}]
  file_sd_configs: [{{files: ['{tmp_path}/*.json']}}]
- job_name: other
  static_configs: [{{targets: ['o:1']}}]
""")

    async def main():
        rec = Recorder()
        async with DiscoveryManager(rec, update_interval=0.05, file_poll_interval=0.01) as m:
            await m.apply_config(cfg)
            await _until(lambda: rec.count("web") and len(rec.last("web")) == 2)
            assert rec.last("web") == [
                TargetGroup("0", [{"__address__": "s:1"}], {}),
                TargetGroup(f"{f}:0", [{"__address__": "f:1"}], {"src": "file", "__meta_filepath": str(f)}),
            ]
            assert rec.last("other") == [TargetGroup("0", [{"__address__": "o:1"}], {})]
            n_other = rec.count("other")
            f.write_text(json.dumps([{"targets": ["f:2"]}]))
            await _until(lambda: rec.last("web")[-1].targets == [{"__address__": "f:2"}])
            f.unlink()
            await _until(lambda: len(rec.last("web")) == 1)
            assert m.groups("web") == rec.last("web")
            assert rec.count("other") == n_other  # unchanged jobs are not delivered again

    asyncio.run(main())


class FakeDiscoverer:
    """A provider the test drives."""

    instances = []

    def __init__(self):
        self.send = None
        self.started = asyncio.Event()
        FakeDiscoverer.instances.append(self)

    async def run(self, send):
        self.send = send
        self.started.set()
        await asyncio.Event().wait()


def test_updates_are_coalesced_and_rate_limited(monkeypatch):
    cfg = _configs("""
scrape_configs:
- job_name: k
  kubernetes_sd_configs: [{role: pod, api_server: 'http://127.0.0.1:1'}]
""")
    FakeDiscoverer.instances = []
    monkeypatch.setattr("shardmon.ingest.discovery.manager.KubernetesDiscoverer", lambda *a, **k: FakeDiscoverer())

    async def main():
        rec = Recorder()
        m = DiscoveryManager(rec, update_interval=0.5, coalesce=0.02)
        await m.apply_config(cfg)
        (d,) = FakeDiscoverer.instances
        await d.started.wait()
        await _until(lambda: rec.count("k") == 1)
        assert rec.last("k") == []  # the initial, empty state
        d.send([TargetGroup("pod/a/1", [{"__address__": "1:1"}], {})])
        d.send([TargetGroup("pod/a/2", [{"__address__": "2:1"}], {})])
        d.send([TargetGroup("pod/a/3", [{"__address__": "3:1"}], {})])
        d.send([TargetGroup.empty("pod/a/2")])
        await _until(lambda: rec.count("k") == 2)
        assert [g.source for g in rec.last("k")] == ["pod/a/1", "pod/a/3"]  # one update for the burst
        d.send([TargetGroup("pod/a/1", [{"__address__": "1:2"}], {})])
        await asyncio.sleep(0.1)
        assert rec.count("k") == 2  # within update_interval: held back
        await _until(lambda: rec.count("k") == 3)
        assert rec.last("k")[0].targets == [{"__address__": "1:2"}]
        d.send([TargetGroup("pod/a/1", [{"__address__": "1:2"}], {})])  # the same again: no update
        await asyncio.sleep(0.7)
        assert rec.count("k") == 3
        await m.stop()

    asyncio.run(main())


def test_reload_keeps_unchanged_providers_and_drops_gone_jobs(monkeypatch):
    FakeDiscoverer.instances = []
    monkeypatch.setattr("shardmon.ingest.discovery.manager.KubernetesDiscoverer", lambda *a, **k: FakeDiscoverer())
    text = """
scrape_configs:
- job_name: k
  kubernetes_sd_configs: [{role: pod, api_server: 'http://127.0.0.1:1'}]
- job_name: gone
  static_configs: [{targets: ['g:1']}]
"""

    async def main():
        rec = Recorder()
        m = DiscoveryManager(rec, update_interval=0.02)
        await m.apply_config(_configs(text))
        (d,) = FakeDiscoverer.instances
        await d.started.wait()
        d.send([TargetGroup("pod/a/1", [{"__address__": "1:1"}], {})])
        await _until(lambda: rec.count("k") and rec.last("k") and rec.count("gone"))
        # Reload: same Kubernetes config (kept, with its groups), one more static target, job "gone" gone.
        await m.apply_config(_configs("""
scrape_configs:
- job_name: k
  static_configs: [{targets: ['s:1']}]
  kubernetes_sd_configs: [{role: pod, api_server: 'http://127.0.0.1:1'}]
"""))
        await _until(lambda: len(rec.last("k")) == 2)
        assert len(FakeDiscoverer.instances) == 1  # not restarted
        assert [g.source for g in rec.last("k")] == ["0", "pod/a/1"]
        await _until(lambda: rec.last("gone") == [])
        assert m.jobs() == ["k"]
        # A changed Kubernetes config replaces the provider: its groups go until the new one sends.
        await m.apply_config(_configs("""
scrape_configs:
- job_name: k
  kubernetes_sd_configs: [{role: service, api_server: 'http://127.0.0.1:1'}]
"""))
        await _until(lambda: rec.last("k") == [])
        assert len(FakeDiscoverer.instances) == 2
        await m.stop()

    asyncio.run(main())


def test_failing_callback_is_retried_and_async_callbacks_work():
    cfg = _configs("scrape_configs:\n- job_name: s\n  static_configs: [{targets: ['a:1']}]\n")

    async def main():
        calls = []

        async def on_update(job, groups):
            calls.append(groups)
            if len(calls) == 1:
                raise RuntimeError("coordinator busy")

        m = DiscoveryManager(on_update, update_interval=0.02)
        await m.apply_config(cfg)
        await _until(lambda: len(calls) == 2)
        assert calls[0] == calls[1]
        await asyncio.sleep(0.1)
        assert len(calls) == 2
        await m.stop()

    asyncio.run(main())
