"""A ShardDB's writes (shards/engine.py): durable before applied, Prometheus's append rules, idempotent
batches, the time guard, backfill and metadata. On the ``backend`` of enginekit.py: the in-memory store
here, a real Redis in tests/integration/test_engine_on_redis.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from shardmon.model.errors import InvalidWriteError, ShardNotDurableError, ShardUnavailableError
from shardmon.model.labels import Labels
from shardmon.model.samples import STALE_NAN, SampleBatch
from shardmon.shards import metrics
from shardmon.shards.engine import WriteOutcome
from tests.unit.shards.enginekit import PREFIX, STEP, D, H, batch, counter, read

M = 60_000
DAY = 24 * H
NOW = 1_796_400_000_000  # a fixed "now", a multiple of D


def _bits(*values: float) -> list[int]:
    return np.array(values, np.float64).view(np.uint64).tolist()


def _one(key_labels: dict, ts: list[int], vals: list[float]) -> SampleBatch:
    """One series with the given samples."""
    ls = Labels.from_dict(key_labels)
    return SampleBatch.of(np.array([ls.series_id()], np.uint64), [ls.canonical()],
                          np.zeros(len(ts), np.uint32), np.array(ts, np.int64), np.array(vals, np.float64))


def test_a_write_is_durable_when_acknowledged_and_reads_back_bit_for_bit(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        ts = np.array([NOW - 2 * STEP, NOW - STEP], np.int64)
        values = iter([1.5, STALE_NAN, -0.0, float("inf"), 2.0, 3.0])
        out = await db.write("w1", batch(3, ts, value_of=lambda i, t: next(values)))
        assert out == WriteOutcome(6, {}, False)
        assert await db.store.wal_length() == 1
        assert {PREFIX + "wal", PREFIX + "series", PREFIX + "identity"} <= backend.keys()
        got = await read(db)
        assert sorted(got.values()) == sorted([
            (ts.tolist(), _bits(1.5, STALE_NAN)), (ts.tolist(), _bits(-0.0, float("inf"))),
            (ts.tolist(), _bits(2.0, 3.0))])
        # Acknowledged means in the store: a restarted shard reads the same.
        again = await backend.open(clock=lambda: NOW)
        assert await read(again) == got

    asyncio.run(main())


def test_out_of_order_and_repeated_timestamps_follow_prometheus(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        await db.write("a", batch(3, np.array([NOW - STEP], np.int64), value_of=lambda i, t: 1.0))
        before = await read(db)
        dup0 = counter(metrics.SAMPLES_DUPLICATE)
        ooo0 = counter(metrics.SAMPLES_REJECTED, "out_of_order")
        # Series 0: older than its latest; series 1: the same sample again; series 2: same time, other value.
        labels = [{"__name__": "m", "i": str(i)} for i in range(3)]
        older, same, clash = (_one(labels[0], [NOW - 2 * STEP], [5.0]), _one(labels[1], [NOW - STEP], [1.0]),
                              _one(labels[2], [NOW - STEP], [2.0]))
        assert await db.write("b0", older) == WriteOutcome(0, {"out_of_order": 1}, False)
        assert await db.write("b1", same) == WriteOutcome(0, {}, False)  # dropped silently, as Prometheus
        assert await db.write("b2", clash) == WriteOutcome(0, {"duplicate_timestamp": 1}, False)
        assert counter(metrics.SAMPLES_DUPLICATE) - dup0 == 1
        assert counter(metrics.SAMPLES_REJECTED, "out_of_order") - ooo0 == 1
        assert await read(db) == before
        # Replay applies the same rules to the same records: the same head.
        again = await backend.open(clock=lambda: NOW)
        assert await read(again) == before

    asyncio.run(main())


def test_a_retried_batch_is_appended_once_even_after_a_restart(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        b = batch(4, np.array([NOW - STEP], np.int64))
        assert (await db.write("b1", b)).appended == 4
        assert await db.write("b1", b) == WriteOutcome(0, {}, True)
        assert await db.store.wal_length() == 1
        again = await backend.open(clock=lambda: NOW)  # the batch ids are rebuilt by replay
        assert (await again.write("b1", b)).duplicate_batch
        assert await again.store.wal_length() == 1

    asyncio.run(main())


def test_a_write_the_store_could_not_take_leaves_nothing_and_its_retry_is_appended(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        b = batch(4, np.array([NOW - STEP], np.int64))
        backend.fail(db.store, "append")
        with pytest.raises(ShardUnavailableError) as e:
            await db.write("b1", b)
        assert e.value.retryable
        assert await read(db) == {} and len(db.registry) == 0 and await db.store.wal_length() == 0
        assert (await db.write("b1", b)).appended == 4  # not remembered: the retry is judged afresh
        assert len(await read(db)) == 4

    asyncio.run(main())


def test_a_store_without_durability_refuses_writes_as_retryable(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        db.store.not_durable = "its Redis runs without an append-only file"
        with pytest.raises(ShardNotDurableError, match="append-only file") as e:
            await db.write("b1", batch(2, np.array([NOW], np.int64)))
        assert e.value.retryable
        assert await db.store.wal_length() == 0
        db.store.not_durable = None
        assert (await db.write("b1", batch(2, np.array([NOW], np.int64)))).appended == 2

    asyncio.run(main())


def test_samples_too_far_in_the_future_are_refused_and_the_rest_written(backend):
    async def main():
        now = [NOW]
        db = await backend.open(clock=lambda: now[0])  # max_future_time: 10m by default
        ts = np.array([NOW - STEP, NOW + 10 * M, NOW + 10 * M + 1, NOW + 20 * DAY], np.int64)
        far0 = counter(metrics.SAMPLES_REJECTED, "too_far_in_future")
        out = await db.write("f1", batch(2, ts))
        assert out == WriteOutcome(4, {"too_far_in_future": 4}, False)
        assert counter(metrics.SAMPLES_REJECTED, "too_far_in_future") - far0 == 4
        assert all(t == ts[:2].tolist() for t, _ in (await read(db)).values())
        # Nothing left: no WAL entry, and the batch id is not remembered...
        wal = await db.store.wal_length()
        only_future = batch(2, np.array([NOW + H], np.int64), first=5)
        assert await db.write("f2", only_future) == WriteOutcome(0, {"too_far_in_future": 2}, False)
        assert await db.store.wal_length() == wal
        # ...so once the clock has caught up, the same batch is taken.
        now[0] = NOW + H
        assert (await db.write("f2", only_future)).appended == 2
        # Backfill refuses them too.
        assert await db.backfill("bf", batch(1, np.array([NOW + 2 * DAY], np.int64), first=9)) == \
            WriteOutcome(0, {"too_far_in_future": 1}, False)

    asyncio.run(main())


def test_a_sample_below_the_heads_lower_bound_is_out_of_bounds(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        await db.write("a", batch(2, np.array([NOW - H], np.int64)))
        assert await db.flush() == 1
        assert db.head.min_valid_ms == NOW - H + 1
        assert await db.write("b", batch(2, np.array([NOW - 2 * H], np.int64))) == \
            WriteOutcome(0, {"out_of_bounds": 2}, False)
        assert (await db.write("c", batch(2, np.array([NOW], np.int64)))).appended == 2

    asyncio.run(main())


def test_a_batch_with_a_bad_series_is_refused_whole(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        good = Labels.from_dict({"__name__": "m", "i": "0"})
        wrong_id = SampleBatch.of(np.array([good.series_id() ^ 1], np.uint64), [good.canonical()],
                                  np.zeros(1, np.uint32), np.array([NOW], np.int64), np.ones(1))
        with pytest.raises(InvalidWriteError, match="does not match its labels"):
            await db.write("x1", wrong_id)
        with pytest.raises(InvalidWriteError, match="without a metric name"):
            await db.write("x2", _one({"job": "j"}, [NOW], [1.0]))
        assert await db.store.wal_length() == 0 and PREFIX + "series" not in backend.keys()
        assert len(db.registry) == 0

    asyncio.run(main())


def test_backfill_writes_blocks_of_its_own_once_per_batch_id(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        await db.write("head", batch(2, np.array([NOW - STEP], np.int64), value_of=lambda i, t: 7.0))
        # Out of order within the batch, a repeated timestamp (the first value kept), three windows.
        ts = np.array([NOW - 3 * D, NOW - 5 * D, NOW - 3 * D, NOW - 4 * D, NOW - STEP], np.int64)
        values = iter(range(100))
        bf = batch(2, ts, value_of=lambda i, t: float(next(values)))
        backfilled0 = counter(metrics.SAMPLES_BACKFILLED)
        out = await db.backfill("import-1", bf)
        assert out == WriteOutcome(8, {}, False)  # two repeats dropped
        assert counter(metrics.SAMPLES_BACKFILLED) - backfilled0 == 8
        assert sorted(b.meta.mint_ms for b in db.blocks) == [NOW - 5 * D, NOW - 4 * D, NOW - 3 * D, NOW - D]
        assert all(b.meta.block_id.split("-")[2].startswith("bf") for b in db.blocks)
        # Sorted by time, a repeated timestamp once (its first value); at NOW - STEP the block's sample is
        # read before the head's, and kept.
        want_ts = [NOW - 5 * D, NOW - 4 * D, NOW - 3 * D, NOW - STEP]
        got = await read(db)
        assert list(got.values()) == [(want_ts, _bits(1, 3, 0, 4)), (want_ts, _bits(6, 8, 5, 9))]
        assert await db.backfill("import-1", bf) == WriteOutcome(0, {}, True)
        again = await backend.open(clock=lambda: NOW)
        assert (await again.backfill("import-1", bf)).duplicate_batch
        assert await read(again) == got

    asyncio.run(main())


def test_metric_metadata_is_kept_once_per_distinct_entry_and_survives_a_restart(backend):
    async def main():
        db = await backend.open(clock=lambda: NOW)
        await db.record_metadata([("up", "gauge", "Target up.", ""), ("http", "counter", "Requests.", "")])
        await db.record_metadata([("up", "gauge", "Target up.", ""), ("up", "gauge", "Other help.", "")])
        assert db.metadata_of() == [("http", "counter", "Requests.", ""), ("up", "gauge", "Target up.", ""),
                                    ("up", "gauge", "Other help.", "")]
        assert db.metadata_of("up", 1) == [("up", "gauge", "Target up.", ""), ("up", "gauge", "Other help.", "")]
        assert db.metadata_of(limit=1) == [("http", "counter", "Requests.", "")]
        again = await backend.open(clock=lambda: NOW)
        assert again.metadata_of() == db.metadata_of()

    asyncio.run(main())
