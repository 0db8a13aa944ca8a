"""The adapter side's own metrics (``shardmon_k8sapi_adapter_*``), in the process serving the Kubernetes
metrics APIs: what it answered, refused or failed, its re-lists of the rules' series, and its calls to the
Kubernetes API server."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, disable_created_metrics

disable_created_metrics()

REQUESTS = Counter(
    "shardmon_k8sapi_adapter_requests_total",
    "Requests the provider answered, by API (resource, custom, external) and outcome: ok, not_found (404), "
    "bad_request (400: a selector PromQL cannot express, a resource a rule has no label for), error (a query "
    "or the Kubernetes API failed).", ["api", "outcome"])
RELISTS = Counter(
    "shardmon_k8sapi_adapter_relists_total",
    "Re-lists of the series behind the custom and external rules, by outcome (ok, error: the last list is kept).",
    ["outcome"])
SERIES_UNNAMED = Counter(
    "shardmon_k8sapi_adapter_series_skipped_total",
    "Series a rule's seriesQuery found that it could not serve, by reason: filtered (seriesFilters or "
    "name.matches), no_resource (no label names a resource), counted at each re-list.", ["reason"])
METRICS = Gauge(
    "shardmon_k8sapi_adapter_metrics",
    "Metrics the last re-list found, by API (custom: one per resource and metric; external).", ["api"])
OBJECT_LISTS = Counter(
    "shardmon_k8sapi_adapter_object_lists_total",
    "Lists of Kubernetes objects (for label selectors) from the API server, by outcome (ok, error).", ["outcome"])
