"""A ShardDB's recovery (shards/engine.py) and its store's identity (shards/identity.py): replay after a
restart, the checkpoint a block cut writes, failures half-way, a store that lost its data. On the
``backend`` of enginekit.py: the in-memory store here, a real Redis in
tests/integration/test_engine_on_redis.py."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from shardmon.model.errors import ShardDataLostError, ShardUnavailableError
from shardmon.model.labels import Matcher, MatchType
from shardmon.model.samples import SampleBatch
from shardmon.shards import metrics
from shardmon.shards.engine import ShardDB
from tests.unit.shards.enginekit import PREFIX, STEP, D, H, batch, counter, read, series

S = 1000
M = 60 * S
DAY = 24 * H
T0 = 1_796_400_000_000  # a multiple of D


def _now() -> int:
    return int(time.time() * 1000)


async def _write_minutes(db: ShardDB, start: int, minutes: int, prefix: str = "w", n_series: int = 5) -> None:
    """One batch a minute, every series a sample."""
    for k in range(minutes):
        await db.write(f"{prefix}-{k}", batch(n_series, np.array([start + k * M], np.int64)))


# -- replay and the checkpoint ----------------------------------------------------------------------


def test_a_restart_replays_the_wal_into_the_same_head_and_remembers_its_batches(backend):
    async def main():
        db = await backend.open(clock=lambda: T0)
        await _write_minutes(db, T0 - 90 * M, 90)
        before = await read(db)
        assert await db.store.wal_length() == 90
        again = await backend.open(clock=lambda: T0)
        assert await read(again) == before and again.head.num_samples == db.head.num_samples
        assert counter(metrics.WAL_ENTRIES) == 90
        assert (await again.write("w-5", batch(5, np.array([T0 - 10 * M], np.int64)))).duplicate_batch

    asyncio.run(main())


def test_a_long_wal_of_every_kind_of_batch_replays_in_pages_into_the_same_head(backend, monkeypatch):
    """Scrape-like batches (each series once, newer than before) mixed with batches of several samples per
    series, late, repeated and conflicting samples, in entries of very different sizes, read back in
    many small pages of the WAL stream: the replayed head holds the same samples, the same latest values
    and the same batch ids as the shard that wrote them."""
    from shardmon.shards import redis_store

    monkeypatch.setattr(redis_store, "_REPLAY_PAGE_BYTES", 3000)  # a page of a few entries
    monkeypatch.setattr(redis_store, "_REPLAY_PAGE_MIN", 2)

    async def main():
        db = await backend.open(clock=lambda: T0, out_of_order_window_ms=5 * M)
        rng = np.random.default_rng(5)
        for k in range(120):
            n = int(rng.integers(1, 60))
            t = T0 - (200 - k) * M
            if k % 4 == 3:  # several samples per series, some late or repeated
                ts = np.array([t - 7 * M, t - 2 * M, t - 2 * M, t], np.int64)
            else:
                ts = np.array([t], np.int64)
            b = batch(n, ts, value_of=lambda i, t, k=k: float((i * 7 + t // STEP + k % 3) % 11), first=k % 5)
            await db.write(f"b-{k}", b)
        before = await read(db)
        again = await backend.open(clock=lambda: T0, out_of_order_window_ms=5 * M)
        assert await read(again) == before and again.head.num_samples == db.head.num_samples
        n = len(db.registry)
        assert again.head.last_ts[:n].tolist() == db.head.last_ts[:n].tolist()
        assert again.series.maxt.tolist() == db.series.maxt.tolist()
        assert again.series.mint.tolist() == db.series.mint.tolist()
        assert again._seen == db._seen and list(again._wal) == list(db._wal)

    asyncio.run(main())


def test_a_wal_written_by_the_previous_version_replays_with_the_new_entries_after_it(backend, monkeypatch):
    """WAL records in format 1 (before format 2) followed by format-2 ones: replay reads both."""
    from shardmon.shards import engine
    from tests.unit.shards.test_chunk import legacy_record

    async def main():
        db = await backend.open(clock=lambda: T0)
        with monkeypatch.context() as m:
            m.setattr(engine, "encode_record", lambda ids, refs, ts, vals, *_: legacy_record(ids, refs, ts, vals))
            await _write_minutes(db, T0 - 90 * M, 45, prefix="old")
        await _write_minutes(db, T0 - 45 * M, 45, prefix="new")
        records = [r for _, _, r in [e async for e in db.store.replay()]]
        assert [r[0] for r in records] == [0x28] * 45 + [2] * 45  # a zstd frame, then format 2
        before = await read(db)
        again = await backend.open(clock=lambda: T0)
        assert await read(again) == before and again.head.num_samples == 90 * 5

    asyncio.run(main())


def test_a_block_cut_trims_the_wal_and_moves_the_checkpoint_in_one_transaction(backend):
    async def main():
        now = [T0 + 2 * H]
        db = await backend.open(clock=lambda: now[0], max_future_time_ms=0)  # samples ahead of the clock, too
        # Four hours of one batch a minute, then one batch that spans the first block's end.
        await _write_minutes(db, T0, 4 * 60)
        await db.write("spanning", batch(5, np.array([T0 + D - S, T0 + 4 * H], np.int64)))
        before = await read(db)
        assert await db.cut_blocks() == 0  # the clock has not passed the window yet
        now[0] = T0 + 4 * H
        assert await db.cut_blocks() == 1  # [T0, T0 + 2h): the head and the clock are 1.5 blocks past it
        assert [b.meta.block_id for b in db.blocks] == [f"{T0}-{T0 + D}"]
        assert db.head.min_valid_ms == T0 + D
        assert backend.get(PREFIX + "head_mint") == str(T0 + D).encode()
        # The 120 entries wholly before the block's end are gone; the spanning one stays.
        assert await db.store.wal_length() == 4 * 60 + 1 - 120
        assert {PREFIX + f"block:{T0}-{T0 + D}:chunks", PREFIX + f"block:{T0}-{T0 + D}:series"} <= backend.keys()
        assert await read(db) == before
        # Replay skips what the spanning entry holds before the checkpoint (it is in the block): no doubles.
        again = await backend.open(clock=lambda: now[0], max_future_time_ms=0)
        assert await read(again) == before and again.head.min_valid_ms == T0 + D

    asyncio.run(main())


def test_a_cut_whose_transaction_fails_changes_nothing_and_the_next_one_succeeds(backend):
    async def main():
        now = [T0 + 4 * H]
        db = await backend.open(clock=lambda: now[0])
        await _write_minutes(db, T0, 4 * 60, n_series=2)
        before, keys = await read(db), backend.keys()
        backend.fail(db.store, "write_blocks")
        with pytest.raises(ShardUnavailableError):
            await db.cut_blocks()
        assert len(db.blocks) == 0 and db.head.min_valid_ms < T0 and backend.keys() == keys
        assert await db.store.wal_length() == 4 * 60 and await read(db) == before
        again = await backend.open(clock=lambda: now[0])
        assert await read(again) == before
        assert await again.cut_blocks() == 1 and await read(again) == before

    asyncio.run(main())


def test_an_open_that_fails_half_way_can_be_run_again(backend):
    async def main():
        db = await backend.open(clock=lambda: T0 + 4 * H)
        await _write_minutes(db, T0, 4 * 60, n_series=2)
        await db.cut_blocks()
        before = await read(db)
        db2 = ShardDB(backend.store(), block_duration_ms=D, clock=lambda: T0 + 4 * H)
        backend.fail(db2.store, "load_blocks")
        with pytest.raises(ShardUnavailableError):
            await db2.open()
        await db2.open()
        assert await read(db2) == before and len(db2.blocks) == 1

    asyncio.run(main())


def test_recovery_lowers_a_bound_from_the_future_and_keeps_the_wals_future_samples_in_blocks(backend):
    """A store written before the time guards existed (a future sample in the WAL, the head's lower
    bound moved 20 days ahead by the old Flush): recovery follows today's rules."""
    n = 10
    now = _now()

    def _batch(ts):
        """One sample per series; ``ts`` one timestamp for all, or one per series."""
        _, keys, ids = series(n)
        ts = np.broadcast_to(np.asarray(ts, np.int64), (n,)).copy()
        return SampleBatch.of(ids, keys, np.arange(n, dtype=np.uint32), ts, np.full(n, 1.0))

    def _series_ts(db, i):
        return db.select([Matcher(MatchType.EQ, "i", str(i))], -(2**62), 2**62)

    async def main():
        old = await backend.open(block_duration_ms=H, max_future_time_ms=0)  # no guard, as before
        await old.write("old-1", _batch([now + 20 * DAY] + [now - 10 * S] * (n - 1)))
        await old.flush()  # the present samples into a block; the future one stays in the head and the WAL
        await old.store.close()
        # What the old Flush left: the head's lower bound at the end of the future sample's window.
        backend.set(PREFIX + "head_mint", str(now + 20 * DAY + H).encode())

        db = await backend.open(block_duration_ms=H)
        assert db.head.min_valid_ms <= _now()
        assert db.head.time_range() is None  # the future sample is not in the head...
        future_blocks = [b for b in db.blocks if b.meta.mint_ms > now + 19 * DAY]
        assert len(future_blocks) == 1 and future_blocks[0].meta.num_samples == 1  # ...but kept in a block
        # ...which a read of the future window alone finds.
        sel = await db.select([Matcher(MatchType.EQ, "i", "0")], now + 19 * DAY, now + 21 * DAY)
        assert sel.ts.tolist() == [now + 20 * DAY]
        out = await db.write("new-1", _batch(_now()))
        assert out.appended == n and not out.rejected
        sel = await _series_ts(db, 0)
        assert sel.ts.tolist()[-1] == now + 20 * DAY
        sel = await _series_ts(db, 1)
        assert sel.ts.tolist()[0] == now - 10 * S and sel.ts.shape[0] == 2
        n_blocks = len(db.blocks)
        await db.store.close()
        again = await backend.open(block_duration_ms=H)  # replays the same WAL: the same block, not a second one
        assert len(again.blocks) == n_blocks
        await again.store.close()

    asyncio.run(main())


# -- a store that lost its data ----------------------------------------------------------------------


def test_a_flushed_store_is_noticed_writes_are_refused_reads_go_on_and_accepting_the_loss_recovers(backend):
    async def main():
        db = await backend.open(clock=lambda: T0)
        await db.write("a1", batch(3, np.array([T0 - 10 * S], np.int64)))
        before = await read(db)
        epoch = db.store.epoch
        backend.flushall()
        with pytest.raises(ShardDataLostError, match="identity key shardmon:0:identity is gone") as e:
            await db.write("a2", batch(3, np.array([T0 - 5 * S], np.int64)))
        assert e.value.retryable and "--accept-data-loss" in str(e.value)
        assert db.store.lost is not None and counter(metrics.REDIS_DATA_LOST) == 1
        # Nothing was written into the flushed store but the marker that remembers the loss.
        assert backend.keys() == {PREFIX + "data_lost"}
        # Reads go on from memory, with a warning; block maintenance waits.
        assert await read(db) == before
        assert any("lost data" in w for w in db.read_warnings())
        assert await db.cut_blocks() == 0 and await db.maintain() == (0, 0)
        with pytest.raises(ShardDataLostError):
            await db.backfill("bf", batch(1, np.array([T0 - D], np.int64)))
        # A restart without accepting the loss still refuses.
        again = await backend.open(clock=lambda: T0)
        assert again.store.lost is not None
        with pytest.raises(ShardDataLostError, match="lost data"):
            await again.write("a3", batch(3, np.array([T0 - 4 * S], np.int64)))
        # Accepting it: a new epoch over what is left, writes taken again.
        accepted = await backend.open(clock=lambda: T0, accept_data_loss=True)
        assert accepted.store.lost is None and accepted.store.epoch != epoch
        assert counter(metrics.REDIS_DATA_LOST) == 0
        assert (await accepted.write("a4", batch(3, np.array([T0 - 3 * S], np.int64)))).appended == 3
        assert PREFIX + "data_lost" not in backend.keys()
        assert [t for t, _ in (await read(accepted)).values()] == [[T0 - 3 * S]] * 3

    asyncio.run(main())


def test_a_store_rolled_back_to_an_older_snapshot_is_noticed_by_the_next_append(backend):
    async def main():
        db = await backend.open(clock=lambda: T0)
        await db.write("b1", batch(3, np.array([T0 - 10 * S], np.int64)))
        snapshot = backend.snapshot()
        await db.write("b2", batch(3, np.array([T0 - 5 * S], np.int64)))
        backend.restore(snapshot)
        with pytest.raises(ShardDataLostError, match="generation went back"):
            await db.write("b3", batch(3, np.array([T0 - 4 * S], np.int64)))
        assert PREFIX + "data_lost" in backend.keys()
        # A second shard on the same store sees the marker at start-up.
        assert (await backend.open(clock=lambda: T0)).store.lost is not None

    asyncio.run(main())


def test_verify_notices_another_identity_without_a_write(backend):
    async def main():
        db = await backend.open(clock=lambda: T0)
        await db.write("c1", batch(2, np.array([T0], np.int64)))
        assert await db.store.verify()
        # Another shard process accepts a loss on the same store: a new epoch.
        other = await backend.open(clock=lambda: T0, accept_data_loss=True)
        assert not await db.store.verify()
        assert "epoch changed" in db.store.lost
        with pytest.raises(ShardDataLostError):
            await db.write("c2", batch(2, np.array([T0 + S], np.int64)))
        await other.store.close()

    asyncio.run(main())


def test_reset_deletes_every_key_and_starts_anew(backend):
    async def main():
        db = await backend.open(clock=lambda: T0 + 4 * H)
        await _write_minutes(db, T0, 4 * 60, n_series=2)
        await db.cut_blocks()
        await db.record_metadata([("m", "gauge", "", "")])
        epoch = db.store.epoch
        await db.reset()
        assert backend.keys() == {PREFIX + "identity"} and db.store.epoch != epoch
        assert await read(db) == {} and len(db.blocks) == 0 and db.metadata_of() == []
        assert (await db.write("w-0", batch(2, np.array([T0], np.int64)))).appended == 2

    asyncio.run(main())
