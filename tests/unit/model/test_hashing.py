"""Rendezvous hashing: target keys onto scrapers and series onto shards move minimally."""

import numpy as np

from shardmon.model.hashing import offset_ms, rendezvous_owner, shards_for_series


def _targets(n):
    return [f"10.0.{i // 250}.{i % 250}:9100".encode() for i in range(n)]


def test_adding_a_fifth_scraper_moves_about_a_fifth_of_1000_targets():
    keys = _targets(1000)
    four = [f"scraper-{i}" for i in range(4)]
    five = four + ["scraper-4"]
    before = {k: rendezvous_owner(k, four) for k in keys}
    after = {k: rendezvous_owner(k, five) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    # Every moved target went to the new scraper; none moved between the old ones.
    assert all(after[k] == "scraper-4" for k in moved)
    assert 150 <= len(moved) <= 250, len(moved)


def test_targets_spread_evenly_over_scrapers():
    keys = _targets(1000)
    scrapers = [f"scraper-{i}" for i in range(4)]
    counts = {s: 0 for s in scrapers}
    for k in keys:
        counts[rendezvous_owner(k, scrapers)] += 1
    assert all(200 <= c <= 300 for c in counts.values()), counts


def test_removing_a_scraper_moves_only_its_targets():
    keys = _targets(1000)
    four = [f"scraper-{i}" for i in range(4)]
    three = four[:3]
    before = {k: rendezvous_owner(k, four) for k in keys}
    after = {k: rendezvous_owner(k, three) for k in keys}
    assert all(before[k] == after[k] for k in keys if before[k] != "scraper-3")


def test_assignment_does_not_depend_on_list_order():
    keys = _targets(200)
    a = [rendezvous_owner(k, ["a", "b", "c"]) for k in keys]
    b = [rendezvous_owner(k, ["c", "a", "b"]) for k in keys]
    assert a == b


def test_series_routing_is_balanced_and_stable_when_a_shard_is_added():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 2**63, 20_000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    three = [0, 1, 2]
    four = [0, 1, 2, 3]
    before = np.asarray(three)[shards_for_series(ids, three)[:, 0]]
    after = np.asarray(four)[shards_for_series(ids, four)[:, 0]]
    counts = np.bincount(before, minlength=3)
    assert counts.min() > 0.3 * 20_000 * 0.9, counts
    moved = before != after
    assert np.all(after[moved] == 3)
    assert 0.2 < moved.mean() < 0.3


def test_series_routing_uses_shard_ids_not_positions():
    ids = np.arange(1, 5000, dtype=np.uint64)
    a = np.asarray([5, 9])[shards_for_series(ids, [5, 9])[:, 0]]
    b = np.asarray([9, 5])[shards_for_series(ids, [9, 5])[:, 0]]
    assert np.array_equal(a, b)


def test_replicas_go_to_distinct_shards_primary_first():
    ids = np.arange(1, 2000, dtype=np.uint64)
    owners = shards_for_series(ids, [0, 1, 2], replicas=2)
    assert owners.shape == (1999, 2)
    assert np.all(owners[:, 0] != owners[:, 1])
    assert np.array_equal(owners[:, 0], shards_for_series(ids, [0, 1, 2])[:, 0])


def test_scrape_offsets_are_stable_and_within_the_interval():
    keys = _targets(500)
    offs = [offset_ms(k, 15_000) for k in keys]
    assert all(0 <= o < 15_000 for o in offs)
    assert offs == [offset_ms(k, 15_000) for k in keys]
    assert len(set(offs)) > 400
