"""A shard's head statistics for /api/v1/status/tsdb (shards/tsdb_stats.py), on the in-memory store:
every label pair of the head series with its series count, restricted by selectors and, with
replication, to the series the shard is the first live replica of."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np

from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import SampleBatch
from shardmon.shards.tsdb_stats import Ownership, head_stats, owned
from tests.unit.shards.enginekit import MemoryBackend


def _labels() -> list[Labels]:
    out = []
    for i in range(30):
        out.append(Labels.from_dict({"__name__": "a", "job": f"j{i % 3}", "i": str(i)}))
    for i in range(7):
        out.append(Labels.from_dict({"__name__": "b", "job": "j0", "code": ("200", "500")[i % 2], "i": str(i)}))
    return out


def _batch(labels: list[Labels], t: int = 1000) -> SampleBatch:
    keys = [ls.canonical() for ls in labels]
    ids = np.array([ls.series_id() for ls in labels], np.uint64)
    n = len(labels)
    return SampleBatch.of(ids, keys, np.arange(n, dtype=np.uint32), np.full(n, t, np.int64), np.ones(n))


def _pairs(stats) -> Counter:
    return Counter({f"{n}={v}": int(c) for n, vs, cs in stats.labels for v, c in zip(vs, cs.tolist())})


def _expected(labels) -> Counter:
    return Counter(f"{n}={v}" for ls in labels for n, v in ls)


def test_every_pair_of_the_head_with_its_series_count():
    async def main():
        db = await MemoryBackend().open()
        labels = _labels()
        await db.write("w", _batch(labels))
        stats = await head_stats(db, [], None)
        assert stats.num_series == len(labels) == stats.chunk_count
        assert _pairs(stats) == _expected(labels)
        assert (stats.min_time_ms, stats.max_time_ms) == (1000, 1000)
        # match[]: the union of the selectors.
        sel = [[Matcher(MatchType.EQ, "__name__", "b")], [Matcher(MatchType.RE, "i", "1|2")]]
        stats = await head_stats(db, sel, None)
        chosen = [ls for ls in labels if ls.name == "b" or ls.get("i") in ("1", "2")]
        assert stats.num_series == len(chosen) and _pairs(stats) == _expected(chosen)
        # A series whose samples all left the head (cut into blocks) no longer counts, as Prometheus's head GC.
        await db.flush()
        stats = await head_stats(db, [], None)
        assert stats.num_series == 0 and stats.labels == []
        assert (stats.min_time_ms, stats.max_time_ms) == (2**63 - 1, -(2**63))

    asyncio.run(main())


def test_with_replication_each_series_counts_once_on_its_first_live_replica():
    async def main():
        labels = _labels()
        shard_ids = [0, 1, 2]
        batch = _batch(labels)
        owners = shards_for_series(batch.series_ids, shard_ids, 2)
        dbs = {}
        for sid in shard_ids:  # each shard gets the series it holds a replica of, as the forwarder sends them
            b = MemoryBackend()
            dbs[sid] = db = await b.open()
            mine = [ls for ls, o in zip(labels, owners) if sid in o.tolist()]
            db.store.shard_id = sid
            if mine:
                await db.write("w", _batch(mine))
        for live in ([0, 1, 2], [0, 2], [1]):
            own = Ownership(shard_ids, 2, live)
            total = Counter()
            n = 0
            for sid in live:
                s = await head_stats(dbs[sid], [], own)
                total += _pairs(s)
                n += s.num_series
            # Every series whose replicas include a live shard, counted once.
            reach = [ls for ls, o in zip(labels, owners) if set(o.tolist()) & set(live)]
            assert n == len(reach) and total == _expected(reach)

    asyncio.run(main())


def test_owned_picks_the_first_live_replica():
    ids = np.arange(1, 200, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    own_all = Ownership([3, 5, 7], 2, [3, 5, 7])
    counts = sum(owned(ids, sid, own_all).astype(int) for sid in (3, 5, 7))
    assert (counts == 1).all()
    # Shard 5 down: shards 3 and 7 share all its series; a series on neither counts nowhere (none with RF 2 of 3).
    own = Ownership([3, 5, 7], 2, [3, 7])
    assert (owned(ids, 3, own).astype(int) + owned(ids, 7, own).astype(int) == 1).all()
    assert not owned(ids, 5, own).any()
