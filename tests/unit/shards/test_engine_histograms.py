"""Native histograms in a shard: the append rules, the WAL (replay), blocks (cut, flush, compaction, retention),
backfill, and reads. On the ``backend`` of enginekit.py (in memory here; test_engine_on_redis.py runs them on a
real Redis)."""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.model.histogram import Histogram, decode
from shardmon.model.labels import Matcher, MatchType
from shardmon.shards import metrics
from shardmon.shards.hist_chunk import decode_series, encode_series
from shardmon.shards.wal import decode_record, decode_record_with_histograms, encode_record
from tests.unit.shards.enginekit import STEP, D, H, batch, counter
from tests.unit.shards.histkit import hist_batch, histograms, scrape_series

T0 = 1_796_400_000_000


def _same(a: list[Histogram], b: list[Histogram]) -> bool:
    return len(a) == len(b) and all(x.identical(y) for x, y in zip(a, b))


@settings(max_examples=150, deadline=None)
@given(st.lists(histograms(), min_size=1, max_size=12), st.integers(0, 5))
def test_chunk_round_trips_every_histogram_bit_for_bit(hists, n_floats):
    hts = T0 + np.arange(len(hists), dtype=np.int64) * 15_000 + 7
    fts = T0 + np.arange(n_floats, dtype=np.int64) * 15_000
    fvals = np.linspace(-1, 1, n_floats)
    ts, vals, got_ts, got = decode_series(encode_series(fts, fvals, hts, hists))
    assert ts.tolist() == fts.tolist() and vals.tobytes() == fvals.tobytes()
    assert got_ts.tolist() == hts.tolist()
    assert _same(got, hists)


def test_chunk_of_floats_only_stays_format_2():
    data = encode_series(np.array([T0], np.int64), np.array([1.5]))
    assert data[0] == 2
    ts, vals, hts, hists = decode_series(data)
    assert ts.tolist() == [T0] and vals.tolist() == [1.5] and hts.shape[0] == 0 and hists == []


def test_bytes_per_histogram_sample_of_a_realistic_series():
    hists = scrape_series(120)
    data = encode_series(np.empty(0, np.int64), np.empty(0), T0 + np.arange(120, dtype=np.int64) * 60_000, hists)
    per_sample = len(data) / 120
    assert _same(decode_series(data)[3], hists)
    # About 30 populated schema-3 buckets and a float sum per sample: far below their 300-byte encoding.
    assert per_sample < 60, per_sample


@settings(max_examples=60, deadline=None)
@given(st.lists(histograms(), min_size=1, max_size=6), st.integers(0, 4))
def test_wal_record_round_trips_histograms(hists, n_floats):
    b = hist_batch(list(range(T0, T0 + len(hists))), hists, n_series=2,
                   float_ts=[T0 - 1000 - k for k in range(n_floats)], float_vals=[float(k) for k in range(n_floats)])
    rec = encode_record(b.series_ids, b.sample_series, b.timestamps_ms, b.values, b.histograms)
    assert rec[0] == 3
    ids, refs, ts, vals, h = decode_record_with_histograms(rec)
    assert ids.tolist() == b.series_ids.tolist() and ts.tolist() == b.timestamps_ms.tolist()
    assert h.sample_series.tolist() == b.histograms.sample_series.tolist()
    assert h.timestamps_ms.tolist() == b.histograms.timestamps_ms.tolist()
    assert _same(h.histograms(), b.histograms.histograms())
    assert decode_record(rec)[2].tolist() == ts.tolist()


async def _read(db, metric: str = "h", start: int = -10**15, end: int = 10**15) -> dict:
    """canonical labels -> ([(ts, value bits)], [(ts, encoded histogram)])"""
    sel = await db.select([Matcher(MatchType.EQ, "__name__", metric)], start, end)
    out, pos = {}, 0
    for row, (i, c) in enumerate(zip(sel.idx.tolist(), sel.counts.tolist())):
        floats = list(zip(sel.ts[pos:pos + c].tolist(), sel.vals[pos:pos + c].view(np.uint64).tolist()))
        hs = []
        if sel.hists is not None:
            hs = [(int(sel.hists.timestamps_ms[j]), sel.hists.raw(j)) for j in range(len(sel.hists))
                  if int(sel.hists.sample_series[j]) == row]
        out[db.registry.keys[i]] = (floats, hs)
        pos += c
    return out


def test_histograms_are_appended_read_and_replayed(backend):
    hists = scrape_series(30)
    ts = [T0 + k * STEP for k in range(30)]

    async def main():
        db = await backend.open(clock=lambda: T0 + H)
        for k in range(0, 30, 10):
            out = await db.write(f"w{k}", hist_batch(ts[k:k + 10], hists[k:k + 10], n_series=3))
            assert out.appended == 30 and not out.rejected
        before = await _read(db)
        assert len(before) == 3 and all(len(hs) == 30 and not fl for fl, hs in before.values())
        assert _same([decode(r) for _, r in next(iter(before.values()))[1]], hists)
        # Label names and values know series that only have histograms.
        assert "h" in await db.label_values("__name__", [], T0, T0 + H)
        again = await backend.open(clock=lambda: T0 + H)  # a restart: the WAL replays them
        assert await _read(again) == before
        assert (await again.write("w0", hist_batch(ts[:10], hists[:10], n_series=3))).duplicate_batch

    asyncio.run(main())


def test_append_rules_as_prometheus(backend):
    h1, h2 = scrape_series(2)

    async def main():
        db = await backend.open(clock=lambda: T0 + H)
        await db.write("a", hist_batch([T0 + 2 * STEP], [h1]))
        dup = counter(metrics.SAMPLES_DUPLICATE)
        out = await db.write("same", hist_batch([T0 + 2 * STEP], [h1]))  # the same histogram again: dropped silently
        assert out.appended == 0 and not out.rejected and counter(metrics.SAMPLES_DUPLICATE) == dup + 1
        out = await db.write("clash", hist_batch([T0 + 2 * STEP], [h2]))
        assert out.rejected == {"duplicate_timestamp": 1}
        out = await db.write("old", hist_batch([T0 + STEP], [h2]))
        assert out.rejected == {"out_of_order": 1}
        # Floats and histograms interleave in one series, each newer than the series' latest.
        out = await db.write("mix", hist_batch([T0 + 4 * STEP], [h2], float_ts=[T0 + 3 * STEP], float_vals=[1.0]))
        assert out.appended == 2 and not out.rejected
        out = await db.write("f-at-h", hist_batch([], [], float_ts=[T0 + 4 * STEP], float_vals=[2.0]))
        assert out.rejected == {"duplicate_timestamp": 1}
        out = await db.write("f-old", hist_batch([], [], float_ts=[T0 + 3 * STEP + 1], float_vals=[2.0]))
        assert out.rejected == {"out_of_order": 1}
        out = await db.write("h-at-f", hist_batch([T0 + 5 * STEP], [h2], float_ts=[T0 + 5 * STEP], float_vals=[3.0]))
        assert out.appended == 1 and out.rejected == {"duplicate_timestamp": 1}
        floats, hs = (await _read(db))[next(iter(await _read(db)))]
        assert [t for t, _ in floats] == [T0 + 3 * STEP, T0 + 5 * STEP]
        assert [t for t, _ in hs] == [T0 + 2 * STEP, T0 + 4 * STEP]

    asyncio.run(main())


def test_histograms_too_far_in_future_are_refused(backend):
    h = scrape_series(1)[0]

    async def main():
        db = await backend.open(clock=lambda: T0, max_future_time_ms=600_000)
        out = await db.write("f", hist_batch([T0, T0 + H], [h, h]))
        assert out.appended == 1 and out.rejected == {"too_far_in_future": 1}

    asyncio.run(main())


def test_blocks_keep_histograms_through_cut_compaction_and_retention(backend):
    hists = scrape_series(8 * 60 // 15)
    now = [T0]

    async def main():
        db = await backend.open(clock=lambda: now[0], retention_time_ms=4 * D, compaction_ranges=[D, 3 * D])
        ts = [T0 + k * 15 * STEP for k in range(len(hists))]  # every 15 minutes for 8 hours
        for k, (t, h) in enumerate(zip(ts, hists)):
            now[0] = t
            await db.write(f"w{k}", hist_batch([t], [h], float_ts=[t - 1], float_vals=[float(k)], metric="h"))
            await db.cut_blocks()
        assert len(db.blocks) >= 2
        before = await _read(db)
        assert [x[0] for x in before[next(iter(before))][1]] == ts
        # Compaction merges the blocks' format 3 chunks; a restart reads them back the same.
        assert await db.compact() >= 1
        assert await _read(db) == before
        assert await _read(await backend.open(clock=lambda: now[0], retention_time_ms=4 * D)) == before
        now[0] += STEP
        await db.flush()
        assert db.hists.num_samples == 0 and await _read(db) == before
        # Retention deletes whole blocks, histograms with them: nothing of the series is left to read.
        now[0] = T0 + 100 * D
        await db.backfill("late", batch(1, np.array([now[0] - H], np.int64), metric="other"))
        assert await db.apply_retention() >= 1
        assert await _read(db) == {}
        assert len(await _read(db, metric="other")) == 1

    asyncio.run(main())


def test_backfill_writes_histograms_into_blocks(backend):
    hists = scrape_series(5)

    async def main():
        db = await backend.open(clock=lambda: T0 + 10 * D)
        ts = [T0 + k * STEP for k in range(5)]
        out = await db.backfill("bf", hist_batch(ts + ts[:1], hists + hists[:1]))  # a repeat kept once
        assert out.appended == 5
        got = await _read(db)
        assert [t for t, _ in got[next(iter(got))][1]] == ts

    asyncio.run(main())


def test_bucket_counts_of_a_counter_histogram_take_deltas():
    # 50 buckets' counters over 480 scrapes, bucket after bucket as chunk format 3 lays them out: each bucket's
    # first count after the previous bucket's last is a jump, which must not make the raw counts look cheaper.
    from shardmon.shards.chunk import PRED_DELTA, get_values, put_values

    rng = np.random.default_rng(7)
    counts = np.cumsum(rng.poisson(0.2, (480, 50)), axis=0).T.reshape(-1).astype(np.float64)
    plain, robust = bytearray(), bytearray()
    put_values(plain, counts)
    put_values(robust, counts, robust=True)
    assert robust[3] & 3 == PRED_DELTA  # after the mode byte, the scale and the count of exceptions (0)
    assert len(robust) < 0.8 * len(plain), (len(robust), len(plain))
    back, pos = get_values(memoryview(bytes(robust)), 0, counts.shape[0])
    assert pos == len(robust) and np.array_equal(back.view(np.uint64), counts.view(np.uint64))
