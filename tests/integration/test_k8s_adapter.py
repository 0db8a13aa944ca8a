"""The data side of the Kubernetes metrics APIs over three real shards: the provider ``build_provider``
makes answers what the adapter-style rules' PromQL, evaluated directly through the same engine at the same
instant, answers (within 1e-6): nodes and pods from the default resource rules, an HPA-shaped custom
metric (``pods/*/http_requests_per_second`` with ``labelSelector=app=web``, the pods listed from a fake
Kubernetes API server as the adapter lists them, and from series labels without one) and an external
metric; and the adapter's 404s."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import yaml

from shardmon.k8sapi.adapter import build_provider
from shardmon.k8sapi.provider import NotFoundError
from shardmon.k8sapi.selector import EVERYTHING, parse_selector
from shardmon.localshards import LocalShards
from shardmon.model.config import parse_config
from shardmon.model.labels import Labels
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch
from shardmon.querier.promqltest import ShardAppender
from shardmon.querier.server import build
from tests.integration.fake_kube import FakeKube

NODES = ["node-a", "node-b", "node-c"]
PODS = {("web", "web-1"): "web", ("web", "web-2"): "web", ("web", "worker-1"): "worker",
        ("db", "db-0"): "db", ("db", "db-1"): "db", ("ops", "tool-1"): "tool"}
CONTAINERS = ["app", "sidecar"]
EVERY_S, POINTS = 15, 24

RULES = {
    "rules": [{
        "seriesQuery": 'http_requests_total{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"},
        "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
    }],
    "externalRules": [{
        "seriesQuery": '{__name__="queue_depth",topic!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (topic)",
    }],
}


def _batch(end_s: float) -> SampleBatch:
    rng = np.random.default_rng(16)
    defs: dict[Labels, np.ndarray] = {}
    steps = np.arange(POINTS, dtype=F64)

    def counter(rate: float) -> np.ndarray:
        return np.cumsum(rng.uniform(0.5, 1.5, POINTS) * rate * EVERY_S)

    for i, node in enumerate(NODES):
        defs[Labels.from_dict({"__name__": "node_cpu_usage_seconds_total", "node": node})] = counter(1 + i)
        defs[Labels.from_dict({"__name__": "node_memory_working_set_bytes", "node": node})] = \
            2e9 + 1e8 * i + 1e6 * steps
    for n, ((ns, pod), app) in enumerate(PODS.items()):
        node = NODES[n % 3]
        for c in CONTAINERS:
            base = {"namespace": ns, "pod": pod, "container": c, "node": node}
            defs[Labels.from_dict({"__name__": "container_cpu_usage_seconds_total", **base})] = counter(0.05 * (n + 1))
            defs[Labels.from_dict({"__name__": "container_memory_working_set_bytes", **base})] = \
                5e7 * (n + 1) + 1e5 * steps
        for code in ("200", "500"):
            defs[Labels.from_dict({"__name__": "http_requests_total", "namespace": ns, "pod": pod, "app": app,
                                   "code": code})] = counter(3 * (n + 1) / (1 if code == "200" else 10))
    for ns in ("web", "db"):
        for topic in ("orders", "mail"):
            defs[Labels.from_dict({"__name__": "queue_depth", "namespace": ns, "topic": topic, "instance": "q1"})] = \
                rng.uniform(0, 100, POINTS)
    ts = ((end_s - EVERY_S * (POINTS - 1 - steps)) * 1000).astype(I64)
    keys = [lbls.canonical() for lbls in defs]
    ids = np.array([lbls.series_id() for lbls in defs], dtype=U64)
    refs = np.repeat(np.arange(len(defs), dtype=U32), POINTS)
    vals = np.concatenate(list(defs.values())).astype(F64)
    return SampleBatch.of(ids, keys, refs, np.tile(ts, len(defs)), vals)


@pytest.fixture(scope="module")
def shards():
    with LocalShards(3) as local:
        clients = local.clients()
        now_s = time.time()
        ShardAppender(clients).append(_batch(now_s - 1))
        yield local, now_s
        for c in clients:
            c.close()


@pytest.fixture(scope="module")
def fake_kube():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    kube = FakeKube()
    for node in NODES:
        kube.add("node", {"metadata": {"name": node, "labels": {"zone": "z1" if node != "node-c" else "z2"}}})
    for (ns, pod), app in PODS.items():
        kube.add("pod", {"metadata": {"namespace": ns, "name": pod, "labels": {"app": app}}})
    url = asyncio.run_coroutine_threadsafe(kube.start(), loop).result(10)
    yield kube, url
    asyncio.run_coroutine_threadsafe(kube.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _config(local: LocalShards, tmp_path, kube_url: str | None):
    raw = yaml.safe_load(local.config_path.read_text())
    section = dict(RULES, metrics_relist_interval="10m")
    if kube_url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": kube_url}}],
            "users": [{"name": "u", "user": {"token": "t0ken"}}]}))
        section["kubeconfig"] = str(kubeconfig)
    raw["kubernetes_metrics"] = section
    return parse_config(yaml.safe_dump(raw))


@pytest.fixture(params=["series labels", "kubernetes api"])
def provider(request, shards, fake_kube, tmp_path):
    local, now_s = shards
    config = _config(local, tmp_path, fake_kube[1] if request.param == "kubernetes api" else None)
    engine, fanout = build(config)
    p = build_provider(config, engine, fanout)
    p.clock = lambda: now_s  # every query at one instant, which the direct evaluation uses too
    yield p, engine, now_s, request.param
    p.close()
    fanout.close()


def _direct(engine, query: str, now_s: float) -> dict:
    res = engine.instant(query, int(now_s * 1000))
    return {tuple(sorted(s.labels.to_dict().items())): float(s.values[0]) for s in res.series}


def test_nodes_equal_the_default_resource_rules_evaluated_directly(provider):
    p, engine, now_s, _ = provider
    cpu = _direct(engine, 'sum by (node) (irate(node_cpu_usage_seconds_total{node=~".+"}[4m]))', now_s)
    mem = _direct(engine, 'sum by (node) (node_memory_working_set_bytes{node=~".+"})', now_s)
    nodes = p.nodes(None, EVERYTHING)
    assert [n.name for n in nodes] == NODES
    for n in nodes:
        assert n.cpu_cores == pytest.approx(cpu[(("node", n.name),)], rel=1e-6, abs=1e-6)
        assert n.memory_bytes == pytest.approx(mem[(("node", n.name),)], rel=1e-6)
        assert n.window_s == 300 and n.timestamp_s == pytest.approx(now_s, abs=1e-3)
    assert [n.name for n in p.nodes(["node-b"], EVERYTHING)] == ["node-b"]


def test_pods_of_a_namespace_equal_the_default_resource_rules_per_container(provider):
    p, engine, now_s, _ = provider
    q = ('sum by (pod, container) (irate(container_cpu_usage_seconds_total{namespace="web",pod=~".+",'
         'container!="",pod!=""}[4m]))')
    cpu = _direct(engine, q, now_s)
    mem = _direct(engine, 'sum by (pod, container) (container_memory_working_set_bytes{namespace="web",'
                          'container!="",pod!=""})', now_s)
    pods = p.pods("web", None, EVERYTHING)
    assert [x.name for x in pods] == ["web-1", "web-2", "worker-1"]
    for pod in pods:
        assert [c.name for c in pod.containers] == CONTAINERS
        for c in pod.containers:
            key = (("container", c.name), ("pod", pod.name))
            assert c.cpu_cores == pytest.approx(cpu[key], rel=1e-6, abs=1e-6)
            assert c.memory_bytes == pytest.approx(mem[key], rel=1e-6)
    one = p.pods("db", ["db-1"], EVERYTHING)
    assert [(x.namespace, x.name) for x in one] == [("db", "db-1")]
    assert {(x.namespace, x.name) for x in p.pods(None, None, EVERYTHING)} == set(PODS)


def test_label_selectors_on_nodes_and_pods_need_the_kubernetes_api(provider):
    p, _, _, mode = provider
    if mode == "kubernetes api":
        assert [n.name for n in p.nodes(None, parse_selector("zone=z1"))] == ["node-a", "node-b"]
        pods = p.pods("web", None, parse_selector("app=web"))
        assert [x.name for x in pods] == ["web-1", "web-2"] and pods[0].labels == {"app": "web"}
    else:  # objects known from series labels only carry no labels: app=web selects none, !app all
        assert p.pods("web", None, parse_selector("app=web")) == []
        assert len(p.pods("web", None, parse_selector("!app"))) == 3


def test_an_hpa_shaped_custom_metric_equals_its_rule_evaluated_directly(provider):
    p, engine, now_s, _ = provider
    assert {(m.group_resource, m.metric, m.namespaced) for m in p.custom_metrics()} == {
        ("pods", "http_requests_per_second", True), ("namespaces", "http_requests_per_second", False)}
    want = _direct(engine, 'sum(rate(http_requests_total{namespace="web",pod=~"web-1|web-2"}[2m])) by (pod)', now_s)
    got = p.custom_values("pods", "http_requests_per_second", "web", None, parse_selector("app=web"), EVERYTHING)
    assert [(v.described_object.kind, v.described_object.namespace, v.described_object.name) for v in got] == [
        ("Pod", "web", "web-1"), ("Pod", "web", "web-2")]
    for v in got:
        assert v.value == pytest.approx(want[(("pod", v.described_object.name),)], rel=1e-6)
        assert v.metric == "http_requests_per_second" and v.described_object.api_version == "/v1"
    # One pod by name, with a metricLabelSelector; and the namespace's own metric.
    one = p.custom_values("pods", "http_requests_per_second", "web", "web-1", EVERYTHING, parse_selector("code=500"))
    direct = _direct(engine, 'sum(rate(http_requests_total{code="500",namespace="web",pod="web-1"}[2m])) by (pod)',
                     now_s)
    assert one[0].value == pytest.approx(direct[(("pod", "web-1"),)], rel=1e-6) and one[0].selector == {"code": "500"}
    ns = p.custom_values("namespaces", "http_requests_per_second", "db", "db", EVERYTHING, EVERYTHING)
    direct = _direct(engine, 'sum(rate(http_requests_total{namespace="db"}[2m])) by (namespace)', now_s)
    assert ns[0].described_object.kind == "Namespace" and ns[0].value == pytest.approx(
        direct[(("namespace", "db"),)], rel=1e-6)


def test_an_external_metric_equals_its_rule_evaluated_directly(provider):
    p, engine, now_s, _ = provider
    assert [m.metric for m in p.external_metrics()] == ["queue_depth"]
    want = _direct(engine, 'sum(queue_depth{topic="orders",namespace="web"}) by (topic)', now_s)
    got = p.external_values("web", "queue_depth", parse_selector("topic=orders"))
    assert [(v.metric, v.labels) for v in got] == [("queue_depth", {"topic": "orders"})]
    assert got[0].value == pytest.approx(want[(("topic", "orders"),)], rel=1e-6)


def test_what_the_adapter_answers_404_for(provider):
    p, *_ = provider
    with pytest.raises(NotFoundError, match="the server could not find the metric nope for pods"):
        p.custom_values("pods", "nope", "web", "web-1", EVERYTHING, EVERYTHING)
    with pytest.raises(NotFoundError, match="the server could not find the metric http_requests_per_second for "
                                            "pods ghost"):
        p.custom_values("pods", "http_requests_per_second", "web", "ghost", EVERYTHING, EVERYTHING)
    with pytest.raises(NotFoundError, match="could not find the metric nope for namespaces"):
        p.external_values("default", "nope", EVERYTHING)
