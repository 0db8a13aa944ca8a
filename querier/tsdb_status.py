"""``/api/v1/status/tsdb``: the shards' head statistics merged into Prometheus's TSDB status document.

Prometheus 2.42 (``web/api/v1/api.go`` ``serveTSDBStatus``, ``tsdb/index`` ``MemPostings.Stats``) answers
``headStats`` (``numSeries``, ``numLabelPairs``, ``chunkCount``, ``minTime``, ``maxTime``) and four top-10
lists of ``{name, value}``: series per metric name, distinct values per label name, bytes of those values
per label name (``memoryInBytesByLabelName``: the sum of the lengths of the label's distinct values, as
Prometheus computes it), series per ``name=value`` pair. Every shard sends all of its pairs with their
series counts (:class:`~shardmon.shards.client.ShardTSDBStats`), so the merge is exact: a value present on
several shards is one value, a pair's count is the sum over the shards, and with replication each shard
counted only the series it is the first live replica of (:meth:`FanoutQuerier.tsdb_status`; when a shard
fails, a second round tells the others who is live, so its series are counted on their replicas).

Each list is sorted by value, highest first. Prometheus breaks ties at random (Go map order, then an
unstable sort); Shardmon breaks them by name, so the answer is stable. ``limit`` (Prometheus 2.45+; 2.42
always answers 10) sets the length of the lists; ``match[]`` (not in Prometheus) restricts the statistics to
the head series matching one of the selectors. Shardmon adds ``shards``: per shard, its ``headStats`` and
its top ``seriesCountByMetricName`` (a shard that did not answer: ``{"shard", "error"}``).
``chunkCount`` is Shardmon's own: one in-memory run of samples per head series (its head has no chunks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shardmon.model.errors import BadQueryError
from shardmon.model.storage import QueryBudget
from shardmon.querier import lookup
from shardmon.querier.fanout import PARTIAL_WARNING
from shardmon.querier.promql import QueryGuard
from shardmon.shards.client import ShardTSDBStats

DEFAULT_LIMIT = 10
_INT = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.Atoi takes
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def parse_limit(text: str | None) -> int:
    """The ``limit`` parameter, as Prometheus 2.45+ reads it: absent means 10, else a positive integer."""
    if not text:
        return DEFAULT_LIMIT
    if not _INT.match(text) or int(text) < 1:
        raise BadQueryError("limit must be a positive number")
    return int(text)


def top(items: dict[str, int], limit: int) -> list[dict]:
    """The ``limit`` highest ``{name, value}``, highest first, ties by name."""
    ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"name": n, "value": int(v)} for n, v in ranked]


def _head(num_series: int, pairs: int, chunks: int, mint: int, maxt: int) -> dict:
    return {"numSeries": num_series, "numLabelPairs": pairs, "chunkCount": chunks, "minTime": mint, "maxTime": maxt}


def merge(stats: Sequence[ShardTSDBStats], limit: int = DEFAULT_LIMIT, shard_ids: Sequence[int] = ()) -> dict:
    """The TSDB status document of the shards' answers (``shard_ids``: every shard asked, so that those
    missing from ``stats`` are listed as failed in ``shards``)."""
    pairs: dict[str, dict[str, int]] = {}
    for s in stats:
        for name, values, counts in s.labels:
            by_value = pairs.setdefault(name, {})
            for v, c in zip(values, counts.tolist()):
                by_value[v] = by_value.get(v, 0) + c
    mint = min((s.min_time_ms for s in stats), default=_INT64_MAX)
    maxt = max((s.max_time_ms for s in stats), default=_INT64_MIN)
    doc = {
        "headStats": _head(sum(s.num_series for s in stats), sum(len(v) for v in pairs.values()),
                           sum(s.chunk_count for s in stats), mint, maxt),
        "seriesCountByMetricName": top(pairs.get("__name__", {}), limit),
        "labelValueCountByLabelName": top({n: len(v) for n, v in pairs.items()}, limit),
        "memoryInBytesByLabelName": top({n: sum(len(x.encode("utf-8", "surrogateescape")) for x in v)
                                         for n, v in pairs.items()}, limit),
        "seriesCountByLabelValuePair": top({f"{n}={x}": c for n, v in pairs.items() for x, c in v.items()}, limit),
    }
    answered = {s.shard_id: s for s in stats}
    shards = []
    for sid in sorted(set(shard_ids) | set(answered)):
        s = answered.get(sid)
        if s is None:
            shards.append({"shard": sid, "error": "did not answer (see the warnings)"})
            continue
        names = {}
        for name, values, counts in s.labels:
            if name == "__name__":
                names = dict(zip(values, counts.tolist()))
        shards.append({
            "shard": sid,
            "headStats": _head(s.num_series, sum(len(v) for _, v, _ in s.labels), s.chunk_count,
                               s.min_time_ms, s.max_time_ms),
            "seriesCountByMetricName": top(names, limit),
        })
    doc["shards"] = shards
    return doc


def tsdb_status(fanout, selectors: Sequence[str], limit: int, *, guard: QueryGuard | None = None,
                budget: QueryBudget | None = None) -> tuple[dict, list[str], bool]:
    """The document over every shard (``fanout``: a :class:`~shardmon.querier.fanout.FanoutQuerier`), its
    warnings and whether it is partial. With replication, a shard that failed in the first round makes a
    second round that tells the others which shards answered, so that they count its series instead."""
    sets = [lookup.parse_matchers(s, guard) if guard is not None else lookup.parse_matchers(s) for s in selectors]
    ids = [c.shard_id for c in fanout.clients]
    stats, warnings, partial = fanout.tsdb_status(sets, budget=budget)
    if fanout.replication_factor > 1 and len(stats) < len(ids):
        live = [s.shard_id for s in stats]
        stats, warnings2, partial2 = fanout.tsdb_status(sets, live_shard_ids=live, budget=budget)
        stats = [s for s in stats if s.shard_id in live]
        warnings = [*warnings, *(w for w in warnings2 if w not in warnings)]
        lost = sorted(set(live) - {s.shard_id for s in stats})
        partial = partial or partial2 or bool(lost)
        if lost:  # Their series were assigned to them in this round: not counted anywhere.
            warnings.append(f"{PARTIAL_WARNING}shards {lost} answered the first round only: their series are "
                            "missing from the statistics")
    for s in stats:
        warnings.extend(w for w in s.warnings if w not in warnings)
    return merge(stats, limit, ids), warnings, partial


__all__ = ["DEFAULT_LIMIT", "merge", "parse_limit", "top", "tsdb_status"]
