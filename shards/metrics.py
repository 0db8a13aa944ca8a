"""The shard's own metrics (``shardmon_shard_*``), exposed on its ``/metrics`` by prometheus_client."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The *_created series add nothing for these process-lifetime counters.
disable_created_metrics()

WRITES = Counter("shardmon_shard_writes_total", "Write requests handled, by outcome.", ["outcome"])
WRITE_DURATION = Histogram(
    "shardmon_shard_write_duration_seconds",
    "Time to make a write durable and apply it.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SAMPLES_APPENDED = Counter("shardmon_shard_samples_appended_total", "Samples appended to the head.")
SAMPLES_REJECTED = Counter(
    "shardmon_shard_samples_rejected_total",
    "Samples refused, by reason: the head's rules (out_of_bounds, out_of_order, duplicate_timestamp), the "
    "series limits (series_limit, metric_series_limit) and the time guard (too_far_in_future: more than "
    "shards.max_future_time ahead of the shard's clock).",
    ["reason"],
)
SAMPLES_DUPLICATE = Counter(
    "shardmon_shard_samples_duplicate_total",
    "Samples equal to the series' latest one (same timestamp and value): dropped silently as Prometheus does.",
)
SERIES = Gauge("shardmon_shard_series", "Series known to the shard.")
HEAD_SERIES = Gauge(
    "shardmon_shard_head_series", "Series with samples in the head (what shards.max_active_series limits)."
)
HEAD_SAMPLES = Gauge("shardmon_shard_head_samples", "Samples in the in-memory head.")
BLOCKS = Gauge("shardmon_shard_blocks", "Blocks stored in Redis.")
BLOCK_BYTES = Gauge("shardmon_shard_block_bytes", "Bytes of all stored blocks' chunks.")
BLOCK_SAMPLES = Gauge("shardmon_shard_block_samples", "Samples in all stored blocks.")
BLOCK_CHUNKS = Gauge("shardmon_shard_chunks", "Chunks in all stored blocks (one per series per block).")
BYTES_PER_SAMPLE = Gauge(
    "shardmon_shard_block_bytes_per_sample", "Block bytes over block samples (0 without blocks)."
)
RETENTION_DELETIONS = Counter(
    "shardmon_shard_retention_deletions_total",
    "Blocks deleted by retention, by reason (time: shards.retention_time, size: shards.retention_size).",
    ["reason"],
)
COMPACTIONS = Counter("shardmon_shard_compactions_total", "Compactions done (each merges blocks into one).")
COMPACTIONS_FAILED = Counter("shardmon_shard_compactions_failed_total", "Compactions that failed (retried later).")
COMPACTION_DURATION = Histogram(
    "shardmon_shard_compaction_duration_seconds", "Time one compaction took.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
WAL_ENTRIES = Gauge("shardmon_shard_wal_entries", "Entries in the WAL stream not yet covered by blocks.")
REPLAY_SECONDS = Gauge("shardmon_shard_replay_duration_seconds", "Time the last start-up took to recover.")
ADMIN_REFUSED = Counter(
    "shardmon_shard_admin_requests_refused_total",
    "Admin RPCs (Flush, Reset) refused because web.enable_admin_api is false, by RPC.", ["rpc"],
)
SERIES_REQUESTS = Counter("shardmon_shard_series_requests_total",
                          "Series (read) requests, by outcome: ok, error, limit (stopped at the query's "
                          "max_series/max_samples budget), cancelled (by the querier, or its deadline).", ["outcome"])
AGGREGATE_REQUESTS = Counter("shardmon_shard_aggregate_requests_total",
                             "Aggregate (push-down) requests, by outcome: ok, error, limit (stopped at the query's "
                             "budget), cancelled, histograms (the selection has native histogram samples: "
                             "answered for the querier's exact path).", ["outcome"])
AGGREGATE_RESPONSE_BYTES = Counter("shardmon_shard_aggregate_response_bytes_total",
                                   "Bytes of the partial aggregates sent in answer to Aggregate requests.")
AGGREGATE_SERIES = Counter("shardmon_shard_aggregate_series_total",
                           "Series read and aggregated in the shard by Aggregate requests (not sent).")
SAMPLES_BACKFILLED = Counter("shardmon_shard_samples_backfilled_total", "Samples written straight into blocks by backfill.")
REDIS_DATA_LOST = Gauge(
    "shardmon_shard_redis_data_lost",
    "1 while the shard's Redis is known to have lost data (identity gone, epoch changed or generation went "
    "back): writes are refused until recovered (README: If a shard's Redis loses its data).",
)
REDIS_APPENDONLY = Gauge(
    "shardmon_shard_redis_appendonly", "1 when the shard's Redis keeps an append-only file (AOF), 0 when not."
)
REDIS_MEMORY_USED = Gauge(
    "shardmon_shard_redis_memory_used_bytes", "Memory the shard's Redis uses (INFO memory used_memory), read every 5 s."
)
REDIS_MEMORY_MAX = Gauge(
    "shardmon_shard_redis_memory_max_bytes", "The shard's Redis maxmemory (0: no limit), read every 5 s."
)
REDIS_CONNECTED_REPLICAS = Gauge(
    "shardmon_shard_redis_connected_replicas",
    "Replicas connected to the shard's Redis (INFO replication connected_slaves), read every 5 s.",
)
BLOCK_CUT_FAILURES = Counter(
    "shardmon_shard_block_cut_failures_total",
    "Block cuts that failed (e.g. Redis out of memory); retried with backoff.",
)
BLOCK_CUT_FAILING = Gauge(
    "shardmon_shard_block_cut_consecutive_failures",
    "Block cuts failed in a row (0 when the last one succeeded); from 3 on the Shard service's health is NOT_SERVING.",
)
REBUILT_SAMPLES = Counter(
    "shardmon_shard_rebuilt_samples_total", "Samples copied from other replicas by --rebuild-from-replicas."
)
SERIES_REQUEST_DURATION = Histogram(
    "shardmon_shard_series_request_duration_seconds", "Time to answer a Series (read) request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Every reason is exposed from the start (at 0), so rates and alerts need no "absent" special case.
for _reason in ("time", "size"):
    RETENTION_DELETIONS.labels(_reason)
for _rpc in ("Flush", "Reset"):
    ADMIN_REFUSED.labels(_rpc)
for _reason in ("out_of_bounds", "out_of_order", "duplicate_timestamp", "series_limit", "metric_series_limit",
                "too_far_in_future"):
    SAMPLES_REJECTED.labels(_reason)
