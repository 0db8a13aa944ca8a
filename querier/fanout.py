"""The fan-out: a :class:`~model.storage.Querier` over every shard, itself just another Querier.

Each call goes to all shards in parallel (a thread per shard call; the gRPC client blocks), and the
answers, each sorted by labels, are merged k-way. A series found on several shards (replicas) is
merged sample by sample, identical timestamps kept once. With replication factor RF, up to RF-1
failed shards lose no series (each has a replica on another shard), so the answer is complete and
says nothing. From RF failures on, a failed shard becomes a warning (``partial_response: warn``,
the answer is flagged as possibly incomplete) or fails the whole call (``abort``), as Thanos's
partial-response strategies. (Samples written while one replica was down exist only on the others;
there is no repair yet, so a later failure of those others can hide them without a warning.)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from model.errors import QueryUnavailableError, ShardmonError
from model.labels import Matcher
from model.storage import PARTIAL_PREFIX, Series, SeriesSet
from querier import metrics
from shards.client import ShardClient

T = TypeVar("T")


def merge_series(sets: Sequence[list[Series]]) -> list[Series]:
    """Merge lists of series sorted by labels into one; equal label sets are merged by timestamp."""
    if len(sets) == 1:
        return sets[0]
    out: list[Series] = []
    for s in heapq.merge(*sets, key=lambda s: s.labels):
        if out and out[-1].labels == s.labels:
            prev = out[-1]
            ts = np.concatenate((prev.timestamps_ms, s.timestamps_ms))
            vals = np.concatenate((prev.values, s.values))
            ts, first = np.unique(ts, return_index=True)
            out[-1] = Series(s.labels, ts, vals[first])
        else:
            out.append(s)
    return out


class FanoutQuerier:
    """Reads from every shard and merges; see the module docstring for failures."""

    def __init__(self, clients: Sequence[ShardClient], *, partial_response: str = "warn", timeout_s: float = 120.0,
                 replication_factor: int = 1) -> None:
        self.clients = list(clients)
        #: Every series is on this many distinct shards: up to RF-1 of them failing loses no series.
        self.replication_factor = replication_factor
        self.partial_response = partial_response
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(4, 4 * len(self.clients)), thread_name_prefix="fanout")

    def _all(self, call: Callable[[ShardClient], T]) -> tuple[list[T], list[str]]:
        """Call every shard. Up to RF-1 failed shards leave the answer complete (each series has a
        replica among the others); more make it partial: warnings, or an error with ``abort``."""
        futures = [self._pool.submit(call, c) for c in self.clients]
        results: list[T] = []
        failed: list[tuple[ShardClient, ShardmonError]] = []
        for c, f in zip(self.clients, futures):
            try:
                results.append(f.result())
                metrics.SHARD_REQUESTS.labels(str(c.shard_id), "ok").inc()
            except ShardmonError as exc:
                metrics.SHARD_REQUESTS.labels(str(c.shard_id), "error").inc()
                failed.append((c, exc))
        if not failed or len(failed) < self.replication_factor:
            return results, []
        if self.partial_response == "abort":
            c, exc = failed[0]
            raise QueryUnavailableError(f"shard {c.shard_id} failed: {exc}") from exc
        return results, [f"{PARTIAL_PREFIX}shard {c.shard_id} ({c.address}) failed: {exc}" for c, exc in failed]

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False
    ) -> SeriesSet:
        results, warnings = self._all(
            lambda c: c.series(matchers, start_ms, end_ms, skip_samples=skip_samples, timeout_s=self.timeout_s)
        )
        merged = merge_series(results) if results else []
        metrics.SERIES_FETCHED.inc(len(merged))
        metrics.SAMPLES_FETCHED.inc(sum(s.timestamps_ms.shape[0] for s in merged))
        return SeriesSet(merged, warnings)

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> tuple[list[str], list[str]]:
        results, warnings = self._all(lambda c: c.label_names(matchers, start_ms, end_ms))
        return sorted(set().union(*results)) if results else [], warnings

    def label_values(
        self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> tuple[list[str], list[str]]:
        results, warnings = self._all(lambda c: c.label_values(name, matchers, start_ms, end_ms))
        return sorted(set().union(*results)) if results else [], warnings

    def metadata(self, metric: str = "", limit: int = 0) -> tuple[dict[str, list[dict]], list[str]]:
        """Metric metadata from every shard: family -> distinct ``{type, help, unit}``, and warnings."""
        results, warnings = self._all(lambda c: c.metadata(metric, limit))
        out: dict[str, list[dict]] = {}
        for entries in results:
            for name, typ, help_, unit in entries:
                item = {"type": typ, "help": help_, "unit": unit}
                if item not in out.setdefault(name, []):
                    out[name].append(item)
        if limit:
            out = {n: out[n] for n in sorted(out)[:limit]}
        return out, warnings

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self.clients:
            c.close()
