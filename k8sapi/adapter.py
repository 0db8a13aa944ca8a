"""The data side of the Kubernetes metrics APIs: prometheus-adapter's rules over Shardmon's engine, as a
:class:`~shardmon.k8sapi.provider.MetricsProvider` (:func:`build_provider` makes it for the HTTP side).

Every query is an instant query at "now" through the querier's engine over the shards. The series behind
``rules`` and ``externalRules`` are listed (each distinct ``seriesQuery`` once, through the fan-out's
series lookup over the last ``metrics_relist_interval``) when the provider starts and then every
``metrics_relist_interval`` in a background thread; a failed re-list keeps the previous metrics.

Objects a request names by selector (``*`` with ``labelSelector``) are listed from the Kubernetes API when
``kubeconfig`` or ``in_cluster`` is set, as the adapter does. Without API access they are the values of the
resource's label in the metric's series (in the namespace), and the selector is matched against those
series' labels (so ``app=web`` selects the pods whose series carry ``app="web"``).

Answers as the adapter's: a value that is NaN reads as 0; a custom metric's timestamp is the time of the
request; a metric no rule serves, or a named object without a value, is NotFoundError with
custom-metrics-apiserver's message.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from shardmon.k8sapi import adapter_metrics, resources
from shardmon.k8sapi.metrics_query import matcher
from shardmon.k8sapi.objects import ObjectLister
from shardmon.k8sapi.provider import (
    CustomMetricInfo,
    ExternalMetricInfo,
    ExternalValue,
    MetricsProvider,
    MetricValue,
    NodeUsage,
    NotFoundError,
    ObjectReference,
    PodUsage,
)
from shardmon.k8sapi.registry import CustomRegistry, ExternalRegistry, Rule
from shardmon.k8sapi.resource_metrics import ResourceMetrics
from shardmon.k8sapi.resources import NAMESPACES, GroupResource
from shardmon.k8sapi.selector import EQUALS, Selector
from shardmon.model.adapter_config import AdapterConfig
from shardmon.model.config import Config
from shardmon.model.errors import BadQueryError, BadRequestError, ConfigError, QueryExecutionError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from shardmon.model.labels import Labels
from shardmon.querier import lookup
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promql import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = tuple[Labels, float, float]


def _value(v: float) -> float:
    return 0.0 if math.isnan(v) else v


class AdapterProvider:
    """prometheus-adapter over the engine: resource, custom and external metrics."""

    def __init__(self, adapter: AdapterConfig, engine: Engine, fanout: FanoutQuerier, *,
                 lister: ObjectLister | None = None, relist_interval_s: float = 600.0) -> None:
        self.engine, self.fanout, self.lister = engine, fanout, lister
        self.relist_interval_s = relist_interval_s
        #: "Now", in Unix seconds: the instant every query is evaluated at (tests pin it).
        self.clock: Callable[[], float] = time.time
        self.rules = [Rule(r) for r in adapter.rules]
        self.external_rules = [Rule(r, external=True) for r in adapter.externalRules]
        for what, rules in (("rules", self.rules), ("externalRules", self.external_rules)):
            for i, rule in enumerate(rules):
                try:
                    lookup.parse_matchers(rule.series_query, engine.guard)
                except BadQueryError as exc:
                    raise ConfigError(f"kubernetes_metrics.{what}[{i}].seriesQuery: {exc}") from None
        assert adapter.resourceRules is not None, "adapter_config() fills the default resource rules"
        self.resource = ResourceMetrics(adapter.resourceRules, self._evaluate, lister)
        self.custom, self.external = CustomRegistry(), ExternalRegistry()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- discovery ---
    def relist(self) -> None:
        """List the series of every rule now (each distinct seriesQuery once) and replace the metrics."""
        end_ms = int(self.clock() * 1000)
        start_ms = end_ms - int(self.relist_interval_s * 1000)
        try:
            cache: dict[str, list[Labels]] = {}
            for rule in self.rules + self.external_rules:
                if rule.series_query not in cache:
                    found = lookup.find_series(self.fanout, [rule.series_query], start_ms, end_ms,
                                               guard=self.engine.guard, budget=self.engine.new_budget())
                    cache[rule.series_query] = found.items
        except Exception:
            adapter_metrics.RELISTS.labels("error").inc()
            raise
        self.custom.set_series(self.rules, [cache[r.series_query] for r in self.rules])
        self.external.set_series(self.external_rules, [cache[r.series_query] for r in self.external_rules])
        adapter_metrics.RELISTS.labels("ok").inc()

    def start(self) -> AdapterProvider:
        """List once now (a failure is logged and counted; the thread tries again), then every interval."""
        if self.rules or self.external_rules:
            self._relist_logged()
            self._thread = threading.Thread(target=self._run, name="k8sapi-relist", daemon=True)
            self._thread.start()
        return self

    def _relist_logged(self) -> None:
        try:
            self.relist()
        except Exception as exc:  # noqa: BLE001 - counted; the previous metrics stay
            log.warning("unable to update list of all metrics: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.relist_interval_s):
            self._relist_logged()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.lister is not None:
            self.lister.close()

    # --- evaluation ---
    def _evaluate(self, query: str) -> list[Row]:
        now_ms = int(self.clock() * 1000)
        res = self.engine.instant(query, now_ms, budget=self.engine.new_budget())
        if res.result_type == "scalar":
            return [(Labels(), res.time_ms / 1000, float(res.scalar))]
        if res.result_type != "vector":
            raise QueryExecutionError(f"unexpected results: expected vector, got {res.result_type} for {query!r}")
        return [(s.labels, int(s.timestamps_ms[0]) / 1000, float(s.values[0])) for s in res.series]

    @staticmethod
    def _counted(api: str, fn: Callable[[], T]) -> T:
        try:
            out = fn()
        except NotFoundError:
            adapter_metrics.REQUESTS.labels(api, "not_found").inc()
            raise
        except BadRequestError:
            adapter_metrics.REQUESTS.labels(api, "bad_request").inc()
            raise
        except Exception:
            adapter_metrics.REQUESTS.labels(api, "error").inc()
            raise
        adapter_metrics.REQUESTS.labels(api, "ok").inc()
        return out

    # --- metrics.k8s.io ---
    def nodes(self, names: Sequence[str] | None, selector: Selector) -> list[NodeUsage]:
        return self._counted("resource", lambda: self.resource.nodes(names, selector))

    def pods(self, namespace: str | None, names: Sequence[str] | None, selector: Selector) -> list[PodUsage]:
        return self._counted("resource", lambda: self.resource.pods(namespace, names, selector))

    # --- custom.metrics.k8s.io ---
    def custom_metrics(self) -> list[CustomMetricInfo]:
        return self.custom.metrics()

    def custom_values(self, group_resource: str, metric: str, namespace: str | None, name: str | None,
                      selector: Selector, metric_selector: Selector) -> list[MetricValue]:
        return self._counted("custom", lambda: self._custom_values(
            group_resource, metric, namespace, name, selector, metric_selector))

    def _custom_values(self, group_resource: str, metric: str, namespace: str | None, name: str | None,
                       selector: Selector, metric_selector: Selector) -> list[MetricValue]:
        parsed = GroupResource.parse(group_resource)
        info = resources.lookup(parsed.group, parsed.resource)
        gr = info.group_resource
        if not info.namespaced:
            namespace = None  # namespaces/{ns}/metrics/{m}: the namespace is the object
        served = self.custom.lookup(gr, metric)
        if served is None:
            raise NotFoundError(f"the server could not find the metric {metric} for {gr}")
        names = [name] if name is not None else self._names(served.series_name, served.rule, gr, namespace, selector)
        if not names:
            raise NotFoundError(f"the server could not find the metric {metric} for {gr}")
        query = served.rule.query.build(served.series_name, gr, namespace, names, metric_selector=metric_selector)
        label = served.rule.namer.converter.label_for(gr)
        values = {labels.get(label): v for labels, _, v in self._evaluate(query)}
        if name is not None and name not in values:
            raise NotFoundError(f"the server could not find the metric {metric} for {gr} {name}")
        now_s = self.clock()
        sel = {r.key: r.values[0] for r in metric_selector.requirements if r.op == EQUALS} or None
        return [MetricValue(ObjectReference(info.kind, n, namespace or "", info.api_version), metric, now_s,
                            _value(values[n]), None, sel)
                for n in names if n in values]

    def _names(self, series_name: str, rule: Rule, gr: GroupResource, namespace: str | None,
               selector: Selector) -> list[str]:
        """The objects ``*`` with ``selector`` selects: from the Kubernetes API, else from the series."""
        if self.lister is not None:
            return [o.name for o in self.lister.list(gr, namespace, selector.text)]
        label = rule.namer.converter.label_for(gr)
        matchers = [matcher("__name__", "=", series_name), matcher(label, "!=", "")]
        if namespace:
            matchers.append(matcher(rule.namer.converter.label_for(NAMESPACES), "=", namespace))
        end_ms = int(self.clock() * 1000)
        found = lookup.find_series(self.fanout, ["{" + ",".join(matchers) + "}"],
                                   end_ms - self.engine.lookback_delta_ms, end_ms,
                                   guard=self.engine.guard, budget=self.engine.new_budget())
        return sorted({s.get(label) for s in found.items if selector.matches(s.to_dict())})

    # --- external.metrics.k8s.io ---
    def external_metrics(self) -> list[ExternalMetricInfo]:
        return self.external.metrics()

    def external_values(self, namespace: str, metric: str, metric_selector: Selector) -> list[ExternalValue]:
        return self._counted("external", lambda: self._external_values(namespace, metric, metric_selector))

    def _external_values(self, namespace: str, metric: str, metric_selector: Selector) -> list[ExternalValue]:
        served = self.external.lookup(metric)
        if served is None:  # the adapter names the namespaces resource for "default" only
            raise NotFoundError(f"the server could not find the metric {metric} for "
                                f"{NAMESPACES if namespace == 'default' else ''}".rstrip())
        query = served.rule.query.build_external(served.series_name, namespace, metric_selector)
        return [ExternalValue(metric, labels.to_dict(), ts, _value(v)) for labels, ts, v in self._evaluate(query)]


def build_provider(config: Config, engine: Engine, fanout: FanoutQuerier) -> MetricsProvider:
    """The provider of ``config.kubernetes_metrics`` over ``engine`` and ``fanout``, its first re-list done
    and its re-list thread running; ``close()`` stops it. ConfigError for a bad rule or adapter file."""
    km = config.kubernetes_metrics or KubernetesMetricsConfig()
    adapter = km.adapter_config()
    lister = ObjectLister.connect(km.kubeconfig, km.in_cluster)
    try:
        provider = AdapterProvider(adapter, engine, fanout, lister=lister,
                                   relist_interval_s=km.metrics_relist_interval / 1000)
    except Exception:
        if lister is not None:
            lister.close()
        raise
    return provider.start()


__all__ = ["AdapterProvider", "build_provider"]
