"""Crash safety: shards SIGKILLed at random moments (and their Redis too) while writes go on.

Two shards on real redis-servers with AOF (`appendfsync always`), blocks cut every few seconds so
that kills land before, during and after block cuts and WAL trims. A writer per shard sends batches
and retries each one (same batch id) until it is acknowledged, as the scrapers' forwarders do. At
the end every acknowledged sample must be returned, bit for bit, exactly once: by each shard
directly (no replica merging hides a duplicate there) and by the querier's HTTP API.

``SHARDMON_CRASH_SECONDS`` sets how long the kills go on (default 60 s, and at least 20 kills).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from shardmon.model.errors import ShardmonError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import STALE_NAN, SampleBatch
from shardmon.shards.client import ShardClient
from tests.integration.procs import Cluster, redis_proc, wait_until

DURATION_S = float(os.environ.get("SHARDMON_CRASH_SECONDS", "30"))  # longer hunts: set it to 600
N_SERIES = 40
STEP_MS = 200  # data time per batch: with 10 s blocks, a block is cut about every 75 batches
MIN_KILLS = 12


class Writer(threading.Thread):
    """Writes batches of N_SERIES samples to one shard; each retried until acknowledged."""

    def __init__(self, shard: int, port: int, start_ms: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.shard, self.port, self.start_ms, self.stop = shard, port, start_ms, stop
        labels = [Labels.from_dict({"__name__": "crash", "shard": str(shard), "i": str(i)}) for i in range(N_SERIES)]
        self.labels = labels
        self.ids = np.array([ls.series_id() for ls in labels], dtype=np.uint64)
        self.keys = [ls.canonical() for ls in labels]
        self.acked: dict[Labels, list[tuple[int, float]]] = {ls: [] for ls in labels}
        self.batches = self.retries = 0
        self.rng = np.random.default_rng(shard)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _run(self) -> None:
        client = ShardClient(self.shard, f"127.0.0.1:{self.port}")
        step = 0
        while not self.stop.is_set():
            ts = self.start_ms + step * STEP_MS
            vals = self.rng.standard_normal(N_SERIES) * 1000
            if step % 97 == 96:  # now and then a staleness marker, which must come back bit for bit
                vals[step % N_SERIES] = STALE_NAN
            batch = SampleBatch.of(self.ids, self.keys, np.arange(N_SERIES, dtype=np.uint32),
                                   np.full(N_SERIES, ts, np.int64), vals)
            give_up = time.monotonic() + 120
            while True:
                try:
                    client.write(f"w{self.shard}-{step}", batch, timeout_s=2)
                    break
                except ShardmonError:
                    if time.monotonic() > give_up:
                        raise
                    self.retries += 1
                    time.sleep(0.05)
            for ls, v in zip(self.labels, vals.tolist()):
                self.acked[ls].append((ts, v))
            self.batches += 1
            step += 1
        client.close()


def _bits(values) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.uint64).tolist()


def _in_cut(log_text: str) -> bool:
    """Whether the shard's log ends inside a block cut: "cutting block" with no "cut block" after it."""
    return log_text.rfind("cutting block") > log_text.rfind("cut block ")


@pytest.fixture()
def cluster(tmp_path, monkeypatch):
    # Each cut pauses between encoding and its transaction (block write + WAL trim), so that random
    # kills land inside cuts too (the shards inherit this environment).
    monkeypatch.setenv("SHARDMON_FAULT_CUT_PAUSE_S", "0.2")
    c = Cluster(tmp_path, n_shards=2, scrape_configs=[],
                shards_extra={"block_duration": "10s", "wal_appendfsync": "always"})
    # An acknowledged write must survive a SIGKILL of Redis too: fsync every write.
    c.redis = [redis_proc(p, tmp_path / f"redis-{i}", c.logs, appendfsync="always") for i, p in enumerate(c.redis_ports)]
    c.start()
    yield c
    c.stop()


def test_acknowledged_samples_survive_random_sigkills_of_shards_and_redis(cluster):
    stop = threading.Event()
    start_ms = int(time.time() * 1000) - 3_600_000
    writers = [Writer(i, port, start_ms, stop) for i, port in enumerate(cluster.shard_ports)]
    for w in writers:
        w.start()

    rnd = random.Random(1234)
    kills = redis_kills = kills_in_cut = 0
    deadline = time.monotonic() + DURATION_S
    while time.monotonic() < deadline or kills < MIN_KILLS:
        time.sleep(rnd.uniform(0.5, 4.0))
        i = rnd.randrange(len(cluster.shards))
        if kills % 3 == 0:  # every third kill waits for a cut to begin, and strikes inside it
            log_path = cluster.logs / f"shard-{i}.log"
            wait_until(lambda p=log_path: _in_cut(p.read_text()), 30, "a block cut to begin", interval_s=0.01)
        cluster.shards[i].kill()  # SIGKILL: whatever it was doing (appending, cutting, trimming) stops here
        kills += 1
        if _in_cut((cluster.logs / f"shard-{i}.log").read_text()):
            kills_in_cut += 1
        if kills % 5 == 0:  # now and then its Redis dies too, and comes back from its AOF
            cluster.redis[i].kill()
            cluster.redis[i].up()
            redis_kills += 1
        time.sleep(rnd.uniform(0.0, 1.0))
        cluster.restart_shard(i)
        assert all(w.error is None for w in writers), [w.error for w in writers]
    time.sleep(2)
    stop.set()
    for w in writers:
        w.join(60)
        assert w.error is None, w.error
    assert kills >= MIN_KILLS and redis_kills >= 2

    cuts = sum((cluster.logs / f"shard-{i}.log").read_text().count("cut block") for i in range(2))
    acked = sum(w.batches for w in writers) * N_SERIES
    print(f"\n{kills} shard kills ({kills_in_cut} inside a block cut, before its block write and WAL trim), "
          f"{redis_kills} Redis kills, {acked:,} acknowledged samples, "
          f"{sum(w.retries for w in writers)} retried writes, {cuts} block cuts logged")
    assert sum(w.retries for w in writers) > 0
    assert cuts >= 10 and kills_in_cut >= MIN_KILLS // 3

    # Each shard directly: every acknowledged sample, bit for bit, once.
    for w in writers:
        client = ShardClient(w.shard, f"127.0.0.1:{w.port}")
        got = wait_until(lambda c=client: _try(c.series, [Matcher(MatchType.EQ, "__name__", "crash")], 0, 2**62),
                         30, "the shard to answer")
        client.close()
        by_labels = {s.labels: s for s in got}
        assert set(by_labels) == set(w.acked)
        for ls, samples in w.acked.items():
            s = by_labels[ls]
            assert s.timestamps_ms.tolist() == [t for t, _ in samples], f"{ls}: lost or doubled samples"
            assert _bits(s.values) == _bits([v for _, v in samples]), f"{ls}: values differ"

    # Through the querier: the raw samples of every series, as a range selector returns them.
    end_ms = max(t for w in writers for t, _ in w.acked[w.labels[0]])
    window_s = (end_ms - start_ms) // 1000 + 10
    url = f"http://127.0.0.1:{cluster.http_port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": f"crash[{window_s}s]", "time": f"{end_ms / 1000:.3f}"})
    body = json.loads(urllib.request.urlopen(url, timeout=120).read())
    assert body["status"] == "success" and "warnings" not in body
    result = {tuple(sorted(r["metric"].items())): r["values"] for r in body["data"]["result"]}
    assert len(result) == 2 * N_SERIES
    for w in writers:
        for ls, samples in w.acked.items():
            # Range selectors leave staleness markers out, as Prometheus's do.
            want = [(t, v) for t, v in samples if not np.isnan(v)]
            got = result[tuple(sorted(ls.to_dict().items()))]
            assert [round(float(t) * 1000) for t, _ in got] == [t for t, _ in want]
            assert [float(v) for _, v in got] == [v for _, v in want]


def _try(fn, *args):
    try:
        return fn(*args)
    except ShardmonError:
        return None
