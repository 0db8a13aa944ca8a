"""A shard's cardinality statistics over its head, the shard's part of ``/api/v1/status/tsdb``.

Prometheus computes its TSDB status from the head's postings: per label name its values and each value's
series count. A shard answers exactly that for its own head series (those with a sample at or after the
head's lower bound, the series the series limits count), every pair and not only the top ten, because
the querier merges the shards before ranking: a label value present on several shards is one value,
and a pair's series count is the sum over the shards. Optionally restricted to the series matching one of
several selectors (``match[]``, Shardmon's extension) and, with replication, to the series this shard is
the first live replica of, so that each series is counted once over its copies.

The counting runs in a worker thread over a snapshot of the postings (copied pair by pair, each copy
atomic), so the event loop keeps acknowledging writes while a large shard is counted.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Matcher
from shardmon.shards.hist_head import joint_range

_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)


class Ownership(NamedTuple):
    """With replication: the placement (``shard_ids``, ``replication_factor``) and the shards that answer;
    a series counts on the first of its replicas that is live."""

    shard_ids: Sequence[int]
    replication_factor: int
    live_shard_ids: Sequence[int]


class HeadStats(NamedTuple):
    """What one shard answers: the counted head series, Shardmon's chunk count (one run of samples per head
    series), the head's time range, and per label name its values with their series counts."""

    num_series: int
    chunk_count: int
    min_time_ms: int
    max_time_ms: int
    labels: list[tuple[str, list[str], np.ndarray]]


def owned(series_ids: np.ndarray, self_id: int, own: Ownership) -> np.ndarray:
    """Per series: whether ``self_id`` is its first replica among the live shards."""
    ids = list(own.shard_ids)
    rf = max(1, min(own.replication_factor, len(ids)))
    owners = np.asarray(ids, np.int64)[shards_for_series(series_ids, ids, rf)]  # (n, rf) shard ids, best first
    live = np.isin(owners, np.asarray(list(own.live_shard_ids), np.int64))
    first = np.where(live.any(axis=1), live.argmax(axis=1), -1)
    n = owners.shape[0]
    chosen = np.where(first >= 0, owners[np.arange(n), np.maximum(first, 0)], -1)
    return chosen == self_id


def count_pairs(postings: list[tuple[str, list[tuple[str, array]]]], keep: np.ndarray
                ) -> list[tuple[str, list[str], np.ndarray]]:
    """Per label name, the values some kept series has and how many kept series have each. ``postings`` is
    a snapshot of the index (name -> [(value, series idx)]); idx past ``keep`` (series added since) do not
    count. Worker-thread safe: each postings array is copied at once, the index is not touched otherwise."""
    n = keep.shape[0]
    out = []
    for name, values in postings:
        flat = array("q")
        ends = []
        for _, p in values:
            flat.extend(p)
            ends.append(len(flat))
        if not ends:
            continue
        idx = np.frombuffer(flat, np.int64)
        hit = np.zeros(idx.shape[0], np.int64)
        inside = idx < n
        hit[inside] = keep[idx[inside]]
        cum = np.concatenate(([0], np.cumsum(hit)))
        ends_a = np.asarray(ends, np.int64)
        starts = np.concatenate(([0], ends_a[:-1]))
        counts = cum[ends_a] - cum[starts]
        nz = np.flatnonzero(counts)
        if nz.shape[0]:
            out.append((name, [values[i][0] for i in nz.tolist()], counts[nz].astype(np.uint64)))
    return out


async def head_stats(db, selectors: Sequence[Sequence[Matcher]], ownership: Ownership | None) -> HeadStats:
    """The statistics of ``db``'s (a :class:`~shardmon.shards.engine.ShardDB`) head series, those matching
    one of ``selectors`` (none: all), those it owns under ``ownership`` (None: all)."""
    series, head = db.series, db.head
    keep = series.in_head(head, getattr(db, "hists", None))
    if selectors:
        matched = np.zeros(keep.shape[0], bool)
        for ms in selectors:
            idx = await series.index.select_async(ms)
            matched[idx[idx < keep.shape[0]]] = True
        keep &= matched
    if ownership is not None and ownership.shard_ids:
        n = keep.shape[0]
        keep &= owned(db.registry.ids[:n], db.store.shard_id, ownership)
    rng = joint_range(head.time_range(), db.hists.time_range() if getattr(db, "hists", None) else None)
    snapshot = series.index.postings_snapshot()
    labels = await asyncio.to_thread(count_pairs, snapshot, keep)
    num = int(keep.sum())
    return HeadStats(num, num, rng[0] if rng else _INT64_MAX, rng[1] if rng else _INT64_MIN, labels)


__all__ = ["HeadStats", "Ownership", "count_pairs", "head_stats", "owned"]
