"""Placing keys on nodes so that a change of nodes moves as few keys as possible.

Two placements, both keyed by node *ids* (never list positions, so the order of a configuration list
does not matter):

- **Targets and rule groups onto scrapers and rulers: a hash ring** (:func:`ring_owners`). Every node
  puts :data:`VNODES` points on a 64-bit ring (splitmix64 of its seed); a key belongs to the node of the
  first point at or after the key's hash. Adding a node moves exactly the keys that land on its new
  points, and removing one moves exactly its own keys, so a change of one of N nodes moves about 1/N of
  the keys and none between the other nodes. With 4,096 points per node a node's share is within about
  1.6% of 1/N (the spread of the targets themselves adds sqrt(targets per node)). It is all numpy: a
  million keys over a thousand nodes are placed in a fraction of a second (``bench/run --assign``),
  where a weight per key and node (rendezvous hashing) would be 10^9 hashes.
- **Series onto shards: rendezvous (highest-random-weight) hashing** (:func:`shards_for_series`): the
  weights of a batch of series ids against every shard (a splitmix64 mix of ``series_id ^ shard_seed``,
  one numpy operation per shard), so a series' replicas are simply its next-best shards. Shards are
  few, so the N weights per series are cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import xxhash

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic, a bijection)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


#: splitmix64's finaliser, for other modules' order-free digests (a bijection of uint64 arrays).
mix64 = _mix64


def node_seed(node_id: str | int) -> int:
    """A stable 64-bit seed for a node id."""
    return xxhash.xxh64_intdigest(f"shardmon-node:{node_id}".encode())


#: Points on the ring per node.
VNODES = 4096
_G = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment
_INDEX_BITS = 20  # the low bits of a ring point hold its node's index, so one sort orders both
_INDEX_MASK = np.uint64((1 << _INDEX_BITS) - 1)


def key_hashes(keys: Iterable[bytes]) -> np.ndarray:
    """The ring positions (xxh64) of byte-string keys, as a uint64 array."""
    keys = list(keys)
    h = xxhash.xxh64_intdigest
    return np.fromiter((h(k) for k in keys), dtype=np.uint64, count=len(keys))


def ring_points(node_ids: Sequence[str]) -> np.ndarray:
    """The sorted ring of ``sorted(node_ids)``: :data:`VNODES` points per node, each point's low
    bits the index of its node in ``sorted(node_ids)``."""
    if len(node_ids) > 1 << _INDEX_BITS:
        raise ValueError(f"a ring holds at most {1 << _INDEX_BITS} nodes, not {len(node_ids)}")
    seeds = np.array([node_seed(n) for n in sorted(node_ids)], dtype=np.uint64)
    with np.errstate(over="ignore"):
        points = _mix64(seeds[:, None] + np.arange(1, VNODES + 1, dtype=np.uint64)[None, :] * _G)
    points = (points & ~_INDEX_MASK) | np.arange(len(seeds), dtype=np.uint64)[:, None]
    points = points.ravel()
    points.sort()
    return points


def ring_owners(hashes: np.ndarray, node_ids: Sequence[str]) -> np.ndarray:
    """For each key hash, the position in ``node_ids`` of its owner on the ring of ``node_ids``."""
    if not node_ids:
        raise ValueError("no nodes to place keys on")
    hashes = np.asarray(hashes, dtype=np.uint64)
    points = ring_points(node_ids)
    order = np.argsort(hashes)  # sorted queries make the binary searches cache-friendly
    at = np.searchsorted(points, hashes[order])
    at[at == points.size] = 0  # past the last point: the ring wraps to the first
    by_sorted = np.argsort(np.array(node_ids, dtype=object), kind="stable")  # sorted index -> position
    owners = np.empty(hashes.size, dtype=np.int64)
    owners[order] = by_sorted[(points[at] & _INDEX_MASK).astype(np.int64)]
    return owners


def series_weights(series_ids: np.ndarray, shard_ids: Sequence[int]) -> np.ndarray:
    """Weights of shape ``(len(series_ids), len(shard_ids))``: higher wins."""
    ids = np.asarray(series_ids, dtype=np.uint64)
    out = np.empty((ids.shape[0], len(shard_ids)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j, sid in enumerate(shard_ids):
            out[:, j] = _mix64(ids ^ np.uint64(node_seed(sid)))
    return out


def shards_for_series(series_ids: np.ndarray, shard_ids: Sequence[int], replicas: int = 1) -> np.ndarray:
    """For each series, the positions in ``shard_ids`` of its ``replicas`` owners, best first.

    Returns an int array of shape ``(n, replicas)``. The first column is the primary shard; the next
    ones are the next distinct shards in the series' own hash order (the replication copies).
    """
    if not shard_ids:
        raise ValueError("no shards configured")
    replicas = min(replicas, len(shard_ids))
    weights = series_weights(series_ids, shard_ids)
    if replicas == 1:
        return weights.argmax(axis=1).reshape(-1, 1)
    return np.argsort(weights, axis=1, kind="stable")[:, ::-1][:, :replicas]


def offset_ms(key: bytes, interval_ms: int) -> int:
    """A stable offset in ``[0, interval_ms)`` for a key, to spread scrapes over the interval."""
    return xxhash.xxh64_intdigest(key, seed=0x5C2A) % max(interval_ms, 1)
