"""The aggregation push-down with replication: each series aggregated once, by one of its copies, and
only where every copy the query reads holds the same samples.

With ``shards.replication_factor`` RF > 1 a series lives on RF shards (its first RF shards in rendezvous
order, :func:`~shardmon.model.hashing.shards_for_series`). The exact path reads every copy and merges them
sample by sample (the union of their timestamps: a copy that missed writes while its shard was down has
gaps its peers fill). The push-down cannot merge samples it never moves, so it holds to this rule:

- **Deduplication.** The querier tells every shard the placement (:class:`Placement`: the shard ids, RF)
  and the shards it counts on answering (``live``). A shard aggregates only the series whose first live
  owner it is (:func:`designated`): each series once, a copy on a shard that is down covered by the next
  owner. The querier checks that the shards that answered are exactly ``live`` (else it asks again with
  those that answered, then takes the exact path).
- **Equality of the copies.** Every shard also answers, per set of owners among its series (few: at
  most C(N-1, RF-1)), how many series and samples it read in the request's range and a 64-bit digest of
  them (:func:`replica_digests`: each sample's series id, timestamp and value bits, mixed and added, so
  the order does not matter; a series with no sample in the range counts too). Where all the answering
  owners of a set agree, every copy holds the same samples in the range the evaluation reads, so the
  exact path's merge of them is any one of them and the designated copy's aggregate is the exact answer.
  Where they differ (:func:`disagreement`), the push-down answers nothing and the querier takes the exact
  path: copies are never repaired or merged here. A shard holding a series the placement does not put on
  it (``misplaced``: the shards were renumbered or resized) refuses the push-down the same way.

A digest over the whole range is cheap (a few numpy passes over the samples the shard reads anyway, and
a few bytes per owner set on the wire) but conservative: a query whose range covers a gap in one copy
takes the exact path until the gap leaves the range (or the copy is rebuilt). Two different copies pass
for equal only if their 64-bit sums collide as well as their series and sample counts (about 2**-64).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shardmon.model.hashing import mix64, shards_for_series

_G = np.uint64(0x9E3779B97F4A7C15)
_G2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SERIES_SALT = np.uint64(0xD6E8FEB86659FD93)


@dataclass(frozen=True)
class Placement:
    """Where series live and which shards the querier counts on: ``shard_ids`` (every configured shard, in
    the order placements are computed over), ``replication_factor`` and ``live`` (a subset of them)."""

    shard_ids: tuple[int, ...]
    replication_factor: int
    live: tuple[int, ...]


@dataclass(frozen=True)
class ReplicaDigest:
    """What one shard read of the series owned by ``owners`` (sorted shard ids): series, samples, digest."""

    owners: tuple[int, ...]
    series: int
    samples: int
    digest: int


def owners_of(series_ids: np.ndarray, placement: Placement) -> np.ndarray:
    """Per series, the ids of its owners in placement order, shape (n, RF)."""
    ids = np.asarray(placement.shard_ids, dtype=np.int64)
    pos = shards_for_series(np.asarray(series_ids, dtype=np.uint64), list(placement.shard_ids),
                            placement.replication_factor)
    return ids[pos]


def designated(owners: np.ndarray, placement: Placement, me: int) -> tuple[np.ndarray, int]:
    """Which series (a bool per row of ``owners``) shard ``me`` aggregates: those whose first live owner it
    is; and how many of them the placement does not put on ``me`` at all (misplaced)."""
    live = np.isin(owners, np.asarray(placement.live, dtype=np.int64))
    first = np.where(live.any(axis=1), live.argmax(axis=1), -1)
    rows = np.arange(owners.shape[0])
    mine = (first >= 0) & (owners[rows, np.maximum(first, 0)] == me)
    misplaced = int((~(owners == me).any(axis=1)).sum())
    return mine, misplaced


def replica_digests(owners: np.ndarray, series_ids: np.ndarray, counts: np.ndarray, ts: np.ndarray,
                    vals: np.ndarray) -> list[ReplicaDigest]:
    """Per set of owners, the series and samples read (samples laid end to end, ``counts`` per series) and
    their order-free digest: the wrapping sum over series of a hash of the id, plus over samples of a hash
    of (series, timestamp, value bits)."""
    n = owners.shape[0]
    if n == 0:
        return []
    counts = np.asarray(counts, dtype=np.int64)
    with np.errstate(over="ignore"):
        series_mix = mix64(np.asarray(series_ids, dtype=np.uint64) * _G)
        per_sample = np.repeat(series_mix, counts)
        bits = np.ascontiguousarray(vals, dtype=np.float64).view(np.uint64)
        # Timestamp and value bits each through an odd multiplier (a bijection), so two samples make the same
        # word only by coincidence; then one full mix.
        h = per_sample
        h ^= np.ascontiguousarray(ts, dtype=np.int64).view(np.uint64) * _G
        h ^= bits * _G2
        h = mix64(h)
        per_series = mix64(series_mix ^ _SERIES_SALT)
        nonempty = counts > 0
        if nonempty.any():
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            sums = np.add.reduceat(h, starts[nonempty], dtype=np.uint64)
            per_series[nonempty] += sums
    # Each row's owner set as one integer (its sorted owners' codes in mixed radix), grouped by one 1-D unique.
    owned = np.sort(owners, axis=1)
    shards, codes = np.unique(owned, return_inverse=True)
    codes = codes.reshape(owned.shape).astype(np.int64)
    set_key = np.zeros(n, dtype=np.int64)
    for j in range(owned.shape[1]):
        set_key = set_key * len(shards) + codes[:, j]
    keys, first, group = np.unique(set_key, return_index=True, return_inverse=True)
    sets = owned[first]
    group = group.reshape(-1)
    digests = np.zeros(sets.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(digests, group, per_series)
    n_series = np.bincount(group, minlength=sets.shape[0])
    n_samples = np.bincount(group, weights=counts, minlength=sets.shape[0]).astype(np.int64)
    return [ReplicaDigest(tuple(int(x) for x in sets[i]), int(n_series[i]), int(n_samples[i]), int(digests[i]))
            for i in range(sets.shape[0])]


def disagreement(answers: Mapping[int, tuple[Sequence[ReplicaDigest], int]], live: Sequence[int]) -> str | None:
    """Given each answering shard's digests and misplaced count (by shard id) and the shards the request
    counted on (``live``), None where the designated copies make the exact answer, else why not:
    ``"unavailable"`` (a shard counted on did not answer, so the series it was designated for are missing; or
    one that answered holds series of which no owner was counted on), ``"misplaced"`` or ``"diverged"`` (two
    answering owners of a set read different samples, or one read series of it and another none)."""
    live_set = set(live)
    if not live_set <= set(answers):
        return "unavailable"
    if any(misplaced for _, misplaced in answers.values()):
        return "misplaced"
    by_set: dict[tuple[int, ...], dict[int, ReplicaDigest]] = {}
    for shard, (digests, _) in answers.items():
        for d in digests:
            by_set.setdefault(d.owners, {})[shard] = d
    for owners, seen in by_set.items():
        if live_set.isdisjoint(owners):
            return "unavailable"
        members = [s for s in owners if s in answers]
        got = {(d.series, d.samples, d.digest) for d in seen.values()}
        if len(got) > 1 or len(seen) < len(members):
            return "diverged"
    return None


__all__ = ["Placement", "ReplicaDigest", "designated", "disagreement", "owners_of", "replica_digests"]
