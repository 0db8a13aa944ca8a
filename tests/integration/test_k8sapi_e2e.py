"""The Kubernetes metrics APIs end to end, as a cluster's users meet them.

Three kubelets (tests/integration/kubelet_farm.py: 3 nodes, 20 pods in 3 namespaces, ``/metrics/resource``
and ``/metrics/cadvisor`` as a current kubelet writes them) are scraped by a whole ``shardmon up`` cluster
over 3 shards whose configuration sets ``kubernetes_metrics``. Then, with Debian's kubectl and the official
Python ``kubernetes`` client:

- ``kubectl get --raw`` straight to the k8s-api service (a kubeconfig with a client certificate of the
  service's ``client_ca_file``): NodeMetricsList, a namespace's PodMetricsList and one PodMetrics, whose
  values equal the resource rules' PromQL evaluated directly through the querier (1e-6) and the farm's
  known usage; the documented 404 and 400 errors; no credentials: 401.
- Through a test-only front on one URL (tests/integration/kube_front.py: ``/api/v1`` nodes and pods served
  by the test, ``/apis/<metrics groups>`` proxied as kube-aggregator does, with the front-proxy client
  certificate): ``kubectl top node`` and ``kubectl top pod -n web`` print the farm's usage; an HPA-shaped
  custom metrics request and an external one answer what the adapter-style rules define, read through
  kubectl and through the ``kubernetes`` client.
"""

from __future__ import annotations

import json
import math
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration import kubelet_farm as farm
from tests.integration.httpapi import get_json
from tests.integration.kube_front import KubeFront
from tests.integration.procs import free_port, shardmon_up, up_config, wait_until
from tests.tlsutil import _cert, _name, _write_key, make_certs

TOKEN = "front-token-7c1e"
HPA_PATH = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/*/http_requests_per_second"
EXTERNAL_PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/batch/queue_messages_ready"

# prometheus-adapter-style rules for the pods' request rate and the queue exporter, as its docs write them.
CUSTOM_RULES = [{
    "seriesQuery": 'http_requests_total{namespace!="",pod!=""}',
    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
    "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"},
    # irate: exact over the pods' linear counters whenever it is evaluated (rate's extrapolation depends on
    # where the window falls), so the API's answer and the test's own query agree to 1e-6.
    "metricsQuery": "sum(irate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
}]
EXTERNAL_RULES = [{
    "seriesQuery": 'queue_messages_ready{namespace!=""}',
    "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
    "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
}]


def _front_proxy_certs(folder: Path) -> tuple[Path, Path, Path]:
    """The aggregator's front-proxy CA and its client certificate (CN front-proxy-client)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("front-proxy-ca", ca_key, _name("front-proxy-ca"), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("front-proxy-client", key, ca.subject, ca_key)
    paths = folder / "front-proxy-ca.crt", folder / "front-proxy-client.crt", folder / "front-proxy-client.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths[2])
    return paths


def _kubeconfig(path: Path, server: str, *, ca: Path | None = None, token: str | None = None,
                cert: Path | None = None, key: Path | None = None) -> Path:
    cluster = {"server": server, **({"certificate-authority": str(ca)} if ca else {"insecure-skip-tls-verify": True})}
    user = {**({"token": token} if token else {}),
            **({"client-certificate": str(cert), "client-key": str(key)} if cert else {})}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": cluster}], "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    return path


def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=20s", *args],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def _raw(kubeconfig: Path, path: str) -> dict:
    return json.loads(_kubectl(kubeconfig, "get", "--raw", path).stdout)


def _quantity(q: str) -> float:
    return float(kubernetes.utils.parse_quantity(q))


def _promql(querier: str, expr: str) -> dict[tuple, float]:
    """An instant query's result through the querier's HTTP API: labels (sorted items) -> value."""
    body = get_json(f"http://{querier}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in body["data"]["result"]}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _table(text: str) -> dict[str, dict[str, str]]:
    """kubectl's table output: first column -> {header: cell}."""
    lines = [ln.split() for ln in text.strip().splitlines()]
    head = lines[0]
    return {row[0]: dict(zip(head, row)) for row in lines[1:]}


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("k8sapi")
    certs = make_certs(tmp / "certs")
    fp_ca, fp_cert, fp_key = _front_proxy_certs(tmp / "certs")
    kubelets = farm.KubeletFarm().start()
    api_port = free_port()
    api_url = f"https://127.0.0.1:{api_port}"

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs.path("server.crt"), certs.path("server.key"))
    proxy_ctx = ssl.create_default_context()
    proxy_ctx.check_hostname = False
    proxy_ctx.verify_mode = ssl.CERT_NONE  # the APIService's insecureSkipTLSVerify: the service's cert is self-signed
    proxy_ctx.load_cert_chain(fp_cert, fp_key)
    front = KubeFront(TOKEN, server_ctx, api_url, proxy_ctx)
    for node in farm.NODES:
        front.add("node", farm.node_object(node))
    for pod in farm.PODS:
        front.add("pod", farm.pod_object(pod))
    front_url = front.start_in_thread()
    front_kubeconfig = _kubeconfig(tmp / "front.kubeconfig", front_url, ca=certs.ca, token=TOKEN)

    raw = up_config(tmp, 1, n_shards=3)
    raw["scrape_configs"] = kubelets.scrape_configs("1s")
    raw["kubernetes_metrics"] = {
        "listen_address": f"127.0.0.1:{api_port}",
        "client_ca_file": str(certs.ca),
        "requestheader_client_ca_file": str(fp_ca),
        "requestheader_allowed_names": ["front-proxy-client"],
        "kubeconfig": str(front_kubeconfig),
        "metrics_relist_interval": "2s",
        "rules": CUSTOM_RULES,
        "externalRules": EXTERNAL_RULES,
    }
    cfg = tmp / "shardmon.yml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    up = shardmon_up(cfg, tmp / "up.log")
    try:
        up.up(120)
        direct = _kubeconfig(tmp / "direct.kubeconfig", api_url, cert=certs.path("client.crt"),
                             key=certs.path("client.key"))
        # Two scrapes of every kubelet (irate needs two samples) and the custom rules' series listed.
        wait_until(lambda: len(json.loads(_kubectl(direct, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes",
                                                   check=False).stdout or "{}").get("items") or []) == 3,
                   60, "NodeMetricsList to list the 3 nodes", interval_s=1)
        wait_until(lambda: len(json.loads(_kubectl(front_kubeconfig, "get", "--raw", HPA_PATH + "?labelSelector=app%3Dweb",
                                                   check=False).stdout or "{}").get("items") or []) == 3,
                   60, "the HPA-shaped custom metric to cover the 3 web frontends", interval_s=1)
        yield {"direct": direct, "front": front_kubeconfig, "front_url": front_url, "front_obj": front,
               "querier": raw["querier"]["http_address"], "api_url": api_url, "ca": certs.ca, "up": up}
    finally:
        up.stop()
        front.stop_in_thread()
        kubelets.stop()


# --- metrics.k8s.io straight to the service ------------------------------------------------------------

def test_node_metrics_equal_the_resource_rules_and_the_kubelets(k8s):
    body = _raw(k8s["direct"], "/apis/metrics.k8s.io/v1beta1/nodes")
    assert body["kind"] == "NodeMetricsList" and body["apiVersion"] == "metrics.k8s.io/v1beta1"
    items = {i["metadata"]["name"]: i for i in body["items"]}
    assert set(items) == {n.name for n in farm.NODES}
    cpu = {dict(k)["node"]: v for k, v in _promql(
        k8s["querier"], "sum by (node) (irate(node_cpu_usage_seconds_total[4m]))").items()}
    mem = {dict(k)["node"]: v for k, v in _promql(
        k8s["querier"], "sum by (node) (node_memory_working_set_bytes)").items()}
    for name, item in items.items():
        assert item["window"] and item["timestamp"].endswith("Z")
        assert _close(_quantity(item["usage"]["cpu"]), cpu[name]), (item, cpu[name])
        assert _close(_quantity(item["usage"]["memory"]), mem[name]), (item, mem[name])
        # and what the kubelet exposed
        assert abs(_quantity(item["usage"]["cpu"]) - farm.node_millicores(name) / 1000) < 1e-6
        assert _quantity(item["usage"]["memory"]) == farm.node_memory_mib(name) * farm.MiB


def test_pod_metrics_of_a_namespace_and_of_one_pod(k8s):
    body = _raw(k8s["direct"], "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods")
    assert body["kind"] == "PodMetricsList"
    items = {i["metadata"]["name"]: i for i in body["items"]}
    want = {p.name: p for p in farm.PODS if p.namespace == "web"}
    assert set(items) == set(want)
    cpu = _promql(k8s["querier"], 'sum by (namespace, pod, container) (irate(container_cpu_usage_seconds_total'
                                  '{namespace="web",container!="",pod!=""}[4m]))')
    cpu = {(dict(k)["pod"], dict(k)["container"]): v for k, v in cpu.items()}
    for name, item in items.items():
        assert item["metadata"]["namespace"] == "web"
        got = {c["name"]: c["usage"] for c in item["containers"]}
        assert set(got) == {c.name for c in want[name].containers}
        for c in want[name].containers:
            assert _close(_quantity(got[c.name]["cpu"]), cpu[(name, c.name)])
            assert abs(_quantity(got[c.name]["cpu"]) - c.millicores / 1000) < 1e-6
            assert _quantity(got[c.name]["memory"]) == c.memory_mib * farm.MiB

    one = _raw(k8s["direct"], "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods/postgres-0")
    assert one["kind"] == "PodMetrics" and one["metadata"]["name"] == "postgres-0"
    assert {c["name"] for c in one["containers"]} == {"postgres", "exporter"}


def test_documented_errors(k8s):
    out = _kubectl(k8s["direct"], "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods/nope", check=False)
    assert out.returncode != 0
    assert 'podmetrics.metrics.k8s.io "web/nope" not found' in out.stderr, out.stderr
    out = _kubectl(k8s["direct"], "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/nope", check=False)
    assert 'nodemetrics.metrics.k8s.io "nope" not found' in out.stderr, out.stderr
    out = _kubectl(k8s["direct"], "get", "--raw",
                   "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods?labelSelector=app%3D%3D%3D", check=False)
    assert out.returncode != 0 and ("BadRequest" in out.stderr or "400" in out.stderr), out.stderr
    # No credentials at all: 401, a Status.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(k8s["api_url"] + "/apis/metrics.k8s.io/v1beta1/nodes", context=ctx, timeout=10)
    assert err.value.code == 401
    assert json.loads(err.value.read())["kind"] == "Status"


# --- through the front, as kubectl top and the HPA reach it -------------------------------------------

def test_kubectl_top_node_and_pod(k8s):
    out = _kubectl(k8s["front"], "top", "node").stdout
    print(f"\n$ kubectl top node\n{out}")
    nodes = _table(out)
    assert set(nodes) == {n.name for n in farm.NODES}, nodes
    for n in farm.NODES:
        assert nodes[n.name]["CPU(cores)"] == f"{farm.node_millicores(n.name)}m", nodes
        assert nodes[n.name]["MEMORY(bytes)"] == f"{farm.node_memory_mib(n.name)}Mi", nodes
    out = _kubectl(k8s["front"], "top", "pod", "-n", "web").stdout
    print(f"$ kubectl top pod -n web\n{out}")
    pods = _table(out)
    web = {p.name: p for p in farm.PODS if p.namespace == "web"}
    assert set(pods) == set(web), pods
    for name, p in web.items():
        assert pods[name]["CPU(cores)"] == f"{p.millicores}m", pods
        assert pods[name]["MEMORY(bytes)"] == f"{p.memory_mib}Mi", pods
    containers = _kubectl(k8s["front"], "top", "pod", "-n", "web", "postgres-0", "--containers").stdout
    assert "exporter" in containers and "postgres" in containers
    # The front proxied the metrics requests with its front-proxy certificate, and they were served.
    assert any(p.startswith("/apis/metrics.k8s.io/v1beta1/nodes") and s == 200 for p, s in k8s["front_obj"].proxied)


def test_custom_metric_for_an_hpa(k8s):
    body = _raw(k8s["front"], HPA_PATH + "?labelSelector=app%3Dweb")
    assert body["kind"] == "MetricValueList" and body["apiVersion"] == "custom.metrics.k8s.io/v1beta2"
    got = {i["describedObject"]["name"]: _quantity(i["value"]) for i in body["items"]}
    want = {p.name: p.requests_per_s for p in farm.PODS if p.labels.get("app") == "web"}
    assert set(got) == set(want)
    direct = _promql(k8s["querier"], 'sum(irate(http_requests_total{namespace="web"}[1m])) by (pod)')
    for name, value in got.items():
        # prometheus-adapter writes custom and external values in thousandths, truncated (8.0 - 2e-12 is
        # "7999m"): equal to the rule's PromQL to that precision.
        assert abs(value - direct[(("pod", name),)]) < 1e-3 + 1e-9, (name, value, direct)
        assert abs(value - want[name]) < 1e-3 + 1e-9
    item = body["items"][0]
    assert item["describedObject"]["kind"] == "Pod" and item["metric"]["name"] == "http_requests_per_second"

    # The same through the official Python client, as a controller written in Python reads it.
    conf = kubernetes.client.Configuration()
    conf.host = k8s["front_url"]
    conf.ssl_ca_cert = str(k8s["ca"])
    conf.api_key = {"authorization": f"Bearer {TOKEN}"}
    conf.safe_chars_for_path_param = "/*"  # the HPA's shape: object "*" and the metric in one path parameter
    with kubernetes.client.ApiClient(conf) as client:
        data = kubernetes.client.CustomObjectsApi(client).list_namespaced_custom_object(
            "custom.metrics.k8s.io", "v1beta2", "web", "pods/*/http_requests_per_second", label_selector="app=web")
    again = {i["describedObject"]["name"]: _quantity(i["value"]) for i in data["items"]}
    assert again.keys() == got.keys()
    assert all(abs(again[n] - want[n]) < 1e-3 + 1e-9 for n in again), (again, want)  # thousandths, truncated


def test_external_metric(k8s):
    body = _raw(k8s["front"], EXTERNAL_PATH + "?labelSelector=queue%3Dorders")
    assert body["kind"] == "ExternalMetricValueList"
    assert [(_quantity(i["value"]), i["metricName"]) for i in body["items"]] == [
        (farm.QUEUES["orders"], "queue_messages_ready")]
    everything = _raw(k8s["front"], EXTERNAL_PATH)
    assert sum(_quantity(i["value"]) for i in everything["items"]) == sum(farm.QUEUES.values())
    conf = kubernetes.client.Configuration()
    conf.host = k8s["front_url"]
    conf.ssl_ca_cert = str(k8s["ca"])
    conf.api_key = {"authorization": f"Bearer {TOKEN}"}
    with kubernetes.client.ApiClient(conf) as client:
        data = kubernetes.client.CustomObjectsApi(client).list_namespaced_custom_object(
            "external.metrics.k8s.io", "v1beta1", "batch", "queue_messages_ready", label_selector="queue=orders")
    assert [_quantity(i["value"]) for i in data["items"]] == [farm.QUEUES["orders"]]


def test_discovery_is_what_the_aggregator_checks(k8s):
    for group, versions in (("metrics.k8s.io", ["v1beta1"]), ("custom.metrics.k8s.io", ["v1beta2", "v1beta1"]),
                            ("external.metrics.k8s.io", ["v1beta1"])):
        for v in versions:
            doc = _raw(k8s["direct"], f"/apis/{group}/{v}")
            assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == f"{group}/{v}", doc
    names = {r["name"] for r in _raw(k8s["direct"], "/apis/metrics.k8s.io/v1beta1")["resources"]}
    assert {"nodes", "pods"} <= names
    custom = {r["name"] for r in _raw(k8s["direct"], "/apis/custom.metrics.k8s.io/v1beta2")["resources"]}
    assert "pods/http_requests_per_second" in custom, custom

