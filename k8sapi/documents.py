"""The JSON documents of the Kubernetes metrics APIs (pure logic): discovery (``APIGroupList``,
``APIGroup``, ``APIResourceList``, ``/version``), the resource metrics (``NodeMetrics[List]``,
``PodMetrics[List]``, as Metrics Server writes them), the custom metrics (``MetricValueList`` in
``v1beta2`` and ``v1beta1``, as custom-metrics-apiserver writes them), the external metrics
(``ExternalMetricValueList``) and the errors (``Status``), from the provider's plain values
(``k8sapi/provider.py``). Field names and order follow the Go types of k8s.io/metrics and apimachinery;
``omitempty`` fields are left out when empty, the others written as Go writes them (``null``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shardmon.k8sapi.provider import (
    CustomMetricInfo,
    ExternalMetricInfo,
    ExternalValue,
    MetricValue,
    NodeUsage,
    PodUsage,
)
from shardmon.k8sapi.quantity import cpu_quantity, go_duration, go_int64, memory_quantity, milli_quantity, rfc3339

RESOURCE_GROUP = "metrics.k8s.io"
CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_GROUP = "external.metrics.k8s.io"

#: group -> its versions, preferred first (what ``/apis`` and ``/apis/<group>`` list).
GROUPS: dict[str, tuple[str, ...]] = {
    RESOURCE_GROUP: ("v1beta1",),
    CUSTOM_GROUP: ("v1beta2", "v1beta1"),
    EXTERNAL_GROUP: ("v1beta1",),
}


# -- discovery -------------------------------------------------------------------------------------


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(group: str) -> dict[str, Any]:
    """``/apis/<group>``: the group's versions and the preferred one."""
    versions = GROUPS[group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": [_gv(group, v) for v in versions], "preferredVersion": _gv(group, versions[0])}


def api_group_list(groups: Iterable[str] = GROUPS) -> dict[str, Any]:
    """``/apis``: every group served."""
    out = []
    for g in groups:
        doc = api_group(g)
        del doc["kind"], doc["apiVersion"]
        out.append(doc)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def _resource(name: str, namespaced: bool, kind: str, verbs: list[str]) -> dict[str, Any]:
    return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs}


def resource_list(group: str, version: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
            "resources": resources}


def resource_metrics_resources() -> list[dict[str, Any]]:
    """Metrics Server's ``metrics.k8s.io/v1beta1`` resources."""
    return [_resource("nodes", False, "NodeMetrics", ["get", "list"]),
            _resource("pods", True, "PodMetrics", ["get", "list"])]


def custom_metrics_resources(metrics: Iterable[CustomMetricInfo]) -> list[dict[str, Any]]:
    """One resource per ``<resource>/<metric>`` (custom-metrics-apiserver's lister), verbs ``get``."""
    return [_resource(f"{m.group_resource}/{m.metric}", m.namespaced, "MetricValueList", ["get"]) for m in metrics]


def external_metrics_resources(metrics: Iterable[ExternalMetricInfo]) -> list[dict[str, Any]]:
    """One namespaced resource per external metric, verbs ``get``."""
    return [_resource(m.metric, True, "ExternalMetricValueList", ["get"]) for m in metrics]


def version_info(version: str, platform: str) -> dict[str, str]:
    """``/version`` (apimachinery's ``version.Info``)."""
    return {"major": "", "minor": "", "gitVersion": f"v{version}", "gitCommit": "", "gitTreeState": "",
            "buildDate": "", "goVersion": "", "compiler": "", "platform": platform}


# -- metrics.k8s.io --------------------------------------------------------------------------------


def _meta(name: str, namespace: str | None, created_s: float, labels: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = rfc3339(created_s)
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _usage(cpu_cores: float, memory_bytes: float) -> dict[str, str]:
    return {"cpu": cpu_quantity(cpu_cores), "memory": memory_quantity(memory_bytes)}


def node_metrics(n: NodeUsage, now_s: float, *, item: bool = False) -> dict[str, Any]:
    """One ``NodeMetrics``; ``item`` leaves out kind and apiVersion, as Metrics Server's list items do."""
    doc = {"kind": "NodeMetrics", "apiVersion": f"{RESOURCE_GROUP}/v1beta1",
           "metadata": _meta(n.name, None, now_s, n.labels), "timestamp": rfc3339(n.timestamp_s),
           "window": go_duration(n.window_s), "usage": _usage(n.cpu_cores, n.memory_bytes)}
    if item:
        del doc["kind"], doc["apiVersion"]
    return doc


def pod_metrics(p: PodUsage, now_s: float, *, item: bool = False) -> dict[str, Any]:
    """One ``PodMetrics``: its containers' usage (``item`` as for :func:`node_metrics`)."""
    doc = {"kind": "PodMetrics", "apiVersion": f"{RESOURCE_GROUP}/v1beta1",
           "metadata": _meta(p.name, p.namespace, now_s, p.labels), "timestamp": rfc3339(p.timestamp_s),
           "window": go_duration(p.window_s),
           "containers": [{"name": c.name, "usage": _usage(c.cpu_cores, c.memory_bytes)} for c in p.containers]}
    if item:
        del doc["kind"], doc["apiVersion"]
    return doc


def _list(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": api_version, "metadata": {}, "items": items}


def node_metrics_list(nodes: Iterable[NodeUsage], now_s: float) -> dict[str, Any]:
    return _list("NodeMetricsList", f"{RESOURCE_GROUP}/v1beta1", [node_metrics(n, now_s, item=True) for n in nodes])


def pod_metrics_list(pods: Iterable[PodUsage], now_s: float) -> dict[str, Any]:
    return _list("PodMetricsList", f"{RESOURCE_GROUP}/v1beta1", [pod_metrics(p, now_s, item=True) for p in pods])


# -- custom.metrics.k8s.io, external.metrics.k8s.io ------------------------------------------------


def label_selector(match_labels: Mapping[str, str] | None) -> dict[str, Any] | None:
    """``metav1.LabelSelector`` of equality requirements (None stays null)."""
    return None if match_labels is None else {"matchLabels": dict(match_labels)}


def _object_reference(v: MetricValue) -> dict[str, str]:
    ref = {"kind": v.described_object.kind}
    if v.described_object.namespace:
        ref["namespace"] = v.described_object.namespace
    ref["name"] = v.described_object.name
    ref["apiVersion"] = v.described_object.api_version
    return ref


def metric_value(v: MetricValue, version: str) -> dict[str, Any]:
    """One ``MetricValue``: ``v1beta2`` names the metric in ``metric: {name, selector}`` and its window
    ``windowSeconds``; ``v1beta1`` has ``metricName``, ``window`` and a ``selector`` written even when null."""
    window = None if v.window_s is None else go_int64(v.window_s)
    doc: dict[str, Any] = {"describedObject": _object_reference(v)}
    if version == "v1beta2":
        metric: dict[str, Any] = {"name": v.metric}
        if v.selector is not None:
            metric["selector"] = label_selector(v.selector)
        doc["metric"] = metric
        doc["timestamp"] = rfc3339(v.timestamp_s)
        if window is not None:
            doc["windowSeconds"] = window
        doc["value"] = milli_quantity(v.value)
    else:
        doc["metricName"] = v.metric
        doc["timestamp"] = rfc3339(v.timestamp_s)
        if window is not None:
            doc["window"] = window
        doc["value"] = milli_quantity(v.value)
        doc["selector"] = label_selector(v.selector)
    return doc


def metric_value_list(values: Iterable[MetricValue], version: str) -> dict[str, Any]:
    return _list("MetricValueList", f"{CUSTOM_GROUP}/{version}", [metric_value(v, version) for v in values])


def external_metric_value_list(values: Iterable[ExternalValue]) -> dict[str, Any]:
    items = [{"metricName": v.metric, "metricLabels": dict(v.labels), "timestamp": rfc3339(v.timestamp_s),
              "value": milli_quantity(v.value)} for v in values]
    return _list("ExternalMetricValueList", f"{EXTERNAL_GROUP}/v1beta1", items)


# -- errors ----------------------------------------------------------------------------------------

#: HTTP status -> the Status reason apimachinery gives it.
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           406: "NotAcceptable", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}


def status(code: int, message: str, *, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A failure ``Status`` (kind Status, apiVersion v1) with the reason of ``code``."""
    doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": REASONS.get(code, "Unknown")}
    if details:
        doc["details"] = dict(details)
    doc["code"] = code
    return doc


def not_found(group: str, resource: str, name: str) -> dict[str, Any]:
    """apimachinery's ``NewNotFound``: ``<resource>.<group> "<name>" not found``."""
    return status(404, f'{resource}.{group} "{name}" not found',
                  details={"name": name, "group": group, "kind": resource})


__all__ = ["CUSTOM_GROUP", "EXTERNAL_GROUP", "GROUPS", "REASONS", "RESOURCE_GROUP", "api_group", "api_group_list",
           "custom_metrics_resources", "external_metric_value_list", "external_metrics_resources", "label_selector",
           "metric_value", "metric_value_list", "node_metrics", "node_metrics_list", "not_found", "pod_metrics",
           "pod_metrics_list", "resource_list", "resource_metrics_resources", "status", "version_info"]
