"""The head's append rules (Prometheus's) and reads."""

import numpy as np
import pytest

from shardmon.model.labels import Labels
from shardmon.model.samples import STALE_NAN
from shardmon.shards import head as head_module
from shardmon.shards.head import Head
from shardmon.shards.registry import SeriesRegistry


def _head(n_series=3):
    reg = SeriesRegistry()
    labels = [Labels.from_dict({"__name__": "m", "i": str(i)}) for i in range(n_series)]
    reg.add([ls.series_id() for ls in labels], [ls.canonical() for ls in labels])
    return Head(reg)


def _append(head, idx, ts, vals):
    return head.append(np.asarray(idx, np.int64), np.asarray(ts, np.int64), np.asarray(vals, np.float64))


def test_in_order_samples_are_appended_and_read_back():
    h = _head()
    r = _append(h, [0, 1, 0, 1], [10, 10, 20, 20], [1, 2, 3, 4])
    assert r.appended == 4 and not r.rejected
    ts, vals = h.read(0, 0, 100)
    assert ts.tolist() == [10, 20] and vals.tolist() == [1, 3]
    ts, _ = h.read(1, 15, 20)
    assert ts.tolist() == [20]


def test_out_of_order_and_conflicting_duplicates_are_rejected_by_reason():
    h = _head()
    _append(h, [0], [100], [1.0])
    r = _append(h, [0, 0, 0], [50, 100, 100], [9.0, 1.0, 2.0])
    assert r.appended == 0
    assert r.rejected == {"out_of_order": 1, "duplicate_timestamp": 1}
    assert r.duplicates == 1  # Same timestamp, same value: accepted silently, stored once.
    ts, vals = h.read(0, 0, 1000)
    assert ts.tolist() == [100] and vals.tolist() == [1.0]


def test_a_rejected_sample_does_not_lower_the_bar_for_the_next():
    h = _head()
    _append(h, [0], [100], [1.0])
    r = _append(h, [0, 0], [30, 70], [1.0, 2.0])
    assert r.rejected == {"out_of_order": 2}


def test_samples_below_the_head_lower_bound_are_out_of_bounds():
    h = _head()
    h.min_valid_ms = 1000
    r = _append(h, [0, 1], [999, 1000], [1, 1])
    assert r.rejected == {"out_of_bounds": 1} and r.appended == 1


def test_staleness_markers_are_kept_bit_exact():
    h = _head()
    _append(h, [2, 2], [10, 20], [1.0, STALE_NAN])
    _, vals = h.read(2, 0, 100)
    assert vals.view(np.uint64)[1] == 0x7FF0000000000002


def test_split_before_moves_old_samples_out_and_raises_the_bound():
    h = _head()
    _append(h, [0, 1, 0, 1], [10, 10, 30, 30], [1, 2, 3, 4])
    cut = h.split_before(20)
    assert cut.ts.tolist() == [10, 10] and h.min_valid_ms == 20
    assert h.read(0, 0, 100)[0].tolist() == [30]
    assert h.num_samples == 2


def test_registry_looks_up_whole_arrays():
    h = _head(5)
    reg = h.registry
    ids = np.array([reg.ids[3], 12345, reg.ids[0]], dtype=np.uint64)
    assert reg.lookup(ids).tolist() == [3, -1, 0]


def test_read_many_merges_the_unsorted_tail_with_the_sorted_part():
    rng = np.random.default_rng(7)
    reg = SeriesRegistry()
    reg.add(list(range(1, 51)), [f"s{i}".encode() for i in range(1, 51)])
    head = Head(reg)
    expected: dict[int, list[tuple[int, float]]] = {i: [] for i in range(50)}
    for step in range(40):  # batches of random series, each at a later time
        idx = np.unique(rng.integers(0, 50, 30))
        ts = np.full(idx.shape[0], 1000 * step, np.int64)
        vals = rng.random(idx.shape[0])
        head.append(idx, ts, vals)
        for i, t, v in zip(idx.tolist(), ts.tolist(), vals.tolist()):
            expected[i].append((t, v))
        if step == 20:
            head.columns()  # the first half sorted, the rest stays in the tail
    want = np.array([45, 3, 17, 0, 49])
    counts, ts, vals = head.read_many(want, 5_000, 35_000)
    assert head._tail, "the read must not have sorted the tail away"
    at = 0
    for i, n in zip(want.tolist(), counts.tolist()):
        got = list(zip(ts[at:at + n].tolist(), vals[at:at + n].tolist()))
        assert got == [(t, v) for t, v in expected[i] if 5_000 <= t <= 35_000]
        at += n
    assert at == ts.shape[0]


def test_out_of_order_samples_within_the_window_are_kept_in_time_order():
    h = _head()
    h.out_of_order_window_ms = 100
    _append(h, [0, 0, 1], [100, 200, 200], [1, 2, 3])
    r = _append(h, [0, 0, 0, 1], [150, 50, 200, 120], [9, 9, 2, 4])
    # 150 and 120 are late but inside the window (200 - 100); 50 is outside it; (0, 200, 2) repeats.
    assert r.appended == 2 and r.rejected == {"out_of_order": 1} and r.duplicates == 1
    ts, vals = h.read(0, 0, 1000)
    assert ts.tolist() == [100, 150, 200] and vals.tolist() == [1, 9, 2]
    ts, vals = h.read(1, 0, 1000)
    assert ts.tolist() == [120, 200] and vals.tolist() == [4, 3]
    # A late sample on an existing timestamp: the same value is a duplicate, another value a conflict.
    r = _append(h, [0, 0], [150, 100], [9, 7])
    assert r.appended == 0 and r.duplicates == 1 and r.rejected == {"duplicate_timestamp": 1}
    # The latest sample is still 200: a new one at 210 is in order.
    assert _append(h, [0], [210], [5]).appended == 1
    assert h.read(0, 0, 1000)[0].tolist() == [100, 150, 200, 210]


def test_without_a_window_late_samples_are_out_of_order():
    h = _head()
    _append(h, [0], [200], [1])
    assert _append(h, [0], [150], [1]).rejected == {"out_of_order": 1}


def _scrape_like_batches(rng, n_series: int, rounds: int):
    """Batches as scrapes and WAL replay bring them (each series once, newer than before, in no particular
    series order) mixed with every other kind: a series twice, late, repeated or conflicting samples,
    samples below the bound."""
    t = 1_000
    for r in range(rounds):
        t += 1_000
        idx = rng.permutation(n_series)[: rng.integers(1, n_series + 1)]
        ts = np.full(idx.shape[0], t) + rng.integers(0, 5, idx.shape[0])
        vals = rng.normal(size=idx.shape[0])
        kind = r % 5
        if kind == 1:  # a few series twice
            idx = np.concatenate((idx, idx[:3]))
            ts = np.concatenate((ts, ts[:3] + 500 * (r % 2)))
            vals = np.concatenate((vals, vals[:3]))
        elif kind == 2:  # late, repeated and conflicting samples
            ts[:2] -= 3_000
            ts[2:4] = t - 1_000
            vals[3] = 7.5
        elif kind == 3:  # below the bound
            ts[:1] = 0
        yield idx.astype(np.int64), ts.astype(np.int64), vals


def test_scrape_like_batches_take_the_short_path_to_the_same_head_as_the_full_checks(monkeypatch):
    """Head.append keeps a batch with each series once, all newer than their latest, without sorting or
    checking each sample against its batch; any other batch is checked in full. Both ways end in the same
    head (samples, latest values, bounds) and the same counts."""
    for window in (0, 2_500):
        heads = []
        for short in (True, False):
            rng = np.random.default_rng(11)
            h = _head(40)
            h.min_valid_ms = 500
            h.out_of_order_window_ms = window
            taken = []
            if short:
                def counted(*a, real=h._append_fresh, taken=taken):
                    taken.append(real(*a))
                    return taken[-1]
                monkeypatch.setattr(h, "_append_fresh", counted)
            else:
                monkeypatch.setattr(h, "_append_fresh", lambda *a: None)
            results = [h.append(i, t, v) for i, t, v in _scrape_like_batches(rng, 40, 60)]
            if short:
                assert sum(r is not None for r in taken) >= 20  # the short path was taken, and not always
                assert sum(r is None for r in taken) >= 20
            c = h.columns()
            heads.append((results, c.idx.tolist(), c.ts.tolist(), c.vals.tolist(), h.last_ts[:40].tolist(),
                          h.last_val[:40].tolist(), h.num_samples, h.time_range()))
        assert heads[0] == heads[1]
        assert sum(r.appended for r in heads[0][0]) > 1000 and any(r.rejected for r in heads[0][0])


def test_a_scrape_like_batch_is_kept_in_columns_of_the_heads_own():
    """The columns a batch comes in may be views of a larger buffer (a WAL record, a request): the head
    keeps copies, so it never holds that buffer, nor sees it change."""
    h = _head()
    buf = np.arange(12, dtype=np.int64)
    idx, ts = buf[0:3], buf[3:6] * 10
    vals = np.array([1.0, 2.0, 3.0])
    assert _append(h, idx[::-1].copy(), ts, vals).appended == 3
    ts[:] = -1
    vals[:] = 0
    assert h.read(0, 0, 100)[0].tolist() == [50] and h.read(2, 0, 100)[1].tolist() == [1.0]


def test_a_table_of_known_series_is_looked_up_again_from_memory():
    reg = SeriesRegistry()
    reg.add(list(range(1, 101)), [f"s{i}".encode() for i in range(1, 101)])
    table = np.arange(100, 0, -1, dtype=np.uint64)  # every series known
    first = reg.lookup(table)
    again = reg.lookup(table.copy())
    assert first.tolist() == list(range(99, -1, -1)) and again is first
    assert not again.flags.writeable  # shared: a caller cannot change it for the next one
    # A table with a series not known yet is not kept: once it is registered, the lookup finds it.
    partly = np.concatenate((table[:50], np.array([500], np.uint64)))
    assert reg.lookup(partly).tolist()[-1] == -1
    reg.add([500], [b"s500"])
    assert reg.lookup(partly).tolist()[-1] == 100
    # Bounded: ids of at most twice the series' count (or 65,536) are kept, the least recently used go.
    rng = np.random.default_rng(3)
    for _ in range(1000):
        reg.lookup(rng.permutation(table))
    assert 60_000 < reg._tables_size <= 1 << 16
    last = rng.permutation(table)
    assert reg.lookup(last) is reg.lookup(last)


def test_many_keys_registered_at_once_get_the_labels_each_would_alone():
    keys = [Labels.from_dict({"__name__": f"m{i % 7}", "job": "j", "i": str(i), "é": "ü\u2603"}).canonical()
            for i in range(300)]
    reg = SeriesRegistry()
    reg.add(list(range(300)), keys)
    assert reg.labels == [Labels.from_canonical(k) for k in keys]
    assert all(type(ls) is Labels for ls in reg.labels)
    assert reg.labels[0][0] is reg.labels[7][0]  # pairs shared between series


def _reference_check(h, ref, rng):
    """Every series' samples in random ranges as a plain per-series store holds them."""
    for _ in range(20):
        lo, hi = sorted(rng.choice(sorted({t for pts in ref.values() for t in pts} | {0}), 2))
        idx = rng.permutation(len(ref))[: rng.integers(1, len(ref) + 1)]  # any order, as reads ask (label order)
        counts, ts, vals = h.read_many(idx, int(lo), int(hi))
        pos = 0
        for i, c in zip(idx.tolist(), counts.tolist()):
            want = sorted((t, v) for t, v in ref[i].items() if lo <= t <= hi)
            assert list(zip(ts[pos:pos + c].tolist(), vals[pos:pos + c].tolist())) == want
            pos += c


@pytest.mark.parametrize("piece", [2, 1 << 17])
def test_reads_cuts_and_late_samples_agree_with_a_plain_store_over_short_and_49_day_spans(monkeypatch, piece):
    # The sorted part keeps (series, time since a base) in one 64-bit key while the head spans less
    # than 2^32 ms; beyond that it keeps columns. Either way reads and cuts see the same samples, with
    # the sorted part in one piece or in several (pieces of 2 series here; 131,072 in the shard).
    monkeypatch.setattr(head_module, "_PART_SERIES", piece)
    day = 86_400_000
    for span in (10_000, 60 * day):
        rng = np.random.default_rng(span)
        h = _head(5)
        h.out_of_order_window_ms = span
        ref = {i: {} for i in range(5)}
        t0 = 1_790_000_000_000
        for step in range(40):
            idx = rng.integers(0, 5, 8)
            ts = t0 + rng.integers(0, span, 8)
            vals = rng.random(8)
            order = np.lexsort((ts, idx))
            r = _append(h, idx, ts, vals)
            # What the head kept: read it back against the reference's rules (late samples allowed).
            for i, t, v in zip(idx[order].tolist(), ts[order].tolist(), vals[order].tolist()):
                if t >= h.min_valid_ms and t not in ref[i]:
                    ref[i][t] = v
            assert r.appended + sum(r.rejected.values()) + r.duplicates == 8
            if step % 7 == 3:
                h.columns()  # fold the tail into the sorted part now and then
            if step == 25:
                bound = t0 + span // 2
                cut = h.split_before(bound)
                got = {(i, t, v) for i, t, v in zip(cut.idx.tolist(), cut.ts.tolist(), cut.vals.tolist())}
                assert got == {(i, t, v) for i in ref for t, v in ref[i].items() if t < bound}
                ref = {i: {t: v for t, v in ref[i].items() if t >= bound} for i in ref}
            _reference_check(h, ref, rng)
        c = h.columns()
        assert c.ts.tolist() == [t for i in range(5) for t in sorted(ref[i])]
        assert c.offsets.tolist() == np.cumsum([0] + [len(ref[i]) for i in range(5)]).tolist()


def test_fold_tail_merges_a_tail_half_the_size_of_the_sorted_part(monkeypatch):
    # The shard's maintenance folds the tail in when no read does (appends alone never sort).
    monkeypatch.setattr(head_module, "_TAIL_MERGE_MIN", 4)
    h = _head(2)
    _append(h, [0, 1, 0, 1], [1, 1, 2, 2], [1.0, 2.0, 3.0, 4.0])
    for t in range(3, 8):
        _append(h, [0, 1], [t, t], [float(t), float(t)])
    assert h._tail, "appends alone do not merge"
    assert h.fold_tail()
    assert not h._tail and not h.fold_tail()
    ts, vals = h.read(1, 0, 100)
    assert ts.tolist() == [1, 2, 3, 4, 5, 6, 7] and vals.tolist() == [2.0, 4.0, 3.0, 4.0, 5.0, 6.0, 7.0]
