"""The figures of the Cluster page from the components' own ``/metrics`` (pure: text in, numbers out).

- :func:`parse_metrics`: a Prometheus text exposition (parsed by prometheus_client's parser) as sample
  name -> [(labels, value)];
- :func:`shard_figures`, :func:`scraper_figures`, :func:`ruler_figures`: what the page shows of a shard,
  a scraper and a ruler, read from their ``shardmon_shard_*``, ``shardmon_scraper_*`` and
  ``shardmon_rule_*`` metrics (None where the metric is absent);
- :class:`RateKeeper`: a per-second rate of a counter from the readings of successive calls (the querier
  keeps them; nothing runs in the background);
- :func:`totals`: the cluster's sums over the shards that answered.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Sample name (with its ``_total``, ``_bucket``... suffix) -> its (labels, value) pairs. A malformed
    exposition raises ValueError (the caller shows the component as down with it)."""
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        if not family.samples:  # Declared, no series yet (a labelled counter before its first label): zero.
            out[family.name + ("_total" if family.type == "counter" else "")] = []
        for s in family.samples:
            out[s.name].append((s.labels, s.value))
    return dict(out)


def _one(samples: Samples, name: str) -> float | None:
    """The value of an unlabelled metric (or the sum of a labelled one's series: 0 for none); None when absent."""
    found = samples.get(name)
    if found is None:
        return None
    total = float(sum(v for _, v in found))
    return total if math.isfinite(total) else None  # JSON has no NaN: the page shows it as unknown


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def _bool(v: float | None) -> bool | None:
    return None if v is None else v >= 1


def shard_figures(samples: Samples) -> dict:
    """A shard's figures: its head ("active") series, series, WAL entries, blocks and their bytes, bytes per
    sample, Redis memory and replicas, AOF and data-loss flags, block cuts failing in a row, and the
    samples-appended counter (``samplesAppendedTotal``, for :class:`RateKeeper`)."""
    return {
        "activeSeries": _int(_one(samples, "shardmon_shard_head_series")),
        "series": _int(_one(samples, "shardmon_shard_series")),
        "headSamples": _int(_one(samples, "shardmon_shard_head_samples")),
        "walEntries": _int(_one(samples, "shardmon_shard_wal_entries")),
        "blocks": _int(_one(samples, "shardmon_shard_blocks")),
        "blockBytes": _int(_one(samples, "shardmon_shard_block_bytes")),
        "bytesPerSample": _one(samples, "shardmon_shard_block_bytes_per_sample"),
        "redisMemoryBytes": _int(_one(samples, "shardmon_shard_redis_memory_used_bytes")),
        "redisMaxMemoryBytes": _int(_one(samples, "shardmon_shard_redis_memory_max_bytes")),
        "redisReplicas": _int(_one(samples, "shardmon_shard_redis_connected_replicas")),
        "redisAppendOnly": _bool(_one(samples, "shardmon_shard_redis_appendonly")),
        "redisDataLost": _bool(_one(samples, "shardmon_shard_redis_data_lost")),
        "blockCutFailuresInARow": _int(_one(samples, "shardmon_shard_block_cut_consecutive_failures")),
        "samplesAppendedTotal": _one(samples, "shardmon_shard_samples_appended_total"),
        "samplesRejectedTotal": _one(samples, "shardmon_shard_samples_rejected_total"),
    }


def scraper_figures(samples: Samples) -> dict:
    """A scraper's figures: how late its event loop runs (its lag), the samples queued for the shards, the
    samples it dropped, and the samples-scraped counter (``samplesScrapedTotal``, for the rate)."""
    return {
        "eventLoopLagSeconds": _one(samples, "shardmon_scraper_event_loop_lag_seconds"),
        "queuedSamples": _int(_one(samples, "shardmon_scraper_queue_samples")),
        "samplesDroppedTotal": _one(samples, "shardmon_scraper_samples_dropped_total"),
        "samplesScrapedTotal": _one(samples, "shardmon_scraper_samples_scraped_total"),
    }


def ruler_figures(samples: Samples, now_s: float) -> dict:
    """A ruler's figures from its ``shardmon_rule_*`` metrics: its lag (the most any of its groups is behind
    its schedule: the time since its last evaluation ended, less its interval, at least 0; None before
    any evaluation), the iterations it missed and the rule evaluations that failed."""
    interval = {ls.get("rule_group", ""): v for ls, v in samples.get("shardmon_rule_group_interval_seconds", [])}
    lag = None
    for ls, last in samples.get("shardmon_rule_group_last_evaluation_timestamp_seconds", []):
        if last <= 0:
            continue
        behind = max(0.0, now_s - last - interval.get(ls.get("rule_group", ""), 0.0))
        lag = behind if lag is None else max(lag, behind)
    return {
        "lagSeconds": lag,
        "missedIterations": _int(_one(samples, "shardmon_rule_group_iterations_missed_total")),
        "evaluationFailures": _int(_one(samples, "shardmon_rule_evaluation_failures_total")),
    }


class RateKeeper:
    """Per-second rates of counters from the readings of successive calls: ``rate(key, t, value)`` records
    the reading and answers the increase since a base reading over the time between them. The base is the
    newest reading at least ``window_s`` old (a rate over about the last minute, steady under frequent
    calls), else the oldest at least ``min_gap_s`` old; readings older than ``max_age_s`` are forgotten, so
    the first call (or one after a long pause) answers None. A counter that went down (a restart) counts
    from 0, as Prometheus's ``rate``."""

    def __init__(self, window_s: float = 60.0, min_gap_s: float = 1.0, max_age_s: float = 600.0) -> None:
        self.window_s = window_s
        self.min_gap_s = min_gap_s
        self.max_age_s = max_age_s
        self._readings: dict[object, deque[tuple[float, float]]] = {}

    def rate(self, key: object, t: float, value: float | None) -> float | None:
        if value is None:
            return None
        readings = self._readings.setdefault(key, deque())
        # Kept: the newest reading at least window_s old (the base once there is one) and those after it.
        if readings and readings[-1][0] > t:  # The clock went back: start over.
            readings.clear()
        while readings and t - readings[0][0] > self.max_age_s:
            readings.popleft()
        while len(readings) > 1 and t - readings[1][0] >= self.window_s:
            readings.popleft()
        base = readings[0] if readings and t - readings[0][0] >= self.min_gap_s else None
        if not readings or t - readings[-1][0] >= self.min_gap_s:  # At most window / min_gap readings kept.
            readings.append((t, value))
        if base is None:
            return None
        bt, bv = base
        increase = value - bv if value >= bv else value
        return increase / (t - bt)

    def forget(self, keep: set) -> None:
        """Drop the readings of keys not in ``keep`` (components gone from the configuration)."""
        for key in list(self._readings):
            if key not in keep:
                del self._readings[key]


def totals(shards: list[dict]) -> dict:
    """The cluster's sums: shards up of all, active series, series, samples/s and Redis memory over the
    shards that answered (a figure nobody reported is None)."""
    up = [s for s in shards if s.get("health") == "up"]

    def total(name: str) -> float | None:
        values = [s[name] for s in up if s.get(name) is not None]
        return sum(values) if values else None

    return {
        "shards": len(shards),
        "shardsUp": len(up),
        "activeSeries": total("activeSeries"),
        "series": total("series"),
        "samplesPerSecond": total("samplesPerSecond"),
        "redisMemoryBytes": total("redisMemoryBytes"),
    }


__all__ = ["RateKeeper", "Samples", "parse_metrics", "ruler_figures", "scraper_figures", "shard_figures", "totals"]
