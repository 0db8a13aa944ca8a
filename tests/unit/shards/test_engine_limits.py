"""The series limits of a ShardDB (shards/limits.py), on the ``backend`` of enginekit.py: the in-memory
store here, a real Redis in tests/integration/test_engine_on_redis.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from shardmon.model.errors import InvalidWriteError
from shardmon.shards import metrics
from shardmon.shards.engine import WriteOutcome
from shardmon.shards.limits import SeriesLimitError
from tests.unit.shards.enginekit import D, batch, counter, read

# -- limits ----------------------------------------------------------------------------------------


def test_the_series_limit_refuses_new_series_but_appends_the_others(backend):
    async def main():
        db = await backend.open(max_active_series=10)
        ts = np.array([1000], np.int64)
        assert (await db.write("a", batch(8, ts))).appended == 8
        rej0 = counter(metrics.SAMPLES_REJECTED, "series_limit")
        # 8 in the head, 6 new series (2 samples each) and 8 known ones: 2 new ones fit.
        partial = batch(14, np.array([2000, 3000], np.int64))
        with pytest.raises(SeriesLimitError, match="shards.max_active_series = 10") as e:
            await db.write("b", partial)
        assert e.value.outcome.appended == 20 and e.value.outcome.rejected == {"series_limit": 8}
        assert isinstance(e.value, InvalidWriteError) and not e.value.retryable
        assert counter(metrics.SAMPLES_REJECTED, "series_limit") - rej0 == 8
        assert len(db.registry) == 10
        # A batch of refused series only: nothing written, not remembered as seen.
        wal = await db.store.wal_length()
        with pytest.raises(SeriesLimitError):
            await db.write("c", batch(2, np.array([4000], np.int64), first=12))
        assert await db.store.wal_length() == wal
        # The retried partial batch is a duplicate (its accepted part is in).
        assert (await db.write("b", partial)).duplicate_batch
        data = await read(db)
        await db.store.close()
        # Replay without limits gives the same head: refused samples were never in the WAL.
        db2 = await backend.open()
        assert await read(db2) == data and len(db2.registry) == 10
        await db2.store.close()

    asyncio.run(main())


def test_the_per_metric_limit_and_series_leaving_the_head(backend):
    async def main():
        db = await backend.open(max_series_per_metric=3)
        await db.write("a", batch(3, np.array([1000], np.int64), metric="a"))
        with pytest.raises(SeriesLimitError, match="max_series_per_metric = 3 series in the head for metric a"):
            await db.write("a2", batch(5, np.array([2000], np.int64), metric="a"))
        assert (await db.write("b", batch(3, np.array([2000], np.int64), metric="b"))).appended == 3
        assert len(await read(db, "a")) == 3
        # Once the head is flushed into blocks no series is in the head: new ones fit again.
        await db.flush()
        assert (await db.write("a3", batch(3, np.array([D + 1], np.int64), metric="a", first=5))).appended == 3
        await db.store.close()

    asyncio.run(main())


def test_a_batch_refused_whole_is_judged_afresh_once_the_limit_is_raised(backend):
    async def main():
        db = await backend.open(max_active_series=2)
        await db.write("a", batch(2, np.array([1000], np.int64)))
        with pytest.raises(SeriesLimitError) as e:
            await db.write("b", batch(2, np.array([1000], np.int64), first=2))
        assert e.value.outcome == WriteOutcome(0, {"series_limit": 2}, False)
        db.max_active_series = 4
        assert (await db.write("b", batch(2, np.array([1000], np.int64), first=2))).appended == 2
        db.update_gauges()  # as the server does every few seconds
        assert counter(metrics.HEAD_SERIES) == 4

    asyncio.run(main())


def test_a_limits_message_names_what_else_the_batch_had_refused(backend):
    async def main():
        now = 1_796_400_000_000
        db = await backend.open(max_active_series=1, clock=lambda: now)
        # Two new series, each a sample now and one a day ahead: one series fits, the future samples go.
        with pytest.raises(SeriesLimitError, match="1 samples of other series appended, refused otherwise: 2 "
                                                   "too_far_in_future") as e:
            await db.write("a", batch(2, np.array([now, now + 24 * 3_600_000], np.int64)))
        assert e.value.outcome == WriteOutcome(1, {"series_limit": 1, "too_far_in_future": 2}, False)

    asyncio.run(main())
