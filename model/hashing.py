"""Rendezvous (highest-random-weight) hashing: targets onto scrapers, series onto shards.

Every key gets a weight for every node and goes to the node with the highest weight. Adding or
removing one of N nodes therefore moves only about 1/N of the keys: those whose winner changed.
Nodes are named by ids, never by list positions, so the order of a configuration list does not
matter.

Series routing is vectorised: the weights of a whole batch of series ids against every shard are
computed with numpy (a splitmix64 mix of ``series_id ^ shard_seed``), one array operation per shard.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def node_seed(node_id: str | int) -> int:
    """A stable 64-bit seed for a node id."""
    return xxhash.xxh64_intdigest(f"shardmon-node:{node_id}".encode())


def rendezvous_owner(key: bytes, node_ids: Sequence[str]) -> str:
    """The node that owns ``key`` among ``node_ids`` (for targets onto scrapers)."""
    if not node_ids:
        raise ValueError("rendezvous_owner needs at least one node")
    return max(node_ids, key=lambda n: (xxhash.xxh64_intdigest(key, seed=node_seed(n)), n))


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
