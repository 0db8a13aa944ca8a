"""Retention, compaction, series limits and the shard's own metrics, on a real redis-server.

Most tests drive a ShardDB directly (quick and deterministic); the last ones run a shard process to
check the gRPC status of a limit, the /metrics names and that the WAL fsync policy reaches Redis.
"""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import redis
import yaml

from model.errors import InvalidWriteError
from model.labels import Labels, Matcher, MatchType
from model.samples import SampleBatch
from shards import metrics
from shards.client import ShardClient
from shards.db import SeriesLimitError, ShardDB
from shards.store import RedisStore
from tests.integration.httpapi import request
from tests.integration.procs import free_port, redis_proc, shardmon_proc, wait_until

H = 3_600_000
D = 2 * H
STEP = 60_000  # one sample a minute


@pytest.fixture()
def redis_url(tmp_path):
    port = free_port()
    (tmp_path / "logs").mkdir()
    proc = redis_proc(port, tmp_path / "redis", tmp_path / "logs").up()
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


def _series(n: int, metric: str = "m", **extra) -> tuple[list[Labels], list[bytes], np.ndarray]:
    labels = [Labels.from_dict({"__name__": metric, "i": str(i), **extra}) for i in range(n)]
    return labels, [ls.canonical() for ls in labels], np.array([ls.series_id() for ls in labels], np.uint64)


def _batch(n_series: int, ts: np.ndarray, value_of=lambda i, t: float(i * 1000 + t // STEP), metric: str = "m",
           first: int = 0) -> SampleBatch:
    labels, keys, ids = _series(first + n_series, metric)
    keys, ids = keys[first:], ids[first:]
    refs = np.repeat(np.arange(n_series, dtype=np.uint32), ts.shape[0])
    all_ts = np.tile(ts.astype(np.int64), n_series)
    vals = np.array([value_of(first + int(r), int(t)) for r, t in zip(refs, all_ts)], np.float64)
    return SampleBatch.of(ids, keys, refs, all_ts, vals)


async def _read(db: ShardDB, metric: str = "m", start: int = -10**15, end: int = 10**15) -> dict:
    sel = await db.select([Matcher(MatchType.EQ, "__name__", metric)], start, end)
    out, pos = {}, 0
    for i, c in zip(sel.idx.tolist(), sel.counts.tolist()):
        out[db.registry.keys[i]] = (sel.ts[pos:pos + c].tolist(), sel.vals[pos:pos + c].view(np.uint64).tolist())
        pos += c
    return out


def _keys(url: str) -> set[bytes]:
    r = redis.Redis.from_url(url)
    try:
        return set(r.scan_iter(match="shardmon:0:*"))
    finally:
        r.close()


def _block_keys(url: str) -> set[bytes]:
    return {k for k in _keys(url) if b":block:" in k}


async def _open(url: str, **kw) -> ShardDB:
    db = ShardDB(RedisStore(url, 0), **{"block_duration_ms": D, **kw})
    await db.open()
    return db


async def _write_hours(db: ShardDB, hours: float, n_series: int = 20, start_h: float = 0) -> None:
    """Samples every minute for ``hours`` from ``start_h``, an hour per batch."""
    t = start_h * H
    while t < (start_h + hours) * H:
        ts = np.arange(t, min(t + H, (start_h + hours) * H), STEP, dtype=np.int64)
        await db.write(f"w-{t}", _batch(n_series, ts))
        t += H


def _counter(c, *labels) -> float:
    return (c.labels(*labels) if labels else c)._value.get()


# -- retention -------------------------------------------------------------------------------------


def test_time_retention_deletes_exactly_the_old_blocks_and_their_samples(redis_url):
    async def main():
        db = await _open(redis_url, retention_time_ms=4 * H)
        await _write_hours(db, 10)
        assert await db.flush() == 5  # [0,2h) ... [8h,10h)
        before = await _read(db)
        keys_before = _block_keys(redis_url)
        deleted0 = _counter(metrics.RETENTION_DELETIONS, "time")
        # Newest block ends at 10h: the blocks ending at or before 6h are beyond a 4h retention.
        assert await db.apply_retention() == 3
        assert [(b.meta.mint_ms, b.meta.maxt_ms) for b in db.blocks] == [(6 * H, 8 * H), (8 * H, 10 * H)]
        assert _counter(metrics.RETENTION_DELETIONS, "time") - deleted0 == 3
        after = await _read(db)
        assert after.keys() == before.keys()
        for key, (ts, vals) in before.items():
            keep = [i for i, t in enumerate(ts) if t >= 6 * H]
            assert after[key] == ([ts[i] for i in keep], [vals[i] for i in keep])
        # The three blocks' keys are gone from Redis, the others are all there.
        gone = keys_before - _block_keys(redis_url)
        assert len(gone) == 6 and all(k.split(b":")[3].split(b"-")[1] in (b"7200000", b"14400000", b"21600000")
                                      for k in gone)
        assert await db.apply_retention() == 0
        await db.store.close()
        # A restart sees the same.
        db2 = await _open(redis_url, retention_time_ms=4 * H)
        assert await _read(db2) == after and len(db2.blocks) == 2
        await db2.store.close()

    asyncio.run(main())


def test_size_retention_deletes_the_oldest_blocks_until_the_rest_fits(redis_url):
    async def main():
        db = await _open(redis_url)
        await _write_hours(db, 8)
        await db.flush()
        sizes = [b.meta.size_bytes for b in db.blocks]
        assert len(sizes) == 4
        db.retention_size_bytes = sizes[2] + sizes[3]  # room for the two newest
        deleted0 = _counter(metrics.RETENTION_DELETIONS, "size")
        assert await db.apply_retention() == 2
        assert _counter(metrics.RETENTION_DELETIONS, "size") - deleted0 == 2
        assert [b.meta.mint_ms for b in db.blocks] == [4 * H, 6 * H]
        data = await _read(db)
        assert min(min(ts) for ts, _ in data.values()) == 4 * H
        assert metrics.BLOCK_BYTES._value.get() == sizes[2] + sizes[3]
        await db.store.close()

    asyncio.run(main())


# -- compaction ------------------------------------------------------------------------------------


def test_three_2h_blocks_are_compacted_into_one_6h_block_with_identical_reads(redis_url):
    async def main():
        db = await _open(redis_url, compaction_ranges=[D, 3 * D, 9 * D])
        await _write_hours(db, 8, n_series=30)
        await db.write("nan", _batch(30, np.array([8 * H - 1]), value_of=lambda i, t: float("nan")))
        assert await db.flush() == 4
        before = await _read(db)
        window = await _read(db, start=H + 1, end=5 * H - 1)
        keys_before = _block_keys(redis_url)
        samples = sum(b.meta.num_samples for b in db.blocks)
        n0 = _counter(metrics.COMPACTIONS)
        # [0,6h) is closed (the head starts at 8h) and holds three blocks; [6h,8h) is alone.
        assert await db.compact() == 1
        assert _counter(metrics.COMPACTIONS) - n0 == 1
        assert [(b.meta.mint_ms, b.meta.maxt_ms) for b in db.blocks] == [(0, 6 * H), (6 * H, 8 * H)]
        assert sum(b.meta.num_samples for b in db.blocks) == samples
        assert await _read(db) == before
        assert await _read(db, start=H + 1, end=5 * H - 1) == window
        keys_after = _block_keys(redis_url)
        assert len(keys_before) == 8 and len(keys_after) == 4  # three blocks' 6 keys became 2
        assert await db.compact() == 0  # idempotent: nothing more to do
        await db.store.close()
        db2 = await _open(redis_url, compaction_ranges=[D, 3 * D, 9 * D])
        assert await _read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_a_window_the_head_still_writes_into_is_not_compacted(redis_url):
    async def main():
        db = await _open(redis_url, compaction_ranges=[D, 3 * D])
        await _write_hours(db, 7)
        assert await db.cut_blocks() == 2  # [0,2h), [2h,4h) cut; the head keeps [4h, 7h)
        assert await db.compact() == 0
        await _write_hours(db, 1, start_h=7)
        assert await db.cut_blocks() == 1  # [4h,6h): the window [0,6h) is closed now
        assert await db.compact() == 1
        await db.store.close()

    asyncio.run(main())


def test_a_backfilled_overlapping_block_is_merged_and_reads_stay_the_same(redis_url):
    async def main():
        db = await _open(redis_url)  # no level compaction: only overlaps are merged
        await _write_hours(db, 4, n_series=10)
        await db.flush()
        # Backfill into [0,2h): at the same minutes (another value: the head block's stays) and between.
        ts = np.arange(0, D, STEP // 2, dtype=np.int64)
        bf = _batch(12, ts, value_of=lambda i, t: -1.0 - t)  # two series new to the shard
        assert (await db.backfill("bf-1", bf)).appended == 12 * ts.shape[0]
        assert len(db.blocks) == 3
        before = await _read(db)
        assert len(before) == 12
        some = next(iter(before.values()))
        assert len(some[0]) == 4 * 60 + 120  # 4h a minute, plus the 120 half minutes of [0,2h)
        assert await db.compact() == 1
        assert len(db.blocks) == 2 and db.blocks[0].meta.block_id.startswith(f"0-{D}-c")
        assert await _read(db) == before
        # The backfill is still known by its batch id once merged: a retry appends nothing.
        assert (await db.backfill("bf-1", bf)).duplicate_batch
        await db.store.close()
        db2 = await _open(redis_url)
        assert await _read(db2) == before
        assert (await db2.backfill("bf-1", bf)).duplicate_batch
        await db2.store.close()

    asyncio.run(main())


def test_a_compaction_that_dies_before_its_transaction_changes_nothing(redis_url):
    async def main():
        db = await _open(redis_url, compaction_ranges=[D, 3 * D])
        await _write_hours(db, 8)
        await db.flush()
        before, keys = await _read(db), _keys(redis_url)

        async def crash(*args, **kw):
            raise ConnectionError("killed before EXEC")

        db.store.replace_blocks = crash
        with pytest.raises(ConnectionError):
            await db.compact()
        assert await _read(db) == before and _keys(redis_url) == keys
        await db.store.close()
        # A restart finds the old blocks and compacts them.
        db2 = await _open(redis_url, compaction_ranges=[D, 3 * D])
        assert await db2.compact() == 1 and await _read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_reads_never_double_samples_of_blocks_that_overlap(redis_url):
    """Were a merged block and its sources both stored (the transaction rules it out), reads would
    still count each timestamp once, and the next compaction would fold them together."""
    async def main():
        db = await _open(redis_url, compaction_ranges=[D, 3 * D])
        await _write_hours(db, 8)
        await db.flush()
        before = await _read(db)
        store = db.store
        real = store.replace_blocks

        async def keep_sources(meta, blob, chunks, old_ids):
            await store.write_blocks([(meta, blob, chunks)], {})

        store.replace_blocks = keep_sources
        await db.compact()  # writes the 6h block, leaves the three 2h ones
        store.replace_blocks = real
        await store.close()
        db2 = await _open(redis_url, compaction_ranges=[D, 3 * D])
        assert len(db2.blocks) == 5
        assert await _read(db2) == before
        assert await db2.compact() == 1 and len(db2.blocks) == 2
        assert await _read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_a_read_that_meets_a_compaction_reads_the_new_block(redis_url):
    async def main():
        db = await _open(redis_url, compaction_ranges=[D, 3 * D])
        await _write_hours(db, 8)
        await db.flush()
        before = await _read(db)
        compacted = asyncio.Event()
        real = db.store.read_chunks
        calls = 0

        async def late_read(block_id, fields):
            nonlocal calls
            calls += 1
            if calls == 2:  # the read has listed the blocks and read one: the compaction commits now
                await compacted.wait()
            return await real(block_id, fields)

        db.store.read_chunks = late_read

        async def compact_then_signal():
            while calls < 2:
                await asyncio.sleep(0.001)
            assert await db.compact() == 1
            compacted.set()

        got, _ = await asyncio.gather(_read(db), compact_then_signal())
        assert got == before
        assert calls == 4  # two blocks, a deleted one met, then the two blocks left
        await db.store.close()

    asyncio.run(main())


# -- limits ----------------------------------------------------------------------------------------


def test_the_series_limit_refuses_new_series_but_appends_the_others(redis_url):
    async def main():
        db = await _open(redis_url, max_active_series=10)
        ts = np.array([1000], np.int64)
        assert (await db.write("a", _batch(8, ts))).appended == 8
        rej0 = _counter(metrics.SAMPLES_REJECTED, "series_limit")
        # 8 in the head, 6 new series (2 samples each) and 8 known ones: 2 new ones fit.
        batch = _batch(14, np.array([2000, 3000], np.int64))
        with pytest.raises(SeriesLimitError, match="shards.max_active_series = 10") as e:
            await db.write("b", batch)
        assert e.value.outcome.appended == 20 and e.value.outcome.rejected == {"series_limit": 8}
        assert isinstance(e.value, InvalidWriteError) and not e.value.retryable
        assert _counter(metrics.SAMPLES_REJECTED, "series_limit") - rej0 == 8
        assert len(db.registry) == 10
        # A batch of refused series only: nothing written, not remembered as seen.
        wal = await db.store.wal_length()
        with pytest.raises(SeriesLimitError):
            await db.write("c", _batch(2, np.array([4000], np.int64), first=12))
        assert await db.store.wal_length() == wal
        # The retried partial batch is a duplicate (its accepted part is in).
        assert (await db.write("b", batch)).duplicate_batch
        data = await _read(db)
        await db.store.close()
        # Replay without limits gives the same head: refused samples were never in the WAL.
        db2 = await _open(redis_url)
        assert await _read(db2) == data and len(db2.registry) == 10
        await db2.store.close()

    asyncio.run(main())


def test_the_per_metric_limit_and_series_leaving_the_head(redis_url):
    async def main():
        db = await _open(redis_url, max_series_per_metric=3)
        await db.write("a", _batch(3, np.array([1000], np.int64), metric="a"))
        with pytest.raises(SeriesLimitError, match="max_series_per_metric = 3 series in the head for metric a"):
            await db.write("a2", _batch(5, np.array([2000], np.int64), metric="a"))
        assert (await db.write("b", _batch(3, np.array([2000], np.int64), metric="b"))).appended == 3
        assert len(await _read(db, "a")) == 3
        # Once the head is flushed into blocks no series is in the head: new ones fit again.
        await db.flush()
        assert (await db.write("a3", _batch(3, np.array([D + 1], np.int64), metric="a", first=5))).appended == 3
        await db.store.close()

    asyncio.run(main())


# -- the shard process: status of a limit, /metrics, fsync policy ----------------------------------


@pytest.fixture()
def shard_proc(tmp_path):
    redis_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    raw = {"shards": {
        "nodes": [{"id": 0, "address": f"127.0.0.1:{grpc_port}", "redis_url": f"redis://127.0.0.1:{redis_port}/0",
                   "metrics_address": f"127.0.0.1:{metrics_port}"}],
        "block_duration": "2h", "max_active_series": 5, "wal_appendfsync": "always",
    }, "web": {"enable_admin_api": True}}  # Flush is an admin RPC
    cfg = tmp_path / "shardmon.yml"
    cfg.write_text(yaml.safe_dump(raw))
    logs = tmp_path / "logs"
    logs.mkdir()
    r = redis_proc(redis_port, tmp_path / "redis", logs).up()
    s = shardmon_proc("shard-0", ["shard", "--id", "0"], cfg, logs, grpc_port).up()
    client = ShardClient(0, f"127.0.0.1:{grpc_port}")
    yield client, redis_port, metrics_port, s
    client.close()
    s.stop()
    r.stop()


def test_a_shard_answers_a_series_limit_with_invalid_argument_and_exposes_its_metrics(shard_proc):
    client, redis_port, metrics_port, proc = shard_proc
    assert client.write("ok", _batch(3, np.array([1000], np.int64))).samples_appended == 3
    with pytest.raises(InvalidWriteError, match="INVALID_ARGUMENT.*shards.max_active_series = 5") as e:
        client.write("over", _batch(8, np.array([2000], np.int64)))
    assert isinstance(e.value.__cause__, grpc.RpcError)
    assert not e.value.retryable
    assert client.flush() == 1
    text = request("GET", f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for name in ("shardmon_shard_series", "shardmon_shard_head_series", "shardmon_shard_samples_appended_total",
                 'shardmon_shard_samples_rejected_total{reason="series_limit"} 3.0',
                 'shardmon_shard_samples_rejected_total{reason="metric_series_limit"} 0.0',
                 "shardmon_shard_chunks 5.0", "shardmon_shard_blocks 1.0", "shardmon_shard_block_bytes",
                 "shardmon_shard_wal_entries", "shardmon_shard_block_bytes_per_sample",
                 "shardmon_shard_replay_duration_seconds", 'shardmon_shard_retention_deletions_total{reason="time"}',
                 'shardmon_shard_retention_deletions_total{reason="size"}', "shardmon_shard_compactions_total"):
        assert name in text, name
    # The shard set its Redis to the configured fsync policy (it was started with everysec).
    r = redis.Redis(port=redis_port)
    try:
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        r.close()
    assert "appendfsync always" in wait_until(lambda: proc.log_path.read_text(), 5, "the shard log")
