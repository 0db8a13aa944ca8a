"""The Kubernetes metrics APIs' HTTPS listener (``shardmon.k8sapi.service``) with real TLS, read by
Debian's kubectl (a kubeconfig and client certificate made here), the official Python ``kubernetes``
client and a front proxy's certificate, and ``kubectl top node``/``top pod`` through a test-only front
that proxies ``/apis`` as the aggregator does; all over a test double of the provider (the data side is
tested over real shards elsewhere)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from shardmon.model.config import Config
from tests.k8sapi_support import FixedProvider, ServedAPI, make_pki

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (apt-get install kubectl)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("k8sapi")
    pki = make_pki(tmp / "pki")
    (tmp / "tokens.csv").write_text('hpa-token,system:serviceaccount:kube-system:hpa,uid-hpa,"system:serviceaccounts"\n')
    config = Config.model_validate({"kubernetes_metrics": {
        "tls_cert_file": pki.path("server.crt"), "tls_private_key_file": pki.path("server.key"),
        "client_ca_file": pki.path("ca.crt"), "requestheader_client_ca_file": pki.path("front-proxy-ca.crt"),
        "requestheader_allowed_names": ["front-proxy-client"], "token_auth_file": str(tmp / "tokens.csv")}})
    with ServedAPI(config, FixedProvider()) as api:
        yield api, pki, tmp


def kubeconfig(path: Path, server: str, pki, user: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": pki.path("ca.crt")}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}]}))
    return path


def kubectl(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(cfg), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def admin_kubeconfig(served) -> Path:
    api, pki, tmp = served
    return kubeconfig(tmp / "admin.kubeconfig", api.url, pki,
                      {"client-certificate": pki.path("admin.crt"), "client-key": pki.path("admin.key")})


def test_kubectl_reads_node_metrics_with_a_client_certificate(served):
    r = kubectl(admin_kubeconfig(served), "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "NodeMetricsList" and doc["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert [(i["metadata"]["name"], i["usage"]) for i in doc["items"]] == [
        ("node-a", {"cpu": "123456789n", "memory": "1264Mi"}), ("node-b", {"cpu": "1500m", "memory": "3Gi"})]
    r = kubectl(admin_kubeconfig(served), "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods/web-2")
    assert r.returncode == 0 and json.loads(r.stdout)["containers"] == [
        {"name": "app", "usage": {"cpu": "500m", "memory": "80Mi"}}]


def test_kubectl_shows_the_404_and_400_statuses(served):
    cfg = admin_kubeconfig(served)
    r = kubectl(cfg, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/web/pods/nope")
    assert r.returncode != 0
    assert 'Error from server (NotFound): podmetrics.metrics.k8s.io "web/nope" not found' in r.stderr
    r = kubectl(cfg, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%20in%20a")
    assert r.returncode != 0 and "Error from server (BadRequest): unable to parse requirement" in r.stderr


def test_kubectl_without_credentials_is_unauthorized(served):
    # kubectl prompts for a user name when its kubeconfig names no credentials at all; basic-auth ones are
    # none to a Kubernetes API server (kube-apiserver dropped them), so they make kubectl send nothing usable.
    api, pki, tmp = served
    cfg = kubeconfig(tmp / "nobody.kubeconfig", api.url, pki, {"username": "nobody", "password": "x"})
    r = kubectl(cfg, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert r.returncode != 0 and "error: You must be logged in to the server (Unauthorized)" in r.stderr
    status, doc = _https_get(api, pki, "/apis/metrics.k8s.io/v1beta1/nodes", None, {})
    assert status == 401 and doc["reason"] == "Unauthorized" and doc["code"] == 401
    r = kubectl(cfg, "get", "--raw", "/healthz")  # health checks need no credentials, as Metrics Server's
    assert r.returncode == 0 and r.stdout.strip() == "ok"


def test_kubectl_with_a_bearer_token_reads_custom_and_external_metrics(served):
    api, pki, tmp = served
    cfg = kubeconfig(tmp / "hpa.kubeconfig", api.url, pki, {"token": "hpa-token"})
    r = kubectl(cfg, "get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/*/"
                "http_requests_per_second?labelSelector=app%3Dweb")
    assert r.returncode == 0, r.stderr
    assert [i["value"] for i in json.loads(r.stdout)["items"]] == ["1500m", "2250m"]
    r = kubectl(cfg, "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/web/queue_messages_ready")
    assert r.returncode == 0 and {i["metricLabels"]["queue"]: i["value"] for i in json.loads(r.stdout)["items"]} == {
        "tasks": "12", "mail": "3"}
    wrong = kubeconfig(tmp / "wrong.kubeconfig", api.url, pki, {"token": "not-a-token"})
    assert "Unauthorized" in kubectl(wrong, "get", "--raw", "/apis").stderr


def test_the_official_python_client_reads_node_metrics(served):
    from kubernetes import client
    from kubernetes import config as kube_config

    kube_config.load_kube_config(config_file=str(admin_kubeconfig(served)))
    api = client.CustomObjectsApi()
    nodes = api.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", label_selector="zone=a")
    assert nodes["kind"] == "NodeMetricsList" and [n["metadata"]["name"] for n in nodes["items"]] == ["node-a"]
    pods = api.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "web", "pods")
    assert [p["metadata"]["name"] for p in pods["items"]] == ["web-1", "web-2"]
    with pytest.raises(client.ApiException) as info:
        api.get_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", "nope")
    assert info.value.status == 404 and json.loads(info.value.body)["reason"] == "NotFound"
    # The HPA's request shape: the object name "*" and the metric as one path parameter.
    api.api_client.configuration.safe_chars_for_path_param = "/*"
    values = api.get_namespaced_custom_object("custom.metrics.k8s.io", "v1beta2", "web", "pods",
                                              "*/http_requests_per_second")
    assert values["kind"] == "MetricValueList"
    assert [(v["describedObject"]["name"], v["value"]) for v in values["items"]] == [("web-1", "1500m"),
                                                                                   ("web-2", "2250m")]


def _https_get(api, pki, path: str, cert: str | None, headers: dict[str, str]):
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if cert:
        ctx.load_cert_chain(pki.path(f"{cert}.crt"), pki.path(f"{cert}.key"))
    req = urllib.request.Request(api.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_front_proxy_certificate_and_its_headers(served):
    api, pki, _ = served
    path = "/apis/metrics.k8s.io/v1beta1/nodes"
    status, doc = _https_get(api, pki, path, "front-proxy-client", {"X-Remote-User": "system:kube-controller-manager"})
    assert status == 200 and doc["kind"] == "NodeMetricsList"
    # The same headers from a client without the front proxy's certificate are ignored.
    status, doc = _https_get(api, pki, path, None, {"X-Remote-User": "system:kube-controller-manager"})
    assert status == 401 and doc["reason"] == "Unauthorized"
    # A front-proxy certificate with a Common Name not allowed.
    status, _ = _https_get(api, pki, path, "other-proxy", {"X-Remote-User": "x"})
    assert status == 401


def test_a_certificate_of_an_unknown_ca_fails_the_handshake(served):
    api, pki, _ = served
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    ctx.load_cert_chain(pki.path("rogue.crt"), pki.path("rogue.key"))
    host, port = api.address.rsplit(":", 1)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /apis HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed")


class Front:
    """A test-only stand-in for kube-apiserver in front of the service: it answers ``/api`` and
    ``/api/v1`` nodes and pods itself, and proxies ``/apis/...`` to the service as the aggregator does,
    with the front-proxy client certificate and the caller in ``X-Remote-User``/``X-Remote-Group``."""

    def __init__(self, api, pki) -> None:
        import asyncio
        import threading

        import aiohttp
        from aiohttp import web

        self.pki, self.api = pki, api
        provider = FixedProvider()

        async def api_versions(request):
            return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})

        async def node_list(request):
            return web.json_response({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": n.name, "labels": n.labels},
                 "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}, "capacity": {"cpu": "4", "memory": "8Gi"}}}
                for n in provider.node_usage]})

        async def pod_list(request):
            ns = request.match_info["namespace"]
            return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": p.name, "namespace": p.namespace, "labels": p.labels}}
                for p in provider.pod_usage if p.namespace == ns]})

        async def proxy(request):
            ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
            ctx.load_cert_chain(pki.path("front-proxy-client.crt"), pki.path("front-proxy-client.key"))
            headers = {"X-Remote-User": "kubernetes-admin", "X-Remote-Group": "system:masters",
                       "Accept": request.headers.get("Accept", "application/json")}
            async with aiohttp.ClientSession() as s:
                async with s.get(api.url + request.path_qs, ssl=ctx, headers=headers) as resp:
                    return web.Response(body=await resp.read(), status=resp.status,
                                        content_type=resp.content_type)

        app = web.Application()
        app.router.add_get("/api", api_versions)
        app.router.add_get("/api/v1/nodes", node_list)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", pod_list)
        app.router.add_get("/apis{rest:.*}", proxy)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(pki.path("server.crt"), pki.path("server.key"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start():
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
            await site.start()
            return runner

        self.runner = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        host, port = self.runner.addresses[0][:2]
        self.url = f"https://{host}:{port}"

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_kubectl_top_through_a_front_that_proxies_as_the_aggregator(served):
    api, pki, tmp = served
    front = Front(api, pki)
    try:
        cfg = kubeconfig(tmp / "front.kubeconfig", front.url, pki,
                         {"client-certificate": pki.path("admin.crt"), "client-key": pki.path("admin.key")})
        r = kubectl(cfg, "top", "node")
        assert r.returncode == 0, r.stderr
        rows = [line.split() for line in r.stdout.splitlines()]
        assert rows[0][:2] == ["NAME", "CPU(cores)"]
        # kubectl rounds nanocores up to millicores (Quantity.MilliValue): 123456789n is 124m.
        assert [row[:2] for row in rows[1:]] == [["node-a", "124m"], ["node-b", "1500m"]]
        assert [row[2:] for row in rows[1:]] == [["3%", "1264Mi", "15%"], ["37%", "3072Mi", "37%"]]  # of 4, 8Gi
        r = kubectl(cfg, "top", "pod", "-n", "web")
        assert r.returncode == 0, r.stderr
        assert [line.split() for line in r.stdout.splitlines()[1:]] == [["web-1", "251m", "74Mi"],
                                                                         ["web-2", "500m", "80Mi"]]
    finally:
        front.close()
