"""The HTTP side of the Kubernetes metrics APIs over a test double of the provider seam: routes, JSON
shapes as Metrics Server and custom-metrics-apiserver write them, Status errors, request metrics."""

from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from shardmon.k8sapi.auth import Authenticator
from shardmon.k8sapi.server import KubernetesMetricsAPI
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from tests.k8sapi_support import T0, FixedProvider

NOW = T0 + 5


def get(path: str, provider: FixedProvider | None = None, authenticator=None, headers=None):
    """(status, JSON or text) of GET ``path``."""
    async def main():
        api = KubernetesMetricsAPI(provider or FixedProvider(), authenticator, clock=lambda: NOW)
        async with TestClient(TestServer(api.app())) as client:
            resp = await client.get(path, headers=headers or {})
            text = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(text) if ctype.startswith("application/json") else text

    return asyncio.run(main())


RM = "/apis/metrics.k8s.io/v1beta1"


def test_discovery_lists_the_three_groups_and_their_resources():
    status, doc = get("/apis")
    assert status == 200 and doc["kind"] == "APIGroupList" and doc["apiVersion"] == "v1"
    assert [g["name"] for g in doc["groups"]] == ["metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"]
    custom = doc["groups"][1]
    assert custom["preferredVersion"] == {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"}
    assert [v["version"] for v in custom["versions"]] == ["v1beta2", "v1beta1"]

    status, doc = get("/apis/metrics.k8s.io")
    assert status == 200 and doc == {
        "kind": "APIGroup", "apiVersion": "v1", "name": "metrics.k8s.io",
        "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}

    status, doc = get(RM)
    assert status == 200 and doc == {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1", "resources": [
            {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]}]}

    for version in ("v1beta2", "v1beta1"):
        status, doc = get(f"/apis/custom.metrics.k8s.io/{version}")
        assert status == 200 and doc["groupVersion"] == f"custom.metrics.k8s.io/{version}"
        assert doc["resources"] == [
            {"name": "pods/http_requests_per_second", "singularName": "", "namespaced": True,
             "kind": "MetricValueList", "verbs": ["get"]},
            {"name": "namespaces/http_requests_per_second", "singularName": "", "namespaced": False,
             "kind": "MetricValueList", "verbs": ["get"]}]

    status, doc = get("/apis/external.metrics.k8s.io/v1beta1")
    assert status == 200 and doc["resources"] == [
        {"name": "queue_messages_ready", "singularName": "", "namespaced": True, "kind": "ExternalMetricValueList",
         "verbs": ["get"]}]


def test_unknown_paths_groups_and_versions_are_404_status():
    for path in ("/apis/apps", "/apis/metrics.k8s.io/v1", "/apis/custom.metrics.k8s.io/v1", "/api/v1/nodes",
                 "/nothing", f"{RM}/deployments"):
        status, doc = get(path)
        assert status == 404, path
        assert doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "the server could not find the requested resource", "reason": "NotFound",
                       "code": 404}, path


def test_node_metrics_list_as_metrics_server_writes_it():
    status, doc = get(f"{RM}/nodes")
    assert status == 200
    assert doc["kind"] == "NodeMetricsList" and doc["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert doc["metadata"] == {}
    assert doc["items"][0] == {
        "metadata": {"name": "node-a", "creationTimestamp": "2024-05-01T12:00:05Z",
                     "labels": {"zone": "a", "role": "worker"}},
        "timestamp": "2024-05-01T12:00:00Z", "window": "20s",
        "usage": {"cpu": "123456789n", "memory": "1264Mi"}}
    assert doc["items"][1]["usage"] == {"cpu": "1500m", "memory": "3Gi"}


def test_one_node_and_its_404():
    status, doc = get(f"{RM}/nodes/node-b")
    assert status == 200 and doc["kind"] == "NodeMetrics" and doc["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert doc["metadata"]["name"] == "node-b"
    status, doc = get(f"{RM}/nodes/node-x")
    assert status == 404
    assert doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": 'nodemetrics.metrics.k8s.io "node-x" not found', "reason": "NotFound",
                   "details": {"name": "node-x", "group": "metrics.k8s.io", "kind": "nodemetrics"}, "code": 404}


def test_label_and_field_selectors_select_nodes():
    _, doc = get(f"{RM}/nodes?labelSelector=zone%3Db")
    assert [i["metadata"]["name"] for i in doc["items"]] == ["node-b"]
    _, doc = get(f"{RM}/nodes?labelSelector=zone%20notin%20(a,b)")
    assert doc["items"] == []
    _, doc = get(f"{RM}/nodes?fieldSelector=metadata.name%3Dnode-a")
    assert [i["metadata"]["name"] for i in doc["items"]] == ["node-a"]
    _, doc = get(f"{RM}/nodes?fieldSelector=metadata.name!%3Dnode-a")
    assert [i["metadata"]["name"] for i in doc["items"]] == ["node-b"]


def test_a_bad_selector_is_a_400_status_naming_the_position():
    status, doc = get(f"{RM}/nodes?labelSelector=zone%20in%20a")
    assert status == 400 and doc["reason"] == "BadRequest" and doc["code"] == 400 and doc["kind"] == "Status"
    assert "position" in doc["message"] and "'('" in doc["message"]
    status, doc = get(f"{RM}/namespaces/web/pods?fieldSelector=spec.nodeName%3Dx")
    assert status == 400 and "field label not supported: spec.nodeName" in doc["message"]


def test_pod_metrics_lists_and_one_pod():
    _, doc = get(f"{RM}/pods")
    assert doc["kind"] == "PodMetricsList"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in doc["items"]] == [
        ("db", "db-0"), ("web", "web-1"), ("web", "web-2")]
    status, doc = get(f"{RM}/namespaces/web/pods?labelSelector=app%3Dweb")
    assert status == 200 and [i["metadata"]["name"] for i in doc["items"]] == ["web-1", "web-2"]
    assert doc["items"][0] == {
        "metadata": {"name": "web-1", "namespace": "web", "creationTimestamp": "2024-05-01T12:00:05Z",
                     "labels": {"app": "web"}},
        "timestamp": "2024-05-01T12:00:00Z", "window": "30s",
        "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                       {"name": "sidecar", "usage": {"cpu": "1m", "memory": "10Mi"}}]}
    status, doc = get(f"{RM}/namespaces/db/pods/db-0")
    assert status == 200 and doc["kind"] == "PodMetrics" and doc["containers"][0]["usage"] == {
        "cpu": "2", "memory": "2Gi"}
    status, doc = get(f"{RM}/namespaces/web/pods/db-0")
    assert status == 404 and doc["message"] == 'podmetrics.metrics.k8s.io "web/db-0" not found'
    assert doc["details"] == {"name": "web/db-0", "group": "metrics.k8s.io", "kind": "podmetrics"}


def test_custom_metrics_v1beta2_for_an_hpa_request():
    p = FixedProvider()
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/*/http_requests_per_second"
                      "?labelSelector=app%3Dweb", p)
    assert status == 200
    assert doc["kind"] == "MetricValueList" and doc["apiVersion"] == "custom.metrics.k8s.io/v1beta2"
    assert doc["items"] == [
        {"describedObject": {"kind": "Pod", "namespace": "web", "name": "web-1", "apiVersion": "/v1"},
         "metric": {"name": "http_requests_per_second"}, "timestamp": "2024-05-01T12:00:00Z",
         "windowSeconds": 60, "value": "1500m"},
        {"describedObject": {"kind": "Pod", "namespace": "web", "name": "web-2", "apiVersion": "/v1"},
         "metric": {"name": "http_requests_per_second"}, "timestamp": "2024-05-01T12:00:00Z",
         "windowSeconds": 60, "value": "2250m"}]
    assert p.calls[-1] == ("custom_values", "pods", "http_requests_per_second", "web", None, "app=web", "")


def test_custom_metrics_v1beta1_shape_and_metric_selector():
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/web/pods/web-1/http_requests_per_second"
                      "?metricLabelSelector=verb%3DGET")
    assert status == 200 and doc["apiVersion"] == "custom.metrics.k8s.io/v1beta1"
    assert doc["items"] == [
        {"describedObject": {"kind": "Pod", "namespace": "web", "name": "web-1", "apiVersion": "/v1"},
         "metricName": "http_requests_per_second", "timestamp": "2024-05-01T12:00:00Z", "window": 60,
         "value": "1500m", "selector": {"matchLabels": {"verb": "GET"}}}]
    _, doc = get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/web/pods/web-1/http_requests_per_second")
    assert doc["items"][0]["selector"] is None  # written, as Go writes a nil pointer without omitempty


def test_custom_metrics_namespace_and_cluster_forms():
    p = FixedProvider()
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/metrics/http_requests_per_second", p)
    assert status == 200 and doc["items"][0]["describedObject"] == {"kind": "Namespace", "name": "web",
                                                                     "apiVersion": "/v1"}
    assert doc["items"][0]["value"] == "3750m"
    assert p.calls[-1][:5] == ("custom_values", "namespaces", "http_requests_per_second", None, "web")
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/http_requests_per_second", p)
    assert status == 200 and p.calls[-1][:5] == ("custom_values", "namespaces", "http_requests_per_second", None,
                                                  "web")


def test_custom_metric_not_found_is_a_404_status_with_the_providers_message():
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/*/nope")
    assert status == 404 and doc["reason"] == "NotFound" and doc["kind"] == "Status"
    assert doc["message"] == "the server could not find the metric nope for pods"
    status, doc = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/web-1/http_requests_per_second"
                      "?metricLabelSelector=a%20in%20(")
    assert status == 400 and doc["reason"] == "BadRequest"


def test_external_metrics():
    p = FixedProvider()
    status, doc = get("/apis/external.metrics.k8s.io/v1beta1/namespaces/web/queue_messages_ready"
                      "?labelSelector=queue%3Dtasks", p)
    assert status == 200 and doc == {
        "kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {},
        "items": [{"metricName": "queue_messages_ready", "metricLabels": {"queue": "tasks", "namespace": "web"},
                   "timestamp": "2024-05-01T12:00:00Z", "value": "12"}]}
    assert p.calls[-1] == ("external_values", "web", "queue_messages_ready", "queue=tasks")


def test_shards_down_is_a_503_status():
    p = FixedProvider()
    p.down = True
    for path in (f"{RM}/nodes", f"{RM}/namespaces/web/pods/web-1", "/apis/custom.metrics.k8s.io/v1beta2",
                 "/apis/external.metrics.k8s.io/v1beta1/namespaces/web/queue_messages_ready"):
        status, doc = get(path, p)
        assert status == 503, path
        assert doc["reason"] == "ServiceUnavailable" and doc["code"] == 503 and "unavailable" in doc["message"]


def test_version_health_and_openapi():
    status, doc = get("/version")
    assert status == 200 and doc["gitVersion"].startswith("v") and "platform" in doc
    for path in ("/healthz", "/livez", "/readyz"):
        assert get(path) == (200, "ok")
    status, doc = get("/openapi/v2")
    assert status == 200 and doc["swagger"] == "2.0"


def _count(handler: str, code: str) -> float:
    return REGISTRY.get_sample_value("shardmon_k8sapi_requests_total", {"handler": handler, "code": code}) or 0.0


def _auth_failures(reason: str) -> float:
    return REGISTRY.get_sample_value("shardmon_k8sapi_auth_failures_total", {"reason": reason}) or 0.0


def test_requests_are_counted_by_handler_and_code():
    before_ok, before_404 = _count("nodes", "200"), _count("node", "404")
    get(f"{RM}/nodes")
    get(f"{RM}/nodes/none")
    assert _count("nodes", "200") == before_ok + 1 and _count("node", "404") == before_404 + 1


def test_without_credentials_401_but_health_answers(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cret,alice,uid-1,"dev,ops"\n')
    auth = Authenticator(KubernetesMetricsConfig(token_auth_file=str(tokens)))
    before = _auth_failures("no_credentials"), _auth_failures("invalid_token")
    status, doc = get(f"{RM}/nodes", authenticator=auth)
    assert status == 401 and doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                     "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    status, _ = get(f"{RM}/nodes", authenticator=auth, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    assert (_auth_failures("no_credentials"), _auth_failures("invalid_token")) == (before[0] + 1, before[1] + 1)
    status, doc = get(f"{RM}/nodes", authenticator=auth, headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and doc["kind"] == "NodeMetricsList"
    assert get("/healthz", authenticator=auth) == (200, "ok")
    assert get("/metrics", authenticator=auth)[0] == 401
    status, text = get("/metrics", authenticator=auth, headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and "shardmon_k8sapi_requests_total" in text


def test_front_proxy_headers_without_a_certificate_are_ignored():
    auth = Authenticator(KubernetesMetricsConfig(anonymous_auth=False))
    status, _ = get(f"{RM}/nodes", authenticator=auth, headers={"X-Remote-User": "admin",
                                                               "X-Remote-Group": "system:masters"})
    assert status == 401
