"""Service discovery end to end: a DiscoveryManager driven by a fake Kubernetes API server (list +
watch), a real HTTP SD endpoint and real files, observing targets added, changed and removed; then
the ways to reach the API server (kubeconfig with a bearer token, in-cluster service account over
TLS, api_server with tls_config) and selectors. No Ray or Redis: each test takes about a second."""

import asyncio
import copy
import json
import shutil
import ssl
import subprocess

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shardmon.ingest.discovery import TargetGroup
from shardmon.ingest.discovery.manager import DiscoveryManager
from shardmon.model.config import parse_config
from tests.integration.fake_kube import FakeKube

M = "__meta_kubernetes_"
FAST_KUBE = {"backoff_min": 0.05, "backoff_max": 0.2}


def node(name, ip, labels=None):
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels or {"kubernetes.io/hostname": name}},
        "spec": {"providerID": f"kind://docker/kind/{name}"},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}},
    }


def pod(name, ip, labels, ns="shop", node_name="worker-1"):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels,
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5f7d", "controller": True}]},
        "spec": {"nodeName": node_name, "containers": [
            {"name": "web", "image": "nginx:1.25", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                                             {"name": "metrics", "containerPort": 9113,
                                                              "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.11",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "web", "containerID": f"containerd://{name}"}]},
    }


SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
}


def endpoints(ips):
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": ip, "nodeName": "worker-1",
                                    "targetRef": {"kind": "Pod", "namespace": "shop", "name": name}}
                                   for name, ip in ips],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    }


def endpointslice(ips):
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "worker-1",
                       "targetRef": {"kind": "Pod", "namespace": "shop", "name": name}} for name, ip in ips],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


class Recorder:
    def __init__(self):
        self.state: dict[str, list[TargetGroup]] = {}
        self.calls = 0

    def __call__(self, job, groups):
        self.state[job] = groups
        self.calls += 1

    def targets(self, job):
        """The full label sets of a job's targets."""
        return [ls for g in self.state.get(job, []) for ls in g.label_sets()]

    def addresses(self, job):
        return sorted(t["__address__"] for t in self.targets(job))


async def until(pred, what="", timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(name):
    return REGISTRY.get_sample_value(name) or 0.0


class HTTPSDEndpoint:
    def __init__(self):
        self.groups = []
        self.status = 200

    async def handle(self, request):
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        return web.json_response(self.groups)

    async def start(self):
        app = web.Application()
        app.router.add_get("/sd", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/sd"


def test_discovery_manager_against_kubernetes_http_and_files(tmp_path):
    async def main():
        kube = FakeKube()
        kube.add("node", node("worker-1", "10.0.0.11"))
        kube.add("service", SERVICE)
        api = await kube.start()
        http_sd = HTTPSDEndpoint()
        http_sd.groups = [{"targets": ["10.1.0.1:9100"], "labels": {"rack": "r1"}}]
        sd_url = await http_sd.start()
        targets_file = tmp_path / "targets.json"
        targets_file.write_text(json.dumps([{"targets": ["10.2.0.1:9100", "10.2.0.2:9100"], "labels": {"env": "a"}}]))

        cfg = parse_config(f"""
scrape_configs:
- job_name: files
  file_sd_configs: [{{files: ['{tmp_path}/*.json', '{tmp_path}/*.yml']}}]
- job_name: http
  http_sd_configs: [{{url: '{sd_url}', refresh_interval: 50ms}}]
- job_name: nodes
  kubernetes_sd_configs: [{{role: node, api_server: '{api}'}}]
- job_name: pods
  kubernetes_sd_configs: [{{role: pod, api_server: '{api}', namespaces: {{names: [shop]}}}}]
- job_name: services
  kubernetes_sd_configs: [{{role: service, api_server: '{api}'}}]
- job_name: endpoints
  kubernetes_sd_configs: [{{role: endpoints, api_server: '{api}', namespaces: {{names: [shop]}}}}]
- job_name: slices
  kubernetes_sd_configs: [{{role: endpointslice, api_server: '{api}', namespaces: {{names: [shop]}}}}]
""")
        rec = Recorder()
        manager = DiscoveryManager(rec, update_interval=0.05, file_poll_interval=0.02, kubernetes_options=FAST_KUBE)
        try:
            await manager.apply_config(cfg.scrape_configs)

            # --- what exists at start -------------------------------------------------------------
            await until(lambda: rec.addresses("nodes") == ["10.0.0.11:10250"], "node")
            (n,) = rec.targets("nodes")
            assert n["instance"] == "worker-1" and n[M + "node_label_kubernetes_io_hostname"] == "worker-1"
            await until(lambda: rec.addresses("services") == ["web.shop.svc:80"], "service")
            await until(lambda: rec.addresses("files") == ["10.2.0.1:9100", "10.2.0.2:9100"], "file targets")
            assert rec.targets("files")[0]["__meta_filepath"] == str(targets_file)
            await until(lambda: rec.addresses("http") == ["10.1.0.1:9100"], "http targets")
            assert rec.targets("http")[0] == {"__address__": "10.1.0.1:9100", "rack": "r1", "__meta_url": sd_url}
            assert rec.state.get("pods", []) == []

            # --- Kubernetes: a pod added through the watch, its labels changed, then deleted ---------
            kube.add("pod", pod("web-1", "10.244.0.5", {"app": "web", "track": "stable"}))
            await until(lambda: rec.addresses("pods") == ["10.244.0.5:8080", "10.244.0.5:9113"], "pod added")
            t = rec.targets("pods")[0]
            assert t[M + "pod_name"] == "web-1" and t[M + "namespace"] == "shop"
            assert t[M + "pod_label_track"] == "stable" and t[M + "pod_controller_kind"] == "ReplicaSet"
            kube.modify("pod", pod("web-1", "10.244.0.5", {"app": "web", "track": "canary"}))
            await until(lambda: rec.targets("pods")[0].get(M + "pod_label_track") == "canary", "pod labels changed")
            # Endpoints and slices pick the pod and the service up.
            kube.add("endpoints", endpoints([("web-1", "10.244.0.5")]))
            kube.add("endpointslice", endpointslice([("web-1", "10.244.0.5")]))
            await until(lambda: "10.244.0.5:8080" in rec.addresses("endpoints"), "endpoints")
            await until(lambda: "10.244.0.5:8080" in rec.addresses("slices"), "endpointslice")
            for job in ("endpoints", "slices"):
                e = next(t for t in rec.targets(job) if t["__address__"] == "10.244.0.5:8080")
                assert e[M + "service_name"] == "web" and e[M + "service_label_app"] == "web"
                assert e[M + "pod_name"] == "web-1" and e[M + "pod_label_track"] == "canary"
                assert e[M + "pod_container_port_name"] == "http"
                assert rec.addresses(job) == ["10.244.0.5:8080", "10.244.0.5:9113"]  # + the other container port
            kube.delete("pod", "shop", "web-1")
            await until(lambda: rec.state["pods"] == [], "pod deleted")
            # The endpoints target no longer has a pod behind it (Prometheus drops the pod labels).
            await until(lambda: M + "pod_name" not in rec.targets("endpoints")[0], "endpoints without pod")

            # --- a compacted history (410 Gone) and a dropped watch: list again, miss nothing --------
            failures = _metric("shardmon_sd_kubernetes_failures_total")
            lists_before = kube.list_count("pod")
            kube.compact()
            kube.end_watches()  # the watch is resumed from its version, which is gone: 410, list again
            await until(lambda: kube.list_count("pod") > lists_before, "re-list after 410 Gone")
            kube.add("pod", pod("web-2", "10.244.0.6", {"app": "web"}))
            await until(lambda: rec.addresses("pods") == ["10.244.0.6:8080", "10.244.0.6:9113"], "pod after relist")
            assert _metric("shardmon_sd_kubernetes_failures_total") == failures  # 410 is routine, no failure
            lists_before = kube.list_count("pod")
            kube.drop_watches()
            kube.delete("pod", "shop", "web-2")  # while no watch is open: the re-list notices
            await until(lambda: rec.state["pods"] == [], "pod deleted during the drop")
            assert kube.list_count("pod") > lists_before
            assert _metric("shardmon_sd_kubernetes_failures_total") > failures  # a broken stream is one

            # --- HTTP SD: changed, then failing (the last groups stay), then back -------------------
            http_sd.groups = [{"targets": ["10.1.0.2:9100"]}, {"targets": ["10.1.0.3:9100"]}]
            await until(lambda: rec.addresses("http") == ["10.1.0.2:9100", "10.1.0.3:9100"], "http changed")
            failures = _metric("shardmon_sd_http_failures_total")
            http_sd.status = 500
            await until(lambda: _metric("shardmon_sd_http_failures_total") >= failures + 2, "http failures")
            assert rec.addresses("http") == ["10.1.0.2:9100", "10.1.0.3:9100"]
            http_sd.status, http_sd.groups = 200, []
            await until(lambda: rec.state["http"] == [], "http emptied")

            # --- files: a second file, a malformed change (kept), removal --------------------------
            yml = tmp_path / "more.yml"
            yml.write_text("- targets: ['10.3.0.1:9100']\n  labels: {env: b}\n")
            await until(lambda: "10.3.0.1:9100" in rec.addresses("files"), "yaml file added")
            errors = _metric("shardmon_sd_file_read_errors_total")
            yml.write_text("- targets: ['10.3.0.1:9100'\n")
            await until(lambda: _metric("shardmon_sd_file_read_errors_total") == errors + 1, "read error counted")
            assert "10.3.0.1:9100" in rec.addresses("files")
            targets_file.write_text(json.dumps([{"targets": ["10.2.0.9:9100"]}]))
            await until(lambda: "10.2.0.9:9100" in rec.addresses("files"), "json file changed")
            assert rec.addresses("files") == ["10.2.0.9:9100", "10.3.0.1:9100"]
            yml.unlink()
            targets_file.unlink()
            await until(lambda: rec.state["files"] == [], "files removed")
        finally:
            await manager.stop()
            await kube.stop()
            await http_sd.runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_kubeconfig_with_bearer_token(tmp_path):
    async def main():
        kube = FakeKube(token="s3cret-token")
        kube.add("node", node("worker-1", "10.0.0.11"))
        api = await kube.start()
        good, bad = tmp_path / "good.kubeconfig", tmp_path / "bad.kubeconfig"
        for path, token in ((good, "s3cret-token"), (bad, "wrong")):
            path.write_text(f"""
apiVersion: v1
kind: Config
current-context: test
clusters: [{{name: fake, cluster: {{server: '{api}'}}}}]
users: [{{name: me, user: {{token: {token}}}}}]
contexts: [{{name: test, context: {{cluster: fake, user: me}}}}]
""")
        cfg = parse_config(f"""
scrape_configs:
- job_name: good
  kubernetes_sd_configs: [{{role: node, kubeconfig_file: '{good}'}}]
- job_name: bad
  kubernetes_sd_configs: [{{role: node, kubeconfig_file: '{bad}'}}]
""")
        rec = Recorder()
        failures = _metric("shardmon_sd_kubernetes_failures_total")
        manager = DiscoveryManager(rec, update_interval=0.05, kubernetes_options=FAST_KUBE)
        try:
            await manager.apply_config(cfg.scrape_configs)
            await until(lambda: rec.addresses("good") == ["10.0.0.11:10250"], "node via kubeconfig")
            await until(lambda: kube.unauthorized >= 2, "refused requests with the wrong token")
            assert rec.state.get("bad", []) == []
            assert _metric("shardmon_sd_kubernetes_failures_total") >= failures + 2
            kube.add("node", node("worker-2", "10.0.0.12"))
            await until(lambda: rec.addresses("good") == ["10.0.0.11:10250", "10.0.0.12:10250"], "second node")
        finally:
            await manager.stop()
            await kube.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_selectors_are_sent_and_applied(tmp_path):
    async def main():
        kube = FakeKube()
        kube.add("pod", pod("web-1", "10.244.0.5", {"app": "web"}))
        kube.add("pod", pod("db-1", "10.244.0.9", {"app": "db"}))
        api = await kube.start()
        cfg = parse_config(f"""
scrape_configs:
- job_name: web
  kubernetes_sd_configs:
  - role: pod
    api_server: '{api}'
    selectors: [{{role: pod, label: app=web, field: metadata.namespace=shop}}]
""")
        rec = Recorder()
        manager = DiscoveryManager(rec, update_interval=0.05, kubernetes_options=FAST_KUBE)
        try:
            await manager.apply_config(cfg.scrape_configs)
            await until(lambda: rec.addresses("web") == ["10.244.0.5:8080", "10.244.0.5:9113"], "selected pod")
            kube.add("pod", pod("web-2", "10.244.0.6", {"app": "web"}))
            kube.add("pod", pod("db-2", "10.244.0.10", {"app": "db"}))
            await until(lambda: len(rec.addresses("web")) == 4, "second selected pod")
            assert all(t[M + "pod_label_app"] == "web" for t in rec.targets("web"))
            assert all(q.get("labelSelector") == "app=web" and q.get("fieldSelector") == "metadata.namespace=shop"
                       for _, q in kube.requests)
        finally:
            await manager.stop()
            await kube.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.fixture
def tls_files(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a test certificate")
    cert, key = tmp_path / "ca.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return cert, ctx


def test_in_cluster_service_account_over_tls(tmp_path, tls_files):
    cert, server_ctx = tls_files

    async def main():
        kube = FakeKube(token="sa-token-1", ssl_context=server_ctx)
        kube.add("pod", pod("mine", "10.244.1.1", {"app": "a"}, ns="monitoring"))
        kube.add("pod", pod("theirs", "10.244.2.1", {"app": "b"}, ns="shop"))
        api = await kube.start()
        port = api.rsplit(":", 1)[1]
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text("sa-token-1")
        (sa / "namespace").write_text("monitoring")
        shutil.copy(cert, sa / "ca.crt")
        cfg = parse_config("""
scrape_configs:
- job_name: own
  kubernetes_sd_configs: [{role: pod, namespaces: {own_namespace: true}}]
""")
        rec = Recorder()
        opts = {**FAST_KUBE, "sa_dir": str(sa),
                "env": {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}}
        manager = DiscoveryManager(rec, update_interval=0.05, kubernetes_options=opts)
        try:
            await manager.apply_config(cfg.scrape_configs)
            await until(lambda: rec.addresses("own") == ["10.244.1.1:8080", "10.244.1.1:9113"], "own namespace pod")
            assert all(path.startswith("/api/v1/namespaces/monitoring/") for path, _ in kube.requests)
            # The token is rotated: the next requests carry the new one.
            kube.token = "sa-token-2"
            (sa / "token").write_text("sa-token-2")
            kube.drop_watches()
            kube.add("pod", pod("mine-2", "10.244.1.2", {"app": "a"}, ns="monitoring"))
            await until(lambda: len(rec.addresses("own")) == 4, "pod after token rotation")
        finally:
            await manager.stop()
            await kube.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("tls", ["ca_file", "insecure_skip_verify", "none"])
def test_api_server_with_tls_config(tmp_path, tls_files, tls):
    cert, server_ctx = tls_files
    tls_config = {"ca_file": f"{{ca_file: '{cert}'}}", "insecure_skip_verify": "{insecure_skip_verify: true}",
                  "none": "{}"}[tls]

    async def main():
        kube = FakeKube(token="t0k", ssl_context=server_ctx)
        kube.add("node", node("worker-1", "10.0.0.11"))
        api = await kube.start()
        cfg = parse_config(f"""
scrape_configs:
- job_name: n
  kubernetes_sd_configs:
  - {{role: node, api_server: '{api}', authorization: {{credentials: t0k}}, tls_config: {tls_config}}}
""")
        rec = Recorder()
        manager = DiscoveryManager(rec, update_interval=0.05, kubernetes_options=FAST_KUBE)
        failures = _metric("shardmon_sd_kubernetes_failures_total")
        try:
            await manager.apply_config(cfg.scrape_configs)
            if tls == "none":  # the self-signed certificate is not trusted
                await until(lambda: _metric("shardmon_sd_kubernetes_failures_total") > failures, "TLS failure")
                assert rec.state.get("n", []) == [] and kube.requests == []
            else:
                await until(lambda: rec.addresses("n") == ["10.0.0.11:10250"], "node over TLS")
        finally:
            await manager.stop()
            await kube.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_discovery_survives_an_api_server_restart():
    """The API server goes away and comes back (empty, as after a restore): the watch fails, lists are
    retried with backoff, and what disappeared meanwhile is removed."""

    async def main():
        kube = FakeKube()
        kube.add("pod", pod("web-1", "10.244.0.5", {"app": "web"}))
        api = await kube.start()
        cfg = parse_config(f"scrape_configs:\n- job_name: p\n  kubernetes_sd_configs: [{{role: pod, api_server: '{api}'}}]\n")
        rec = Recorder()
        manager = DiscoveryManager(rec, update_interval=0.05, kubernetes_options=FAST_KUBE)
        try:
            await manager.apply_config(cfg.scrape_configs)
            await until(lambda: len(rec.addresses("p")) == 2, "pod")
            port = int(api.rsplit(":", 1)[1])
            await kube.stop()
            await asyncio.sleep(0.3)  # lists fail meanwhile
            kube2 = FakeKube()
            kube2.add("pod", copy.deepcopy(pod("web-3", "10.244.0.7", {"app": "web"})))
            app_runner_port = port
            kube2_site_started = False
            for _ in range(50):  # the port may need a moment to be free again
                try:
                    await _start_on_port(kube2, app_runner_port)
                    kube2_site_started = True
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            assert kube2_site_started
            await until(lambda: rec.addresses("p") == ["10.244.0.7:8080", "10.244.0.7:9113"], "relisted after restart")
            await kube2.stop()
        finally:
            await manager.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


async def _start_on_port(kube: FakeKube, port: int) -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", kube._handle)
    kube._runner = web.AppRunner(app, shutdown_timeout=0.5)
    await kube._runner.setup()
    try:
        await web.TCPSite(kube._runner, "127.0.0.1", port).start()
    except OSError:
        await kube._runner.cleanup()
        raise
    kube.url = f"http://127.0.0.1:{port}"
