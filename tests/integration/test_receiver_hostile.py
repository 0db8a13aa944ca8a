"""Hostile and broken input against a real receiver (with real shards, Redis and querier): bodies that
decode to far more than the limit, a body that takes seconds to decode, series over the label limits, a
10,000-group push storm; each is refused or answered within the issue's 5 s, the receiver keeps
answering meanwhile, a write right after is acknowledged and visible to a query within 5 s, and pushed
groups survive restarts (written on the persistence interval, and at shutdown)."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
import zlib

import cramjam
import pytest
import yaml

from shardmon.ingest.remote_write import encode
from shardmon.model.labels import Labels
from tests.integration.httpapi import assert_written_and_visible, metric, push_storm, request, snappy_declaring, vector
from tests.integration.procs import Cluster, free_port, prometheus_proc, shardmon_proc, wait_until

MIB = 1 << 20
BOUND_S = 5.0  # The bound for every hostile request, and for a write to become visible.


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
                r = request("GET", self.url, timeout=BOUND_S)
                self.slowest = max(self.slowest, r.seconds)
                if r.status != 200:
                    self.failures.append(r.status)
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
    return vector(f"http://127.0.0.1:{c.http_port}", expr)


def assert_a_write_is_acknowledged_and_visible(c: Cluster, name: str) -> float:
    """Write one sample of ``name``: acknowledged (204), then visible to a query within 5 s. Returns when
    it was acknowledged (time.monotonic)."""
    return assert_written_and_visible(write_url(c), f"http://127.0.0.1:{c.http_port}", name, 7.0, BOUND_S)


def receiver_metric(c: Cluster, name: str, port: int | None = None, **labels: str) -> float:
    """The receiver's own metric ``name`` with these labels (summed); 0 when it has none."""
    return metric(f"http://127.0.0.1:{port or c.receiver_port}", name, **labels)


# -- remote write ----------------------------------------------------------------------------------


def test_a_body_that_decodes_to_512_mib_is_refused_at_once_and_nothing_stops(cluster):
    now_ms = int(time.time() * 1000)
    r = request("POST", write_url(cluster), encode([(Labels.from_dict({"__name__": "kept_before"}), [(now_ms, 1.0)])]))
    assert r.status == 204, r.text
    honest = bytes(cramjam.snappy.compress_raw(bytes(512 * MIB)))  # About 24 MiB that really decode to 512 MiB.
    liar = snappy_declaring(bytes(cramjam.snappy.compress_raw(bytes(256 * MIB))), 512 * MIB)  # 12 MB, header says 512 MiB.
    assert 11 * MIB < len(liar) < 13 * MIB
    with Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy"):
        for body in (honest, liar):
            r = request("POST", write_url(cluster), body, timeout=30)
            assert r.status == 413 and r.seconds < BOUND_S, (r.status, r.text, r.seconds)
            assert "decodes to 536870912 bytes" in r.text and "receiver.max_decoded_body_bytes" in r.text
        assert_a_write_is_acknowledged_and_visible(cluster, "written_after_a_bomb")
    assert receiver_metric(cluster, "shardmon_receiver_refused_requests_total", handler="remote_write",
                           reason="decoded_body_too_large") >= 2
    assert query(cluster, "kept_before") == {frozenset({"__name__": "kept_before"}.items()): 1.0}  # Intact.


def test_a_compressed_body_over_the_limit_is_refused_unread(cluster):
    body = b"\x00" * (40 * MIB)  # Over 32 MiB + 32 MiB/6: more than snappy would ever need.
    r = request("POST", write_url(cluster), body, timeout=30)
    assert r.status == 413 and r.seconds < BOUND_S and "exceeds the limit" in r.text, (r.status, r.text)


def test_a_body_that_takes_seconds_to_decode_does_not_stop_the_receiver(cluster):
    # 200,000 series with invalid names: seconds of decoding, nothing to write (a 400 naming them).
    slow = encode([(Labels.from_dict({"__name__": f"0bad{i}", "k": "v" * 20}), [(1, 1.0)]) for i in range(200_000)])
    result: list = []

    def post_slow() -> None:
        result.append(request("POST", write_url(cluster), slow, timeout=120))
        result.append(time.monotonic())

    t = threading.Thread(target=post_slow)
    with Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy") as watch:
        t.start()
        time.sleep(0.3)
        acknowledged = assert_a_write_is_acknowledged_and_visible(cluster, "written_while_decoding")
        t.join(120)
    r, slow_done = result
    assert acknowledged < slow_done  # The small write went through while the big body was being decoded.
    assert r.status == 400 and "200000 series with invalid labels" in r.text and len(r.text) < 2000, (
        r.status, r.text[:300])
    assert watch.polls >= 3


def test_series_over_the_label_limits_are_refused_and_the_rest_written(cluster):
    now = int(time.time() * 1000)
    body = encode([
        (Labels.from_dict({"__name__": "rw_limited", **{f"l{i}": "v" for i in range(30)}}), [(now, 1.0)]),
        (Labels.from_dict({"__name__": "rw_limited", "k": "v" * 5000}), [(now, 2.0)]),
        (Labels.from_dict({"__name__": "rw_unlimited", "k": "v" * 2048}), [(now, 3.0)]),
    ])
    r = request("POST", write_url(cluster), body, timeout=30)
    assert r.status == 400 and "2 series with invalid labels or over a label limit were dropped" in r.text
    assert "label_limit exceeded (metric: rw_limited, number of labels: 31, limit: 30)" in r.text
    assert "label_value_length_limit exceeded" in r.text and "length: 5000, limit: 2048" in r.text
    wait_until(lambda: len(query(cluster, "rw_unlimited")) == 1, BOUND_S, "the series within the limits")
    assert query(cluster, "rw_limited") == {}
    refused = "shardmon_receiver_refused_series_total"
    assert receiver_metric(cluster, refused, reason="label_limit") >= 1
    assert receiver_metric(cluster, refused, reason="label_value_length_limit") >= 1


def test_a_real_prometheus_does_not_retry_a_body_refused_as_too_large(cluster):
    """413 is final for a sender: Debian's Prometheus 2.42, remote-writing its own metrics to a receiver
    whose limit every batch exceeds, drops them as failed and never retries them."""
    tmp = cluster.tmp / "prom-413"
    tmp.mkdir()
    port, prom_port = free_port(), free_port()
    raw = yaml.safe_load(cluster.config_path.read_text())
    raw["receiver"].update({"http_address": f"127.0.0.1:{port}", "pushgateway_address": None,
                            "persistence_file": None, "max_decoded_body_bytes": "1KB"})
    (tmp / "shardmon.yml").write_text(yaml.safe_dump(raw))
    receiver = shardmon_proc("receiver-1kb", ["receiver"], tmp / "shardmon.yml", tmp, port).up()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]}],
        "remote_write": [{"url": f"http://127.0.0.1:{port}/api/v1/write",
                          "queue_config": {"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "200ms"}}],
    }))
    prom = prometheus_proc("prometheus-413", tmp / "prometheus.yml", tmp / "data", prom_port, tmp,
                           "--log.level=warn").up()
    try:
        def prom_metric(name: str) -> float | None:
            return metric(f"http://127.0.0.1:{prom_port}", name, default=None)

        wait_until(lambda: (prom_metric("prometheus_remote_storage_samples_failed_total") or 0) > 0, 30, "failed samples")
        time.sleep(3)  # Time for any retry to show.
        assert prom_metric("prometheus_remote_storage_samples_retried_total") == 0
        # Compressed, its batches are already larger than snappy needs for 1 KiB: refused unread, 413 too.
        assert sum(receiver_metric(cluster, "shardmon_receiver_refused_requests_total", port, handler="remote_write",
                                   reason=reason) for reason in ("body_too_large", "decoded_body_too_large")) >= 1
    finally:
        prom.stop()
        receiver.stop()


# -- pushes ----------------------------------------------------------------------------------------


def test_a_10000_group_push_storm_is_answered_in_time_and_then_bounded(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    with Watch(f"{pg}/-/healthy"), Watch(f"http://127.0.0.1:{cluster.receiver_port}/-/healthy"):
        results = asyncio.run(push_storm(pg, 10_000, lambda i: f'# TYPE storm_metric gauge\nstorm_metric{{n="{i}"}} {i}\n'))
        assert_a_write_is_acknowledged_and_visible(cluster, "written_after_a_storm")
    assert len(results) == 10_000 and {s for s, _ in results} == {200}
    assert max(t for _, t in results) < BOUND_S
    # The store is full (receiver.max_push_groups: 10,000 by default): one more group is refused ...
    r = request("PUT", f"{pg}/metrics/job/storm/instance/one_more", b"storm_metric 1\n", timeout=30)
    assert r.status == 400 and "receiver.max_push_groups" in r.text and r.seconds < BOUND_S, (r.status, r.text)
    # ... while replacing and deleting existing groups work, and deleting makes room.
    assert request("PUT", f"{pg}/metrics/job/storm/instance/i5", b'# TYPE storm_metric gauge\nstorm_metric{n="5"} 55\n',
                   timeout=30).status == 200
    assert request("DELETE", f"{pg}/metrics/job/storm/instance/i6", timeout=30).status == 202
    assert request("PUT", f"{pg}/metrics/job/storm/instance/one_more", b"# TYPE storm_metric gauge\nstorm_metric 1\n",
                   timeout=30).status == 200
    r = request("GET", f"{pg}/metrics", timeout=30)
    assert r.status == 200 and r.seconds < BOUND_S and r.text.count("\npush_time_seconds{") == 10_000
    assert 'storm_metric{instance="i5",job="storm",n="5"} 55.0' in r.text
    assert receiver_metric(cluster, "shardmon_receiver_refused_requests_total", handler="push",
                           reason="max_push_groups") >= 1
    assert receiver_metric(cluster, "shardmon_receiver_push_groups") == 10_000


def test_a_gzip_bomb_pushed_is_refused_in_time(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(bytes(1 << 30)) + packer.flush()  # 1 MB that would inflate to 1 GiB.
    req = urllib.request.Request(f"{pg}/metrics/job/bomb", data=bomb, method="PUT", headers={"Content-Encoding": "gzip"})
    t0 = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 413 and time.monotonic() - t0 < BOUND_S
    assert receiver_metric(cluster, "shardmon_receiver_refused_requests_total", handler="push",
                           reason="body_too_large") >= 1


def test_groups_are_persisted_on_the_interval_and_survive_a_kill(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    request("DELETE", f"{pg}/metrics/job/storm/instance/i7", timeout=30)  # Room for one more group, if the storm ran.
    assert request("PUT", f"{pg}/metrics/job/durable/instance/on_interval", b"kept_on_interval 5\n", timeout=30).status == 200
    path = cluster.tmp / "pushgateway.json"
    wait_until(lambda: b"on_interval" in path.read_bytes() if path.exists() else None, 10, "the interval's write")
    cluster.receiver.kill()  # SIGKILL: no shutdown write; what the interval wrote must do.
    cluster.restart_receiver()
    r = request("GET", f"{pg}/metrics", timeout=30)
    assert r.status == 200 and 'kept_on_interval{instance="on_interval",job="durable"} 5.0' in r.text


def test_groups_pushed_right_before_a_clean_shutdown_survive_it(cluster):
    pg = f"http://127.0.0.1:{cluster.pushgateway_port}"
    request("DELETE", f"{pg}/metrics/job/storm/instance/i8", timeout=30)
    assert request("PUT", f"{pg}/metrics/job/durable/instance/at_shutdown", b"kept_at_shutdown 6\n", timeout=30).status == 200
    cluster.receiver.stop()  # SIGTERM, at once: the shutdown writes the groups.
    cluster.restart_receiver()
    r = request("GET", f"{pg}/metrics", timeout=30)
    assert r.status == 200 and 'kept_at_shutdown{instance="at_shutdown",job="durable"} 6.0' in r.text
