"""The seam between the HTTP side of the Kubernetes metrics APIs and the data side (pure types, no I/O).

The server (routing, discovery documents, JSON shapes, quantities, ``Status`` errors, authentication) calls
a ``MetricsProvider``; the provider (prometheus-adapter's rules over the querier's engine) answers in the
plain values below. Times are Unix seconds (float), CPU in cores, memory in bytes, values as floats; the
server turns them into Kubernetes quantities and RFC 3339 times. Methods are synchronous (the engine
blocks): the server calls them in a worker thread.

Errors: ``NotFoundError`` (404 ``Status`` with reason NotFound; its message is the Kubernetes one, e.g.
``podmetrics.metrics.k8s.io "ns/name" not found``), ``SelectorError`` / ``BadRequestError`` (400), and
the query errors of ``model/errors.py`` (a shard down: 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shardmon.k8sapi.selector import Selector
from shardmon.model.errors import ShardmonError


class NotFoundError(ShardmonError):
    """No such object or metric: HTTP 404, a Kubernetes ``Status`` with reason NotFound."""


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True)
class NodeUsage:
    name: str
    timestamp_s: float
    window_s: float
    cpu_cores: float
    memory_bytes: float
    labels: dict[str, str] = field(default_factory=dict)  # the node's labels (from the API server, if listed)


@dataclass(frozen=True)
class PodUsage:
    namespace: str
    name: str
    timestamp_s: float
    window_s: float
    containers: tuple[ContainerUsage, ...]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomMetricInfo:
    """One custom metric as discovery lists it: ``<resource>/<metric>`` with the resource as the API names it
    (``pods``, ``namespaces``, ``deployments.apps``)."""
    group_resource: str
    metric: str
    namespaced: bool


@dataclass(frozen=True)
class ObjectReference:
    kind: str          # "Pod", "Namespace", "Deployment"
    name: str
    namespace: str = ""
    api_version: str = "/v1"  # as the adapter writes describedObject.apiVersion ("/v1", "apps/v1")


@dataclass(frozen=True)
class MetricValue:
    described_object: ObjectReference
    metric: str
    timestamp_s: float
    value: float
    window_s: float | None = None
    selector: dict[str, str] | None = None  # metric.selector (v1beta2) / selector (v1beta1) when one was asked


@dataclass(frozen=True)
class ExternalMetricInfo:
    metric: str


@dataclass(frozen=True)
class ExternalValue:
    metric: str
    labels: dict[str, str]
    timestamp_s: float
    value: float


class MetricsProvider(Protocol):
    # metrics.k8s.io: names=None lists all (filtered by selector); a name not found is simply absent (the
    # server answers 404 for a single-object request that comes back empty).
    def nodes(self, names: Sequence[str] | None, selector: Selector) -> list[NodeUsage]: ...

    def pods(self, namespace: str | None, names: Sequence[str] | None, selector: Selector) -> list[PodUsage]: ...

    # custom.metrics.k8s.io
    def custom_metrics(self) -> list[CustomMetricInfo]: ...

    def custom_values(self, group_resource: str, metric: str, namespace: str | None, name: str | None,
                      selector: Selector, metric_selector: Selector) -> list[MetricValue]:
        """``name`` None means ``*`` (every object of the resource matching ``selector``); a named object
        with no value, or a metric the rules do not define for the resource, raises NotFoundError.
        ``group_resource`` "namespaces" with ``name`` the namespace is the ``namespaces/{ns}/metrics/{m}``
        form."""
        ...

    # external.metrics.k8s.io
    def external_metrics(self) -> list[ExternalMetricInfo]: ...

    def external_values(self, namespace: str, metric: str, metric_selector: Selector) -> list[ExternalValue]: ...


__all__ = ["ContainerUsage", "CustomMetricInfo", "ExternalMetricInfo", "ExternalValue", "MetricValue",
           "MetricsProvider", "NodeUsage", "NotFoundError", "ObjectReference", "PodUsage"]
