"""Service discovery's own metrics (``shardmon_sd_*``), kept by prometheus_client in the process that
runs the :class:`~shardmon.ingest.discovery.manager.DiscoveryManager`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, disable_created_metrics

# The *_created series add nothing for these process-lifetime counters.
disable_created_metrics()

FILE_READ_ERRORS = Counter(
    "shardmon_sd_file_read_errors_total",
    "Files of file_sd_configs that could not be read or parsed (their previous groups are kept).",
)
HTTP_FAILURES = Counter(
    "shardmon_sd_http_failures_total",
    "Failed refreshes of http_sd_configs (the last groups are kept).",
)
KUBERNETES_EVENTS = Counter(
    "shardmon_sd_kubernetes_events_total",
    "Kubernetes objects seen added, updated or deleted, by resource and event.",
    ["role", "event"],
)
KUBERNETES_FAILURES = Counter(
    "shardmon_sd_kubernetes_failures_total",
    "Failed list or watch requests to the Kubernetes API server (retried with backoff).",
)
DISCOVERED_TARGETS = Gauge(
    "shardmon_sd_discovered_targets",
    "Targets of a job's current target groups, before relabeling.",
    ["job"],
)
UPDATES = Counter(
    "shardmon_sd_updates_total",
    "Updates of a job's target groups delivered to the on_update callback, by outcome.",
    ["outcome"],
)
