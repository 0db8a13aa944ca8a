"""Retention and compaction of a ShardDB's blocks (shards/compact.py), on the ``backend`` of
enginekit.py: the in-memory store here, a real Redis in tests/integration/test_engine_on_redis.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from shardmon.model.errors import ShardUnavailableError
from shardmon.shards import metrics
from tests.unit.shards.enginekit import STEP, D, H, batch, counter, read, write_hours

# -- retention -------------------------------------------------------------------------------------


def test_time_retention_deletes_exactly_the_old_blocks_and_their_samples(backend):
    async def main():
        db = await backend.open(retention_time_ms=4 * H)
        await write_hours(db, 10)
        assert await db.flush() == 5  # [0,2h) ... [8h,10h)
        before = await read(db)
        keys_before = backend.block_keys()
        deleted0 = counter(metrics.RETENTION_DELETIONS, "time")
        # Newest block ends at 10h: the blocks ending at or before 6h are beyond a 4h retention.
        assert await db.apply_retention() == 3
        assert [(b.meta.mint_ms, b.meta.maxt_ms) for b in db.blocks] == [(6 * H, 8 * H), (8 * H, 10 * H)]
        assert counter(metrics.RETENTION_DELETIONS, "time") - deleted0 == 3
        after = await read(db)
        assert after.keys() == before.keys()
        for key, (ts, vals) in before.items():
            keep = [i for i, t in enumerate(ts) if t >= 6 * H]
            assert after[key] == ([ts[i] for i in keep], [vals[i] for i in keep])
        # The three blocks' keys are gone from Redis, the others are all there.
        gone = keys_before - backend.block_keys()
        assert len(gone) == 6 and all(k.split(":")[3].split("-")[1] in ("7200000", "14400000", "21600000")
                                      for k in gone)
        assert await db.apply_retention() == 0
        await db.store.close()
        # A restart sees the same.
        db2 = await backend.open(retention_time_ms=4 * H)
        assert await read(db2) == after and len(db2.blocks) == 2
        await db2.store.close()

    asyncio.run(main())


def test_size_retention_deletes_the_oldest_blocks_until_the_rest_fits(backend):
    async def main():
        db = await backend.open()
        await write_hours(db, 8)
        await db.flush()
        sizes = [b.meta.size_bytes for b in db.blocks]
        assert len(sizes) == 4
        db.retention_size_bytes = sizes[2] + sizes[3]  # room for the two newest
        deleted0 = counter(metrics.RETENTION_DELETIONS, "size")
        assert await db.apply_retention() == 2
        assert counter(metrics.RETENTION_DELETIONS, "size") - deleted0 == 2
        assert [b.meta.mint_ms for b in db.blocks] == [4 * H, 6 * H]
        data = await read(db)
        assert min(min(ts) for ts, _ in data.values()) == 4 * H
        assert metrics.BLOCK_BYTES._value.get() == sizes[2] + sizes[3]
        await db.store.close()

    asyncio.run(main())


# -- compaction ------------------------------------------------------------------------------------


def test_three_2h_blocks_are_compacted_into_one_6h_block_with_identical_reads(backend):
    async def main():
        db = await backend.open(compaction_ranges=[D, 3 * D, 9 * D])
        await write_hours(db, 8, n_series=30)
        await db.write("nan", batch(30, np.array([8 * H - 1]), value_of=lambda i, t: float("nan")))
        assert await db.flush() == 4
        before = await read(db)
        window = await read(db, start=H + 1, end=5 * H - 1)
        keys_before = backend.block_keys()
        samples = sum(b.meta.num_samples for b in db.blocks)
        n0 = counter(metrics.COMPACTIONS)
        # [0,6h) is closed (the head starts at 8h) and holds three blocks; [6h,8h) is alone.
        assert await db.compact() == 1
        assert counter(metrics.COMPACTIONS) - n0 == 1
        assert [(b.meta.mint_ms, b.meta.maxt_ms) for b in db.blocks] == [(0, 6 * H), (6 * H, 8 * H)]
        assert sum(b.meta.num_samples for b in db.blocks) == samples
        assert await read(db) == before
        assert await read(db, start=H + 1, end=5 * H - 1) == window
        keys_after = backend.block_keys()
        assert len(keys_before) == 8 and len(keys_after) == 4  # three blocks' 6 keys became 2
        assert await db.compact() == 0  # idempotent: nothing more to do
        await db.store.close()
        db2 = await backend.open(compaction_ranges=[D, 3 * D, 9 * D])
        assert await read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_a_window_the_head_still_writes_into_is_not_compacted(backend):
    async def main():
        db = await backend.open(compaction_ranges=[D, 3 * D])
        await write_hours(db, 7)
        assert await db.cut_blocks() == 2  # [0,2h), [2h,4h) cut; the head keeps [4h, 7h)
        assert await db.compact() == 0
        await write_hours(db, 1, start_h=7)
        assert await db.cut_blocks() == 1  # [4h,6h): the window [0,6h) is closed now
        assert await db.compact() == 1
        await db.store.close()

    asyncio.run(main())


def test_a_backfilled_overlapping_block_is_merged_and_reads_stay_the_same(backend):
    async def main():
        db = await backend.open()  # no level compaction: only overlaps are merged
        await write_hours(db, 4, n_series=10)
        await db.flush()
        # Backfill into [0,2h): at the same minutes (another value: the head block's stays) and between.
        ts = np.arange(0, D, STEP // 2, dtype=np.int64)
        bf = batch(12, ts, value_of=lambda i, t: -1.0 - t)  # two series new to the shard
        assert (await db.backfill("bf-1", bf)).appended == 12 * ts.shape[0]
        assert len(db.blocks) == 3
        before = await read(db)
        assert len(before) == 12
        some = next(iter(before.values()))
        assert len(some[0]) == 4 * 60 + 120  # 4h a minute, plus the 120 half minutes of [0,2h)
        assert await db.compact() == 1
        assert len(db.blocks) == 2 and db.blocks[0].meta.block_id.startswith(f"0-{D}-c")
        assert await read(db) == before
        # The backfill is still known by its batch id once merged: a retry appends nothing.
        assert (await db.backfill("bf-1", bf)).duplicate_batch
        await db.store.close()
        db2 = await backend.open()
        assert await read(db2) == before
        assert (await db2.backfill("bf-1", bf)).duplicate_batch
        await db2.store.close()

    asyncio.run(main())


def test_a_compaction_that_dies_before_its_transaction_changes_nothing(backend):
    async def main():
        db = await backend.open(compaction_ranges=[D, 3 * D])
        await write_hours(db, 8)
        await db.flush()
        before, keys = await read(db), backend.keys()

        async def crash(*args, **kw):
            raise ConnectionError("killed before EXEC")

        db.store.replace_blocks = crash
        with pytest.raises(ConnectionError):
            await db.compact()
        assert await read(db) == before and backend.keys() == keys
        await db.store.close()
        # A restart finds the old blocks and compacts them.
        db2 = await backend.open(compaction_ranges=[D, 3 * D])
        assert await db2.compact() == 1 and await read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_reads_never_double_samples_of_blocks_that_overlap(backend):
    """Were a merged block and its sources both stored (the transaction rules it out), reads would
    still count each timestamp once, and the next compaction would fold them together."""
    async def main():
        db = await backend.open(compaction_ranges=[D, 3 * D])
        await write_hours(db, 8)
        await db.flush()
        before = await read(db)
        store = db.store
        real = store.replace_blocks

        async def keep_sources(meta, blob, chunks, old_ids):
            await store.write_blocks([(meta, blob, chunks)], {})

        store.replace_blocks = keep_sources
        await db.compact()  # writes the 6h block, leaves the three 2h ones
        store.replace_blocks = real
        await store.close()
        db2 = await backend.open(compaction_ranges=[D, 3 * D])
        assert len(db2.blocks) == 5
        assert await read(db2) == before
        assert await db2.compact() == 1 and len(db2.blocks) == 2
        assert await read(db2) == before
        await db2.store.close()

    asyncio.run(main())


def test_a_read_that_meets_a_compaction_reads_the_new_block(backend):
    async def main():
        db = await backend.open(compaction_ranges=[D, 3 * D])
        await write_hours(db, 8)
        await db.flush()
        before = await read(db)
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

        got, _ = await asyncio.gather(read(db), compact_then_signal())
        assert got == before
        assert calls == 4  # two blocks, a deleted one met, then the two blocks left
        await db.store.close()

    asyncio.run(main())


def test_a_failed_deletion_leaves_every_block_and_the_next_pass_does_it(backend):
    async def main():
        db = await backend.open(retention_time_ms=4 * H)
        await write_hours(db, 10)
        await db.flush()
        before, keys = await read(db), backend.keys()
        backend.fail(db.store, "delete_blocks")
        with pytest.raises(ShardUnavailableError):
            await db.apply_retention()
        assert db.blocks.stale  # the outcome is unknown to the engine: the list is read again from the store
        assert await read(db) == before and backend.keys() == keys and len(db.blocks) == 5
        assert await db.apply_retention() == 3
        assert len(db.blocks) == 2

    asyncio.run(main())
