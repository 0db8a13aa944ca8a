"""The querier's own metrics (``shardmon_querier_*``), served at ``/metrics`` on its HTTP address."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter("shardmon_querier_http_requests_total", "HTTP API requests, by handler and status code.",
                        ["handler", "code"])
HTTP_DURATION = Histogram("shardmon_querier_http_request_duration_seconds", "HTTP API request duration, by handler.",
                          ["handler"], buckets=_BUCKETS)
QUERIES = Counter("shardmon_querier_queries_total",
                  "PromQL queries and lookups, by API, kind and outcome (ok, or the errorType: bad_data, execution, "
                  "timeout, canceled when the client went away, unavailable).", ["api", "kind", "outcome"])
QUERIES_REFUSED = Counter("shardmon_querier_queries_refused_total",
                          "Queries and lookups refused by a limit, by limit: max_query_length, max_query_depth "
                          "(before parsing), max_samples, max_series (while loading).", ["limit"])
QUERY_DURATION = Histogram("shardmon_querier_query_duration_seconds", "PromQL evaluation time, by kind.", ["kind"],
                           buckets=_BUCKETS)
IN_FLIGHT = Gauge("shardmon_querier_queries_in_flight", "Queries being evaluated (saturation).")
SHARD_REQUESTS = Counter("shardmon_querier_shard_requests_total",
                         "Fan-out calls to shards, by shard and outcome: ok, error, limit (the shard stopped at the "
                         "query's budget), stalled (sent nothing for querier.shard_response_timeout), busy (all the "
                         "shard's fan-out threads taken: failed at once), cancelled (the query ended first).",
                         ["shard", "outcome"])
SERIES_FETCHED = Counter("shardmon_querier_series_fetched_total", "Series received from the shards.")
SAMPLES_FETCHED = Counter("shardmon_querier_samples_fetched_total", "Samples received from the shards.")
SHARD_RESPONSE_BYTES = Counter("shardmon_querier_shard_response_bytes_total",
                               "Bytes received from the shards' read answers, by RPC: Series (raw series) or "
                               "Aggregate (partial aggregates of the aggregation push-down).", ["rpc"])
PUSHDOWN = Counter("shardmon_querier_aggregation_pushdown_total",
                   "Aggregations and range functions eligible for push-down (querier.aggregation_pushdown), by "
                   "outcome: pushed (an aggregation merged from the shards' partials), rows (a range function's "
                   "rows from the shards); the exact path instead: replicated (rows of one series from several "
                   "shards), ties (topk/bottomk ties the shards' rows cannot settle), too_large (rows over 64MB "
                   "from a shard), diverged (with replication, two copies of a series differ in the range read), "
                   "misplaced (a shard holds series the placement does not put on it), unavailable (a shard "
                   "counted on did not answer, or one not counted on came back), histograms (a series has native "
                   "histogram samples in the range: the shards aggregate floats only).", ["outcome"])
for _rpc in ("Series", "Aggregate"):
    SHARD_RESPONSE_BYTES.labels(_rpc)
for _outcome in ("pushed", "rows", "replicated", "ties", "too_large", "diverged", "misplaced", "unavailable", "histograms"):
    PUSHDOWN.labels(_outcome)
SLOW_QUERIES = Counter("shardmon_querier_slow_queries_total",
                       "PromQL queries that ran querier.slow_query_threshold or longer (kept in the slow query log of "
                       "/api/v1/status/cluster and the Cluster page), by API (http, grpc) and kind (instant, range).",
                       ["api", "kind"])
CLUSTER_FETCHES = Counter("shardmon_querier_cluster_status_fetches_total",
                          "Reads of the components' status and metrics for /api/v1/status/cluster, by component "
                          "(shard, scraper, ruler, ingest, rulers, receiver) and outcome (ok, error: the component "
                          "showed as down).", ["component", "outcome"])
for _api in ("http", "grpc"):
    for _kind in ("instant", "range"):
        SLOW_QUERIES.labels(_api, _kind)
