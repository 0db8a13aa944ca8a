"""Placement: target keys onto scrapers (a hash ring) and series onto shards (rendezvous) move minimally."""

import numpy as np

from shardmon.model.hashing import key_hashes, offset_ms, ring_owners, shards_for_series


def _targets(n):
    return [f"10.0.{i // 250}.{i % 250}:9100".encode() for i in range(n)]


def _owners(keys, nodes):
    return dict(zip(keys, (nodes[i] for i in ring_owners(key_hashes(keys), nodes))))


def test_adding_a_fifth_scraper_moves_about_a_fifth_of_1000_targets():
    keys = _targets(1000)
    four = [f"scraper-{i}" for i in range(4)]
    five = four + ["scraper-4"]
    before, after = _owners(keys, four), _owners(keys, five)
    moved = [k for k in keys if before[k] != after[k]]
    # Every moved target went to the new scraper; none moved between the old ones.
    assert all(after[k] == "scraper-4" for k in moved)
    assert 150 <= len(moved) <= 250, len(moved)


def test_targets_spread_evenly_over_scrapers():
    counts = np.bincount(ring_owners(key_hashes(_targets(1000)), [f"scraper-{i}" for i in range(4)]))
    assert all(200 <= c <= 300 for c in counts), counts


def test_removing_a_scraper_moves_only_its_targets():
    keys = _targets(1000)
    four = [f"scraper-{i}" for i in range(4)]
    before, after = _owners(keys, four), _owners(keys, four[:3])
    assert all(before[k] == after[k] for k in keys if before[k] != "scraper-3")


def test_assignment_does_not_depend_on_list_order():
    keys = _targets(200)
    assert _owners(keys, ["a", "b", "c"]) == _owners(keys, ["c", "a", "b"])


def test_a_hundred_scrapers_one_more_or_one_less_moves_about_one_share():
    """100,000 keys over 100 scrapers: the new scraper takes about 1/101 of the keys and nothing else
    moves; a removed one gives away exactly its own; every scraper holds within 15% of the mean."""
    keys = [f"job\xffnode\xffinstance\xff10.{i >> 16}.{(i >> 8) & 255}.{i & 255}:9100".encode()
            for i in range(100_000)]
    h = key_hashes(keys)
    nodes = [f"scraper-{i}" for i in range(100)]
    base = np.array(nodes, dtype=object)[ring_owners(h, nodes)]
    grown = np.array(nodes + ["scraper-100"], dtype=object)[ring_owners(h, nodes + ["scraper-100"])]
    moved = base != grown
    assert (grown[moved] == "scraper-100").all()
    assert 0.85 <= moved.sum() / (len(keys) / 101) <= 1.15, moved.sum()
    shrunk = np.array(nodes[1:], dtype=object)[ring_owners(h, nodes[1:])]
    assert ((base != shrunk) == (base == "scraper-0")).all()
    counts = np.bincount(ring_owners(h, nodes))
    assert counts.max() / counts.mean() < 1.15 and counts.min() / counts.mean() > 0.85, counts


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
