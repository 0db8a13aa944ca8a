"""prometheus-adapter's naming, association and query building, after its docs/config.md and
config-walkthrough.md (and the cases of its pkg/naming tests)."""

from __future__ import annotations

import pytest

from shardmon.k8sapi import resources
from shardmon.k8sapi.metrics_query import MetricsQuery, UnsupportedSelectorError, selector_parts
from shardmon.k8sapi.naming import MetricNamer, NoLabelError, ResourceConverter
from shardmon.k8sapi.resources import NAMESPACES, NODES, PODS, GroupResource
from shardmon.k8sapi.selector import parse_selector
from shardmon.model.adapter_config import DiscoveryRule, ResourceMapping


def rule(**kw) -> DiscoveryRule:
    return DiscoveryRule.model_validate({"seriesQuery": "x", "metricsQuery": "<<.Series>>", **kw})


def test_resources_are_normalised_as_kubectl_names_them():
    assert resources.normalize("", "pod") == PODS == resources.normalize("", "Pods")
    assert resources.normalize("", "deployment") == GroupResource("apps", "deployments")
    assert str(resources.normalize("apps", "deployments")) == "deployments.apps"
    assert resources.normalize("cheese.io", "brand") == GroupResource("cheese.io", "brands")
    assert resources.normalize("x.io", "policy") == GroupResource("x.io", "policies")
    info = resources.lookup("", "ingress")
    assert (info.kind, info.api_version, info.namespaced) == ("Ingress", "networking.k8s.io/v1", True)
    assert resources.lookup("", "node").api_version == "/v1" and not resources.lookup("", "nodes").namespaced


def test_overrides_map_labels_to_resources_and_back():
    conv = ResourceConverter(ResourceMapping.model_validate(
        {"overrides": {"kubernetes_namespace": {"resource": "namespace"}, "kubernetes_pod_name": {"resource": "pod"},
                       "microservice": {"group": "apps", "resource": "deployment"}}}))
    assert conv.label_for(PODS) == "kubernetes_pod_name" and conv.label_for(NAMESPACES) == "kubernetes_namespace"
    assert conv.label_for(GroupResource("apps", "deployments")) == "microservice"
    assert conv.resources_for(["__name__", "kubernetes_pod_name", "kubernetes_namespace", "method"]) == [PODS, NAMESPACES]
    with pytest.raises(NoLabelError, match="no generic resource label form"):
        conv.label_for(NODES)


def test_a_template_maps_resources_to_labels_and_reads_labels_back():
    conv = ResourceConverter(ResourceMapping(template="kube_<<.Group>>_<<.Resource>>"))
    assert conv.label_for(GroupResource("apps", "deployments")) == "kube_apps_deployment"
    assert conv.label_for(GroupResource("networking.k8s.io", "ingresses")) == "kube_networking_k8s_io_ingress"
    assert conv.resource_for("kube_apps_deployment") == GroupResource("apps", "deployments")
    plain = ResourceConverter(ResourceMapping(template="<<.Resource>>"))
    assert plain.label_for(PODS) == "pod"
    # Labels that name no resource the mapper knows are not resources (as the adapter skips them).
    assert plain.resources_for(["namespace", "pod", "instance", "method"]) == [NAMESPACES, PODS]


def test_names_follow_matches_and_as():
    per_second = MetricNamer(rule(name={"matches": "^(.*)_total$", "as": "${1}_per_second"}))
    assert per_second.metric_name("http_requests_total") == "http_requests_per_second"
    assert per_second.passes("http_requests_total") and not per_second.passes("http_requests")
    assert MetricNamer(rule(name={"matches": "^container_(.*)_seconds_total$"})).metric_name(
        "container_cpu_usage_seconds_total") == "cpu_usage"  # default as: $1
    assert MetricNamer(rule(name={"matches": "^cheddar"})).metric_name("cheddar_x") == "cheddar"  # default as: $0
    assert MetricNamer(rule(name={"as": "cheesy_goodness"})).metric_name("cheddar") == "cheesy_goodness"
    assert MetricNamer(rule()).metric_name("anything") == "anything"


def test_series_filters_keep_and_drop_unanchored():
    namer = MetricNamer(rule(seriesFilters=[{"isNot": "^container_.*_seconds_total$"}, {"is": "total"}],
                             name={"matches": "^container_(.*)_total$"}))
    assert namer.passes("container_network_receive_bytes_total")
    assert not namer.passes("container_cpu_usage_seconds_total")
    assert not namer.passes("node_network_receive_bytes_total")


def _query(template: str, **resources_kw) -> MetricsQuery:
    mapping = ResourceMapping.model_validate(resources_kw or {"overrides": {
        "namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}})
    return MetricsQuery(template, ResourceConverter(mapping))


def test_label_matchers_and_group_by_as_the_walkthrough_shows():
    q = _query("sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)")
    assert q.build("http_requests_total", PODS, "production", ["frontend-0", "frontend-1"]) == \
        'sum(rate(http_requests_total{namespace="production",pod=~"frontend-0|frontend-1"}[2m])) by (pod)'
    assert q.build("http_requests_total", PODS, "production", ["frontend-0"]) == \
        'sum(rate(http_requests_total{namespace="production",pod="frontend-0"}[2m])) by (pod)'
    # A namespace's own metric: the namespace is the object, no namespace matcher besides.
    assert q.build("http_requests_total", NAMESPACES, None, ["web"]) == \
        'sum(rate(http_requests_total{namespace="web"}[2m])) by (namespace)'


def test_the_raw_fields_and_the_metric_label_selector():
    q = _query('<<.LabelValuesByName.pod>>;<<range .GroupBySlice>>[<<.>>]<<end>>;<<.LabelMatchers>>')
    sel = parse_selector("verb in (PUT,GET),code!=500,!debug,tier")
    out = q.build("s", PODS, "ns", ["a", "b"], metric_selector=sel, extra_group_by=["container"])
    assert out == ('a|b;[pod][container];verb=~"GET|PUT",code!="500",debug="",tier!="",'
                   'namespace="ns",pod=~"a|b"')


def test_selectors_become_matchers_as_the_adapter_translates_them():
    parts = selector_parts(parse_selector('a=1,b==2,c!=3,d in (x),e notin (y),f notin (y,z),g,!h'))
    assert [f"{lbl}{op}{v!r}" for lbl, op, v, _ in parts] == [
        "a='1'", "b='2'", "c!='3'", "d=~'x'", "e!~'y'", "f!~'y|z'", "g!=''", "h=''"]
    with pytest.raises(UnsupportedSelectorError, match="operator not supported by prometheus"):
        selector_parts(parse_selector("replicas>3"))


def test_external_queries_add_the_namespace_unless_the_rule_says_not():
    q = _query("sum(<<.Series>>{<<.LabelMatchers>>}) by (name)")
    assert q.build_external("queue_depth", "web", parse_selector("topic=t")) == \
        'sum(queue_depth{topic="t",namespace="web"}) by (name)'
    unscoped = MetricsQuery("sum(<<.Series>>{<<.LabelMatchers>>})", ResourceConverter(ResourceMapping()),
                            namespaced=False)
    assert unscoped.build_external("queue_depth", "web", parse_selector("")) == "sum(queue_depth{})"
