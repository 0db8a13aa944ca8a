"""The resource metrics API's data (``metrics.k8s.io``: nodes and pods) from prometheus-adapter's
``resourceRules``, as its resource provider answers.

For the objects asked about, the cpu and memory queries run at the same instant: ``nodeQuery`` grouped by
the node label, ``containerQuery`` grouped by the pod label and ``containerLabel`` (one query per
namespace, with the namespace's matcher). A value that is NaN or negative reads as 0; an object lacking
either resource is left out; a container lacking one gets 0 for it. The timestamp is the earliest of the
samples' (the evaluation instant), the window is ``resourceRules.window``.

Objects: when the Kubernetes API is configured, nodes and pods are listed from it with the label selector
(their labels come along); otherwise they are the values of the node and pod labels of the series the
queries find (the resource matcher is then ``=~".+"``, and pods across namespaces are also grouped by the
namespace label), and having no labels they match only a selector that an empty label set satisfies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shardmon.k8sapi.metrics_query import MetricsQuery
from shardmon.k8sapi.naming import ResourceConverter
from shardmon.k8sapi.objects import KubeObject, ObjectLister
from shardmon.k8sapi.provider import ContainerUsage, NodeUsage, PodUsage
from shardmon.k8sapi.resources import NAMESPACES, NODES, PODS
from shardmon.k8sapi.selector import Selector
from shardmon.model.adapter_config import ResourceRule, ResourceRules
from shardmon.model.labels import Labels

#: Evaluates a query at "now": (labels, timestamp_s, value) per series of the answer.
Evaluate = Callable[[str], list[tuple[Labels, float, float]]]


def _usage(v: float) -> float:
    return 0.0 if math.isnan(v) or v < 0 else v


@dataclass
class _Resource:
    converter: ResourceConverter
    container: MetricsQuery
    node: MetricsQuery
    container_label: str

    @classmethod
    def of(cls, rule: ResourceRule) -> _Resource:
        conv = ResourceConverter(rule.resources)
        return cls(conv, MetricsQuery(rule.containerQuery, conv, name="container-query"),
                   MetricsQuery(rule.nodeQuery, conv, name="node-query"), rule.containerLabel)


class ResourceMetrics:
    """Nodes' and pods' cpu and memory from the resource rules."""

    def __init__(self, rules: ResourceRules, evaluate: Evaluate, lister: ObjectLister | None) -> None:
        self.window_s = rules.window / 1000
        self.cpu, self.mem = _Resource.of(rules.cpu), _Resource.of(rules.memory)
        self.evaluate = evaluate
        self.lister = lister

    # --- nodes ---
    def nodes(self, names: Sequence[str] | None, selector: Selector) -> list[NodeUsage]:
        labels: dict[str, dict[str, str]] = {}
        if self.lister is not None:
            objs = self.lister.list(NODES, None, selector.text)
            labels = {o.name: o.labels for o in objs if names is None or o.name in names}
            names = sorted(labels)
            if not names:
                return []
        elif not selector.matches({}) or (names is not None and not names):
            return []
        cpu = self._by_name(self.cpu, self.cpu.node.build("", NODES, None, names), NODES)
        mem = self._by_name(self.mem, self.mem.node.build("", NODES, None, names), NODES)
        out = []
        for name in sorted(cpu.keys() & mem.keys()):
            (ts_c, c), (ts_m, m) = cpu[name][0][1:], mem[name][0][1:]
            out.append(NodeUsage(name, min(ts_c, ts_m), self.window_s, _usage(c), _usage(m), labels.get(name, {})))
        return out

    def _by_name(self, res: _Resource, query: str, gr) -> dict[str, list[tuple[Labels, float, float]]]:
        label = res.converter.label_for(gr)
        out: dict[str, list[tuple[Labels, float, float]]] = {}
        for row in self.evaluate(query):
            out.setdefault(row[0].get(label), []).append(row)
        return out

    # --- pods ---
    def pods(self, namespace: str | None, names: Sequence[str] | None, selector: Selector) -> list[PodUsage]:
        if self.lister is not None:
            objs = [o for o in self.lister.list(PODS, namespace, selector.text) if names is None or o.name in names]
            by_ns: dict[str, list[KubeObject]] = {}
            for o in objs:
                by_ns.setdefault(o.namespace, []).append(o)
            out = []
            for ns, group in sorted(by_ns.items()):
                pod_labels = {o.name: o.labels for o in group}
                out += self._pods_in(ns, sorted(pod_labels), pod_labels)
            return out
        if not selector.matches({}):
            return []
        return self._pods_in(namespace, names, {})

    def _pods_in(self, namespace: str | None, names: Sequence[str] | None,
                 pod_labels: dict[str, dict[str, str]]) -> list[PodUsage]:
        """The pods ``names`` (None: all the series name) of ``namespace`` (None: every namespace)."""
        if names is not None and not names:
            return []
        rows = {}
        for key, res in (("cpu", self.cpu), ("mem", self.mem)):
            extra = [res.container_label]
            ns_label = res.converter.label_for(NAMESPACES)
            if namespace is None:
                extra.append(ns_label)
            query = res.container.build("", PODS, namespace, names, extra_group_by=extra)
            pod_label = res.converter.label_for(PODS)
            found: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
            for labels, ts, v in self.evaluate(query):
                pod = (namespace if namespace is not None else labels.get(ns_label), labels.get(pod_label))
                found.setdefault(pod, {})[labels.get(res.container_label)] = (ts, _usage(v))
            rows[key] = found
        out = []
        for ns, pod in sorted(rows["cpu"].keys() & rows["mem"].keys()):
            cpu, mem = rows["cpu"][(ns, pod)], rows["mem"][(ns, pod)]
            ts = min(t for t, _ in [*cpu.values(), *mem.values()])
            containers = tuple(ContainerUsage(c, cpu.get(c, (0, 0.0))[1], mem.get(c, (0, 0.0))[1])
                               for c in sorted(cpu.keys() | mem.keys()))
            out.append(PodUsage(ns, pod, ts, self.window_s, containers, pod_labels.get(pod, {})))
        return out


__all__ = ["Evaluate", "ResourceMetrics"]
