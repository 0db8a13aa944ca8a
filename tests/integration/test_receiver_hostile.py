"""Hostile and broken input against a real receiver (with real shards, Redis and querier): bodies that
decode to far more than the limit, a body that takes seconds to decode, series over the label limits, a
10,000-group push storm; each is refused or answered within the issue's 5 s, the receiver keeps
answering meanwhile, a write right after is acknowledged and visible to a query within 5 s, and pushed
groups survive restarts (written on the persistence interval, and at shutdown)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import aiohttp
import cramjam
import pytest
import yaml

from ingest.remote_write import encode
from model.labels import Labels
from tests.integration.procs import Cluster, Proc, free_port, shardmon_proc, wait_until

MIB = 1 << 20
BOUND_S = 5.0  # The bound for every hostile request, and for a write to become visible.


def _request(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, str, float]:
    """(status, text, seconds taken)."""
    req = urllib.request.Request(url, data=body, method=method)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), time.monotonic() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.monotonic() - t0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("receiver-hostile")
    c = Cluster(tmp, n_shards=2, scrape_configs=[], receiver={"persistence_interval": "1s"}).start()
    yield c
    c.stop()


class Watch:
    """Polls ``/-/healthy`` from a thread while a hostile request runs: every answer must come in time."""

    def __init__(self, url: str) -> None:
        self.url, self.slowest, self.failures, self.polls = url, 0.0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _, took = _request("GET", self.url, timeout=BOUND_S)
                self.slowest = max(self.slowest, took)
                if status != 200:
                    self.failures.append(status)
            except OSError as exc:
                self.failures.append(repr(exc))
            self.polls += 1
            self._stop.wait(0.1)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.failures and self.slowest < BOUND_S and self.polls > 0, (self.failures, self.slowest)


def write_url(c: Cluster) -> str:
    return f"http://127.0.0.1:{c.receiver_port}/api/v1/write"


def query(c: Cluster, expr: str) -> dict:
    url = f"http://127.0.0.1:{c.http_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in body["data"]["result"]}


def assert_a_write_is_acknowledged_and_visible(c: Cluster, name: str) -> float:
    """Write one sample of ``name``: acknowledged (204), then visible to a query within 5 s. Returns when
    it was acknowledged (time.monotonic)."""
    now = int(time.time() * 1000)
    status, text, _ = _request("POST", write_url(c), encode([(Labels.from_dict({"__name__": name}), [(now, 7.0)])]))
    assert status == 204, text
    acknowledged = time.monotonic()
    wait_until(lambda: query(c, name) == {frozenset({"__name__": name}.items()): 7.0}, BOUND_S, f"{name} visible")
    assert time.monotonic() - acknowledged < BOUND_S
    return acknowledged


def metric(c: Cluster, port: int, name: str) -> dict[str, float]:
    """The receiver's own metric ``name``: labels text -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        out = {}
        for line in resp.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                head, value = line.rsplit(" ", 1)
                out[head[len(name):]] = float(value)
        return out


def with_header(body: bytes, declared: int) -> bytes:
    """A snappy body whose header declares ``declared`` decoded bytes instead of its own."""
    old = 0
    while body[old] & 0x80:
        old += 1
    header = bytearray()
    while True:
        byte, declared = declared & 0x7F, declared >> 7
        header.append(byte | (0x80 if declared else 0))
        if not declared:
            break
    return bytes(header) + body[old + 1 :]


# -- remote write ----------------------------------------------------------------------------------


def test_a_body_that_decodes_to_512_mib_is_refused_at_once_and_nothing_stops(cluster):
    now_ms = int(time.time() * 1000)
    status, text, _ = _request("POST", write_url(cluster), encode([(Labels.from_dict({"__name__": "kept_before"}), [(now_ms, 1.0)])]))
    assert status == 204, text
    honest = bytes(cramjam.snappy.compress_raw(bytes(512 * MIB)))  # About 24 MiB that really decode to 512 MiB.
    liar = with_header(bytes(cramjam.snappy.compress_raw(bytes(256 * MIB))), 512 * MIB)  # 12 MB, header says 512 MiB.
    assert 11 * MIB < len(liar) < 13 * MIB
    with Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy"):
        for body in (honest, liar):
            status, text, took = _request("POST", write_url(cluster), body)
            assert status == 413 and took < BOUND_S, (status, text, took)
            assert "decodes to 536870912 bytes" in text and "receiver.max_decoded_body_bytes" in text
        assert_a_write_is_acknowledged_and_visible(cluster, "written_after_a_bomb")
    refused = metric(cluster, cluster.receiver_port, "shardmon_receiver_refused_requests_total")
    assert refused['{handler="remote_write",reason="decoded_body_too_large"}'] >= 2
    assert query(cluster, "kept_before") == {frozenset({"__name__": "kept_before"}.items()): 1.0}  # Intact.


def test_a_compressed_body_over_the_limit_is_refused_unread(cluster):
    body = b"\x00" * (40 * MIB)  # Over 32 MiB + 32 MiB/6: more than snappy would ever need.
    status, text, took = _request("POST", write_url(cluster), body)
    assert status == 413 and took < BOUND_S and "exceeds the limit" in text, (status, text)


def test_a_body_that_takes_seconds_to_decode_does_not_stop_the_receiver(cluster):
    # 200,000 series with invalid names: seconds of decoding, nothing to write (a 400 naming them).
    slow = encode([(Labels.from_dict({"__name__": f"0bad{i}", "k": "v" * 20}), [(1, 1.0)]) for i in range(200_000)])
    result: list = []

    def post_slow() -> None:
        result.append(_request("POST", write_url(cluster), slow, timeout=120))
        result.append(time.monotonic())

    t = threading.Thread(target=post_slow)
    with Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy") as watch:
        t.start()
        time.sleep(0.3)
        acknowledged = assert_a_write_is_acknowledged_and_visible(cluster, "written_while_decoding")
        t.join(120)
    (status, text, took), slow_done = result
    assert acknowledged < slow_done  # The small write went through while the big body was being decoded.
    assert status == 400 and "200000 series with invalid labels" in text and len(text) < 2000, (status, text[:300])
    assert watch.polls >= 3


def test_series_over_the_label_limits_are_refused_and_the_rest_written(cluster):
    now = int(time.time() * 1000)
    body = encode([
        (Labels.from_dict({"__name__": "rw_limited", **{f"l{i}": "v" for i in range(30)}}), [(now, 1.0)]),
        (Labels.from_dict({"__name__": "rw_limited", "k": "v" * 5000}), [(now, 2.0)]),
        (Labels.from_dict({"__name__": "rw_unlimited", "k": "v" * 2048}), [(now, 3.0)]),
    ])
    status, text, _ = _request("POST", write_url(cluster), body)
    assert status == 400 and "2 series with invalid labels or over a label limit were dropped" in text
    assert "label_limit exceeded (metric: rw_limited, number of labels: 31, limit: 30)" in text
    assert "label_value_length_limit exceeded" in text and "length: 5000, limit: 2048" in text
    wait_until(lambda: len(query(cluster, "rw_unlimited")) == 1, BOUND_S, "the series within the limits")
    assert query(cluster, "rw_limited") == {}
    refused = metric(cluster, cluster.receiver_port, "shardmon_receiver_refused_series_total")
    assert refused['{reason="label_limit"}'] >= 1 and refused['{reason="label_value_length_limit"}'] >= 1


def test_a_real_prometheus_does_not_retry_a_body_refused_as_too_large(cluster):
    """413 is final for a sender: Debian's Prometheus 2.42, remote-writing its own metrics to a receiver
    whose limit every batch exceeds, drops them as failed and never retries them."""
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    tmp = cluster.tmp / "prom-413"
    tmp.mkdir()
    port, prom_port = free_port(), free_port()
    raw = yaml.safe_load(cluster.config_path.read_text())
    raw["receiver"].update({"http_address": f"127.0.0.1:{port}", "pushgateway_address": None,
                            "persistence_file": None, "max_decoded_body_bytes": "1KB"})
    (tmp / "shardmon.yml").write_text(yaml.safe_dump(raw))
    receiver = shardmon_proc("receiver-1kb", ["receiver"], tmp / "shardmon.yml", tmp, port).start()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]}],
        "remote_write": [{"url": f"http://127.0.0.1:{port}/api/v1/write",
                          "queue_config": {"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "200ms"}}],
    }))
    prom = Proc("prometheus-413", [exe, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], tmp, prom_port).start()
    try:
        def prom_metric(name: str) -> float | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=10) as resp:
                values = [float(line.rsplit(" ", 1)[1]) for line in resp.read().decode().splitlines()
                          if line.startswith(name + "{") or line.startswith(name + " ")]
            return sum(values) if values else None

        wait_until(lambda: (prom_metric("prometheus_remote_storage_samples_failed_total") or 0) > 0, 30, "failed samples")
        time.sleep(3)  # Time for any retry to show.
        assert prom_metric("prometheus_remote_storage_samples_retried_total") == 0
        refused = metric(cluster, port, "shardmon_receiver_refused_requests_total")
        # Compressed, its batches are already larger than snappy needs for 1 KiB: refused unread, 413 too.
        assert refused.get('{handler="remote_write",reason="body_too_large"}', 0) + refused.get(
            '{handler="remote_write",reason="decoded_body_too_large"}', 0) >= 1
    finally:
        prom.stop()
        receiver.stop()


# -- pushes ----------------------------------------------------------------------------------------


async def _storm(base: str, n: int, concurrency: int = 32) -> list[tuple[int, float]]:
    """``n`` pushes, each to a group of its own, ``concurrency`` at a time: (status, seconds) of each."""
    out: list[tuple[int, float]] = []
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(i: int) -> None:
            async with sem:
                t0 = time.monotonic()
                async with session.put(f"{base}/metrics/job/storm/instance/i{i}",
                                       data=f'# TYPE storm_metric gauge\nstorm_metric{{n="{i}"}} {i}\n') as resp:
                    await resp.read()
                    out.append((resp.status, time.monotonic() - t0))

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


def test_a_10000_group_push_storm_is_answered_in_time_and_then_bounded(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    with Watch(f"{pg}/-/healthy"), Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy"):
        results = asyncio.run(_storm(pg, 10_000))
        assert_a_write_is_acknowledged_and_visible(cluster, "written_after_a_storm")
    assert len(results) == 10_000 and {s for s, _ in results} == {200}
    assert max(t for _, t in results) < BOUND_S
    # The store is full (receiver.max_push_groups: 10,000 by default): one more group is refused ...
    status, text, took = _request("PUT", f"{pg}/metrics/job/storm/instance/one_more", b"storm_metric 1\n")
    assert status == 400 and "receiver.max_push_groups" in text and took < BOUND_S, (status, text)
    # ... while replacing and deleting existing groups work, and deleting makes room.
    assert _request("PUT", f"{pg}/metrics/job/storm/instance/i5", b'# TYPE storm_metric gauge\nstorm_metric{n="5"} 55\n')[0] == 200
    assert _request("DELETE", f"{pg}/metrics/job/storm/instance/i6")[0] == 202
    assert _request("PUT", f"{pg}/metrics/job/storm/instance/one_more", b"# TYPE storm_metric gauge\nstorm_metric 1\n")[0] == 200
    status, exposed, took = _request("GET", f"{pg}/metrics")
    assert status == 200 and took < BOUND_S and exposed.count("\npush_time_seconds{") == 10_000
    assert 'storm_metric{instance="i5",job="storm",n="5"} 55.0' in exposed
    refused = metric(cluster, cluster.receiver_port, "shardmon_receiver_refused_requests_total")
    assert refused['{handler="push",reason="max_push_groups"}'] >= 1
    assert metric(cluster, cluster.receiver_port, "shardmon_receiver_push_groups")[""] == 10_000


def test_a_gzip_bomb_pushed_is_refused_in_time(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(bytes(1 << 30)) + packer.flush()  # 1 MB that would inflate to 1 GiB.
    req = urllib.request.Request(f"{pg}/metrics/job/bomb", data=bomb, method="PUT", headers={"Content-Encoding": "gzip"})
    t0 = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 413 and time.monotonic() - t0 < BOUND_S
    refused = metric(cluster, cluster.receiver_port, "shardmon_receiver_refused_requests_total")
    assert refused['{handler="push",reason="body_too_large"}'] >= 1


def test_groups_are_persisted_on_the_interval_and_survive_a_kill(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    _request("DELETE", f"{pg}/metrics/job/storm/instance/i7")  # Room for one more group, if the storm ran.
    assert _request("PUT", f"{pg}/metrics/job/durable/instance/on_interval", b"kept_on_interval 5\n")[0] == 200
    path = cluster.tmp / "pushgateway.json"
    wait_until(lambda: b"on_interval" in path.read_bytes() if path.exists() else None, 10, "the interval's write")
    cluster.receiver.kill()  # SIGKILL: no shutdown write; what the interval wrote must do.
    cluster.restart_receiver()
    status, text, _ = _request("GET", f"{pg}/metrics")
    assert status == 200 and 'kept_on_interval{instance="on_interval",job="durable"} 5.0' in text


def test_groups_pushed_right_before_a_clean_shutdown_survive_it(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    _request("DELETE", f"{pg}/metrics/job/storm/instance/i8")
    assert _request("PUT", f"{pg}/metrics/job/durable/instance/at_shutdown", b"kept_at_shutdown 6\n")[0] == 200
    cluster.receiver.stop()  # SIGTERM, at once: the shutdown writes the groups.
    cluster.restart_receiver()
    status, text, _ = _request("GET", f"{pg}/metrics")
    assert status == 200 and 'kept_at_shutdown{instance="at_shutdown",job="durable"} 6.0' in text
