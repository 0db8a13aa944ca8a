"""The metrics the custom and external rules serve, as prometheus-adapter's series registries hold them:
built from the series each rule's ``seriesQuery`` finds (label values dropped: a series is its name and
label names), re-listed every ``metrics_relist_interval``.

A custom metric is one (resource, API name) pair: a series attached to pods and namespaces (an override
or template label for each) gives ``pods/<m>`` (namespaced) and ``namespaces/<m>`` (not namespaced). An
external metric is an API name. When two series give the same metric, the last one found wins, as in the
adapter (rules are meant to be mutually exclusive).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from shardmon.k8sapi import adapter_metrics, resources
from shardmon.k8sapi.metrics_query import MetricsQuery
from shardmon.k8sapi.naming import MetricNamer
from shardmon.k8sapi.provider import CustomMetricInfo, ExternalMetricInfo
from shardmon.k8sapi.resources import GroupResource
from shardmon.model.adapter_config import DiscoveryRule
from shardmon.model.labels import Labels


class Rule:
    """One rule ready to serve: its namer (filters, naming, resources) and its query."""

    def __init__(self, config: DiscoveryRule, *, external: bool = False) -> None:
        self.config = config
        self.namer = MetricNamer(config)
        namespaced = True if config.resources.namespaced is None else config.resources.namespaced
        self.query = MetricsQuery(config.metricsQuery, self.namer.converter, namespaced=namespaced)
        self.external = external

    @property
    def series_query(self) -> str:
        return self.config.seriesQuery


@dataclass(frozen=True)
class Served:
    """What answers one metric: the series name behind it and its rule."""

    series_name: str
    rule: Rule


def _shapes(series: Sequence[Labels]) -> dict[tuple[str, tuple[str, ...]], None]:
    """The series as the adapter keeps them: name and label names, each shape once, in order."""
    return {(s.name, tuple(n for n, _ in s if n != "__name__")): None for s in series}


class CustomRegistry:
    """The custom metrics: (group-resource, metric) -> what answers it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[tuple[GroupResource, str], Served] = {}

    def set_series(self, rules: Sequence[Rule], found: Sequence[Sequence[Labels]]) -> None:
        served: dict[tuple[GroupResource, str], Served] = {}
        for rule, series in zip(rules, found, strict=True):
            for name, label_names in _shapes(series):
                if not rule.namer.passes(name):
                    adapter_metrics.SERIES_UNNAMED.labels("filtered").inc()
                    continue
                metric = rule.namer.metric_name(name)
                grs = rule.namer.converter.resources_for(label_names)
                if metric is None or not grs:
                    adapter_metrics.SERIES_UNNAMED.labels("filtered" if metric is None else "no_resource").inc()
                    continue
                for gr in grs:
                    served[(gr, metric)] = Served(name, rule)
        with self._lock:
            self._served = served
        adapter_metrics.METRICS.labels("custom").set(len(served))

    def metrics(self) -> list[CustomMetricInfo]:
        with self._lock:
            keys = list(self._served)
        return sorted((CustomMetricInfo(str(gr), metric, resources.info(gr).namespaced) for gr, metric in keys),
                      key=lambda i: (i.group_resource, i.metric))

    def lookup(self, gr: GroupResource, metric: str) -> Served | None:
        with self._lock:
            return self._served.get((gr, metric))


class ExternalRegistry:
    """The external metrics: metric -> what answers it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[str, Served] = {}

    def set_series(self, rules: Sequence[Rule], found: Sequence[Sequence[Labels]]) -> None:
        served: dict[str, Served] = {}
        for rule, series in zip(rules, found, strict=True):
            for name, _ in _shapes(series):
                metric = rule.namer.metric_name(name) if rule.namer.passes(name) else None
                if metric is None:
                    adapter_metrics.SERIES_UNNAMED.labels("filtered").inc()
                    continue
                served[metric] = Served(name, rule)
        with self._lock:
            self._served = served
        adapter_metrics.METRICS.labels("external").set(len(served))

    def metrics(self) -> list[ExternalMetricInfo]:
        with self._lock:
            return [ExternalMetricInfo(m) for m in sorted(self._served)]

    def lookup(self, metric: str) -> Served | None:
        with self._lock:
            return self._served.get(metric)


__all__ = ["CustomRegistry", "ExternalRegistry", "Rule", "Served"]
