"""One shard server on a real Redis: durable writes, idempotent retries, blocks, recovery after SIGKILL."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.errors import InvalidWriteError, ShardUnavailableError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import STALE_NAN, SampleBatch
from shardmon.shards.client import ShardClient
from tests.integration.procs import Cluster, wait_until

BLOCK_MS = 10_000
N_SERIES = 50


@pytest.fixture()
def shard(tmp_path):
    c = Cluster(tmp_path, n_shards=1, scrape_configs=[], shards_extra={"block_duration": "10s"},
                web={"enable_admin_api": True})  # Flush is an admin RPC
    for p in c.redis + c.shards:
        p.up()
    client = ShardClient(0, f"127.0.0.1:{c.shard_ports[0]}")
    yield c, client
    client.close()
    for p in c.shards + c.redis:
        p.stop()


def _batch(step: int, values=None) -> SampleBatch:
    labels = [Labels.from_dict({"__name__": "m", "i": str(i), "job": "j"}) for i in range(N_SERIES)]
    keys = [ls.canonical() for ls in labels]
    ids = np.array([ls.series_id() for ls in labels], dtype=np.uint64)
    vals = np.full(N_SERIES, float(step)) if values is None else np.asarray(values, dtype=np.float64)
    return SampleBatch.of(ids, keys, np.arange(N_SERIES, dtype=np.uint32), np.full(N_SERIES, step * 1000, np.int64), vals)


def _all(client) -> dict[Labels, tuple[list[int], np.ndarray]]:
    series = client.series([Matcher(MatchType.EQ, "__name__", "m")], 0, 10**9)
    return {s.labels: (s.timestamps_ms.tolist(), s.values.copy()) for s in series}


def test_a_shard_recovers_blocks_index_and_wal_after_sigkill(shard):
    cluster, client = shard
    for step in range(40):  # 40 s of data: blocks get cut for the first windows.
        resp = client.write(f"b-{step}", _batch(step))
        assert resp.samples_appended == N_SERIES
    client.write("stale", _batch(40, [STALE_NAN] * N_SERIES))
    wait_until(lambda: "cut block" in cluster.shards[0].log_path.read_text(), 30, "a block to be cut")
    before = _all(client)
    assert len(before) == N_SERIES and all(len(ts) == 41 for ts, _ in before.values())

    cluster.shards[0].kill()
    with pytest.raises(ShardUnavailableError):
        client.write("b-while-down", _batch(41), timeout_s=1)
    cluster.restart_shard(0)

    after = wait_until(lambda: _try(_all, client), 30, "the restarted shard to answer")
    assert after.keys() == before.keys()
    for labels, (ts, vals) in before.items():
        assert after[labels][0] == ts
        assert np.array_equal(after[labels][1].view(np.uint64), vals.view(np.uint64))  # Staleness markers too.

    # A batch acknowledged before the crash and retried after it is not appended twice.
    resp = client.write("b-39", _batch(39))
    assert resp.duplicate_batch and resp.samples_appended == 0
    log = cluster.shards[0].log_path.read_text()
    assert "recovered 50 series" in log


def test_retries_are_idempotent_and_rejections_are_counted_by_reason(shard):
    _, client = shard
    assert client.write("x-1", _batch(10)).samples_appended == N_SERIES
    again = client.write("x-1", _batch(10))
    assert again.duplicate_batch and again.samples_appended == 0
    older = client.write("x-2", _batch(5))
    assert older.samples_appended == 0 and dict(older.samples_rejected) == {"out_of_order": N_SERIES}
    same = client.write("x-3", _batch(10))
    assert same.samples_appended == 0 and not same.samples_rejected  # Same timestamp and value: silent.
    conflict = client.write("x-4", _batch(10, np.full(N_SERIES, -1.0)))
    assert dict(conflict.samples_rejected) == {"duplicate_timestamp": N_SERIES}


def test_a_batch_whose_ids_do_not_match_its_labels_is_refused(shard):
    _, client = shard
    b = _batch(1)
    bad = SampleBatch.of(b.series_ids + np.uint64(1), b.series.keys(), b.sample_series, b.timestamps_ms, b.values)
    with pytest.raises(InvalidWriteError, match="does not match its labels"):
        client.write("bad", bad)


def _try(fn, *args):
    try:
        return fn(*args)
    except ShardUnavailableError:
        return None


def test_flush_moves_the_whole_head_into_blocks_and_reads_stay_the_same(shard):
    _, client = shard
    for step in range(5):
        client.write(f"f-{step}", _batch(step))
    before = _all(client)
    assert client.flush() >= 1
    after = _all(client)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    # The flushed window is closed: an older sample is now out of bounds.
    assert dict(client.write("f-late", _batch(4, np.full(N_SERIES, 9.0))).samples_rejected) == {"out_of_bounds": N_SERIES}


def test_an_out_of_order_window_accepts_late_samples_and_keeps_them_across_a_restart(tmp_path):
    c = Cluster(tmp_path, n_shards=1, scrape_configs=[],
                shards_extra={"block_duration": "1h", "out_of_order_time_window": "15s"})
    for p in c.redis + c.shards:
        p.up()
    client = ShardClient(0, f"127.0.0.1:{c.shard_ports[0]}")
    try:
        for step in (10, 20, 30):
            assert client.write(f"in-{step}", _batch(step)).samples_appended == N_SERIES
        late = client.write("late-15", _batch(15))  # 15 s: older than the latest (30 s), inside the window
        assert late.samples_appended == N_SERIES and not late.samples_rejected
        too_late = client.write("late-0", _batch(0))  # 30 s behind the newest: outside the 15 s window
        assert too_late.samples_appended == 0 and dict(too_late.samples_rejected) == {"out_of_order": N_SERIES}
        want = {ls: ts for ls, (ts, _) in _all(client).items()}
        assert all(ts == [10_000, 15_000, 20_000, 30_000] for ts in want.values())
        c.shards[0].kill()
        c.restart_shard(0)
        after = wait_until(lambda: _try(_all, client), 30, "the restarted shard to answer")
        assert {ls: ts for ls, (ts, _) in after.items()} == want
    finally:
        client.close()
        for p in c.shards + c.redis:
            p.stop()


def test_hostile_regex_reads_over_many_label_values_do_not_stall_writes(shard):
    """Issue 12: ``(.*.*)*x`` froze a shard's event loop. With RE2 and scans over many values in a worker
    thread, reads with it over 100,000 label values answer, and writes made meanwhile are acknowledged
    and visible within the issue's 5 s."""
    import threading
    import time

    _, client = shard
    n, per_batch = 100_000, 20_000
    for first in range(0, n, per_batch):
        labels = [Labels.from_dict({"__name__": "h", "v": "y" * 40 + str(i)}) for i in range(first, first + per_batch)]
        batch = SampleBatch.of(np.array([ls.series_id() for ls in labels], dtype=np.uint64),
                               [ls.canonical() for ls in labels], np.arange(per_batch, dtype=np.uint32),
                               np.full(per_batch, 1000, np.int64), np.ones(per_batch))
        assert client.write(f"h-{first}", batch, timeout_s=60).samples_appended == per_batch
    hostile = [Matcher(MatchType.EQ, "__name__", "h"), Matcher(MatchType.RE, "v", "(.*.*)*x|y{40}7777[0-9]")]
    stop, answers, errors = threading.Event(), [], []

    def attack():
        while not stop.is_set():
            try:
                answers.append(len(client.series(hostile, 0, 10**9, timeout_s=30)))
                client.label_values("v", [Matcher(MatchType.NRE, "v", "(.*.*)*x")], 0, 10**9, timeout_s=30)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for t in attackers:
        t.start()
    try:
        for step in range(5):
            t0 = time.monotonic()
            assert client.write(f"w-{step}", _batch(step), timeout_s=5).samples_appended == N_SERIES
            wait_until(lambda s=step: all(ts[-1] == s * 1000 for ts, _ in _all(client).values()), 5,
                       "the write to be visible")
            assert time.monotonic() - t0 < 5
    finally:
        stop.set()
        for t in attackers:
            t.join(60)
    assert not errors, errors
    assert answers and set(answers) == {10}  # y*40 7777 0..9
