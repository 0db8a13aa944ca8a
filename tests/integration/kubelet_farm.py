"""A small Kubernetes cluster's metrics as its kubelets expose them, for the Kubernetes metrics API tests.

Three nodes, twenty pods in three namespaces. Each node's kubelet is one HTTP server (a thread of its own
loop) serving ``/metrics/resource`` and ``/metrics/cadvisor`` shaped as a current kubelet (1.29+) writes
them: the resource endpoint's ``[STABLE]`` families with explicit millisecond timestamps and labels
``container``/``namespace``/``pod``; cAdvisor's families with its ``id``/``image``/``name`` labels, the
pod-level and root (``id="/"``) cgroups, ``cpu="total"``. Pods' own metrics (``http_requests_total`` of the
web pods) are served at ``/pods/<ns>/<pod>/metrics`` and a queue exporter's ``queue_messages_ready`` at
``/queue/metrics``: scrape targets with the ``namespace``/``pod`` target labels Kubernetes service
discovery would give them.

Usage is known exactly: every container uses a fixed number of millicores (its CPU counter grows
linearly with the sample's timestamp) and a fixed working set in MiB, so ``kubectl top`` and the resource
metrics API have exact expected values. The node's own usage is its containers' plus a fixed system share.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

MiB = 1024 * 1024
# The counters' origin (s): a counter is base + rate * (t - T0). An hour before the farm's import keeps the
# counters small, so a rate over one second is exact to far below a nanocore.
# Elapsed time is taken from integer milliseconds: a float Unix time (~1.8e9 s) resolves only 0.24 us.
T0_MS = (int(time.time()) - 3600) * 1000
T0 = T0_MS / 1000.0


@dataclass(frozen=True)
class Container:
    name: str
    millicores: int
    memory_mib: int
    image: str


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    containers: tuple[Container, ...]
    uid: str
    requests_per_s: float = 0.0  # http_requests_total's rate, for the web pods

    @property
    def millicores(self) -> int:
        return sum(c.millicores for c in self.containers)

    @property
    def memory_mib(self) -> int:
        return sum(c.memory_mib for c in self.containers)


@dataclass(frozen=True)
class Node:
    name: str
    system_millicores: int
    system_memory_mib: int
    cpu_cores: int = 4
    memory_gib: int = 16
    labels: dict[str, str] = field(default_factory=dict)


NODES = (Node("node-a", 120, 900), Node("node-b", 95, 850), Node("node-c", 140, 1000))


def _pods() -> tuple[Pod, ...]:
    spec = [
        # namespace, name, node, labels, [(container, millicores, MiB, image)], requests/s
        ("web", "frontend-7d9f8b6c5-abcde", "node-a", {"app": "web", "tier": "frontend"},
         [("nginx", 250, 64, "nginx:1.25"), ("envoy", 40, 48, "envoyproxy/envoy:v1.28")], 12.5),
        ("web", "frontend-7d9f8b6c5-fghij", "node-b", {"app": "web", "tier": "frontend"},
         [("nginx", 180, 60, "nginx:1.25"), ("envoy", 35, 46, "envoyproxy/envoy:v1.28")], 8.0),
        ("web", "frontend-7d9f8b6c5-klmno", "node-c", {"app": "web", "tier": "frontend"},
         [("nginx", 210, 62, "nginx:1.25"), ("envoy", 30, 45, "envoyproxy/envoy:v1.28")], 10.0),
        ("web", "api-5c8d7f9b4-pqrst", "node-a", {"app": "api", "tier": "backend"},
         [("api", 420, 256, "registry.example/api:2.3.1")], 0),
        ("web", "api-5c8d7f9b4-uvwxy", "node-b", {"app": "api", "tier": "backend"},
         [("api", 390, 240, "registry.example/api:2.3.1")], 0),
        ("web", "redis-0", "node-c", {"app": "redis", "tier": "cache"},
         [("redis", 60, 128, "redis:7.2")], 0),
        ("web", "postgres-0", "node-a", {"app": "postgres", "tier": "db"},
         [("postgres", 300, 512, "postgres:16"), ("exporter", 10, 24, "postgres-exporter:0.15")], 0),
        ("batch", "worker-6f7b9c8d5-a1b2c", "node-b", {"app": "worker"},
         [("worker", 800, 384, "registry.example/worker:1.9")], 0),
        ("batch", "worker-6f7b9c8d5-d3e4f", "node-c", {"app": "worker"},
         [("worker", 760, 370, "registry.example/worker:1.9")], 0),
        ("batch", "worker-6f7b9c8d5-g5h6i", "node-a", {"app": "worker"},
         [("worker", 820, 390, "registry.example/worker:1.9")], 0),
        ("batch", "report-28512340-x7k2p", "node-b", {"app": "report", "job-name": "report-28512340"},
         [("report", 150, 200, "registry.example/report:0.4")], 0),
        ("batch", "rabbitmq-0", "node-c", {"app": "rabbitmq"},
         [("rabbitmq", 110, 300, "rabbitmq:3.12")], 0),
        ("monitoring", "node-exporter-4xkq9", "node-a", {"app": "node-exporter"},
         [("node-exporter", 15, 20, "prom/node-exporter:v1.7.0")], 0),
        ("monitoring", "node-exporter-8mzp2", "node-b", {"app": "node-exporter"},
         [("node-exporter", 14, 19, "prom/node-exporter:v1.7.0")], 0),
        ("monitoring", "node-exporter-t6wn5", "node-c", {"app": "node-exporter"},
         [("node-exporter", 16, 21, "prom/node-exporter:v1.7.0")], 0),
        ("monitoring", "kube-state-metrics-6d5f7c9b8-r4s5t", "node-a", {"app": "kube-state-metrics"},
         [("kube-state-metrics", 20, 40, "kube-state-metrics:v2.10.1")], 0),
        ("monitoring", "grafana-7b8c9d6f5-u7v8w", "node-b", {"app": "grafana"},
         [("grafana", 30, 110, "grafana/grafana:10.2.3")], 0),
        ("monitoring", "alertmanager-0", "node-c", {"app": "alertmanager"},
         [("alertmanager", 5, 30, "prom/alertmanager:v0.26.0"), ("config-reloader", 1, 8, "config-reloader:v0.70")], 0),
        ("monitoring", "shardmon-k8s-api-5f6d7c8b9-x9y0z", "node-a", {"app": "shardmon-k8s-api"},
         [("k8s-api", 45, 90, "shardmon:dev")], 0),
        ("monitoring", "shardmon-querier-6c7d8e9f0-a0b1c", "node-b", {"app": "shardmon-querier"},
         [("querier", 160, 210, "shardmon:dev")], 0),
    ]
    pods = []
    for i, (ns, name, node, labels, containers, rps) in enumerate(spec):
        uid = f"{i:08x}-1f2e-4d3c-8b7a-{i * 7919:012x}"
        pods.append(Pod(ns, name, node, labels, tuple(Container(c, m, mib, img) for c, m, mib, img in containers),
                        uid, rps))
    return tuple(pods)


PODS = _pods()
NAMESPACES = tuple(sorted({p.namespace for p in PODS}))
QUEUES = {"orders": 42.0, "emails": 7.0}  # queue_messages_ready{queue=...} in namespace batch


def node_millicores(node: str) -> int:
    n = next(x for x in NODES if x.name == node)
    return n.system_millicores + sum(p.millicores for p in PODS if p.node == node)


def node_memory_mib(node: str) -> int:
    n = next(x for x in NODES if x.name == node)
    return n.system_memory_mib + sum(p.memory_mib for p in PODS if p.node == node)


def _fmt(v: float) -> str:
    """``v`` as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it (the kubelet's and cAdvisor's
    client_golang): the shortest digits, in exponent form when the decimal exponent is < -4 or >= 6."""
    d = Decimal(repr(float(v)))
    sign, digits, exp = d.normalize().as_tuple()
    if not any(digits):
        return "0"
    mant = "".join(map(str, digits))
    e = exp + len(mant) - 1  # the decimal exponent of the first digit
    if e < -4 or e >= 6:
        body = mant[0] + ("." + mant[1:] if len(mant) > 1 else "")
        return f"{'-' if sign else ''}{body}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    return f"{'-' if sign else ''}{format(d.normalize().copy_abs(), 'f')}"


def _cpu_counter(millicores: int, ms: int, base: float) -> float:
    return base + millicores * (ms - T0_MS) / 1_000_000.0


def resource_body(node: Node, now_s: float) -> str:
    """``/metrics/resource`` of ``node``'s kubelet at ``now_s``."""
    ms = int(now_s * 1000)
    pods = sorted((p for p in PODS if p.node == node.name), key=lambda p: (p.namespace, p.name))
    out = ["# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in "
           "core-seconds", "# TYPE container_cpu_usage_seconds_total counter"]
    for p in pods:
        for c in p.containers:
            out.append(f'container_cpu_usage_seconds_total{{container="{c.name}",namespace="{p.namespace}",'
                       f'pod="{p.name}"}} {_fmt(_cpu_counter(c.millicores, ms, 100.0))} {ms}')
    out += ["# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes",
            "# TYPE container_memory_working_set_bytes gauge"]
    for p in pods:
        for c in p.containers:
            out.append(f'container_memory_working_set_bytes{{container="{c.name}",namespace="{p.namespace}",'
                       f'pod="{p.name}"}} {_fmt(c.memory_mib * MiB)} {ms}')
    out += ["# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds",
            "# TYPE container_start_time_seconds gauge"]
    for p in pods:
        for c in p.containers:
            out.append(f'container_start_time_seconds{{container="{c.name}",namespace="{p.namespace}",'
                       f'pod="{p.name}"}} {_fmt(T0)} {int(T0 * 1000)}')
    out += ["# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
            "# TYPE node_cpu_usage_seconds_total counter",
            f"node_cpu_usage_seconds_total {_fmt(_cpu_counter(node_millicores(node.name), ms, 5000.0))} {ms}",
            "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes",
            "# TYPE node_memory_working_set_bytes gauge",
            f"node_memory_working_set_bytes {_fmt(node_memory_mib(node.name) * MiB)} {ms}",
            "# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            "# TYPE pod_cpu_usage_seconds_total counter"]
    for p in pods:
        out.append(f'pod_cpu_usage_seconds_total{{namespace="{p.namespace}",pod="{p.name}"}} '
                   f'{_fmt(_cpu_counter(p.millicores, ms, 100.0 * len(p.containers)))} {ms}')
    out += ["# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes",
            "# TYPE pod_memory_working_set_bytes gauge"]
    for p in pods:
        out.append(f'pod_memory_working_set_bytes{{namespace="{p.namespace}",pod="{p.name}"}} '
                   f'{_fmt(p.memory_mib * MiB)} {ms}')
    out += ["# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, "
            "0 otherwise", "# TYPE resource_scrape_error gauge", "resource_scrape_error 0", ""]
    return "\n".join(out)


def cadvisor_body(node: Node, now_s: float) -> str:
    """``/metrics/cadvisor`` of ``node``'s kubelet at ``now_s`` (the families the resource rules and the
    usual dashboards read; cAdvisor writes many more)."""
    ms = int(now_s * 1000)
    pods = sorted((p for p in PODS if p.node == node.name), key=lambda p: (p.namespace, p.name))
    cgroup = lambda p: f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{p.uid.replace('-', '_')}.slice"  # noqa: E731
    rows: list[tuple[dict[str, str], int, int]] = [  # labels, millicores, MiB
        ({"container": "", "id": "/", "image": "", "name": "", "namespace": "", "pod": ""},
         node_millicores(node.name), node_memory_mib(node.name))]
    for p in pods:
        rows.append(({"container": "", "id": cgroup(p), "image": "", "name": "", "namespace": p.namespace,
                      "pod": p.name}, p.millicores, p.memory_mib))
        for c in p.containers:
            cid = hashlib.sha256(f"{p.uid}/{c.name}".encode()).hexdigest()
            rows.append(({"container": c.name, "id": f"{cgroup(p)}/cri-containerd-{cid}.scope",
                          "image": c.image, "name": cid, "namespace": p.namespace, "pod": p.name},
                         c.millicores, c.memory_mib))

    def lbl(d: dict[str, str], **extra: str) -> str:
        items = sorted({**d, **extra}.items())
        return "{" + ",".join(f'{k}="{v}"' for k, v in items) + "}"

    out = ["# HELP cadvisor_version_info A metric with a constant '1' value labeled by kernel version, OS version, "
           "docker version, cadvisor version & cadvisor revision.", "# TYPE cadvisor_version_info gauge",
           'cadvisor_version_info{cadvisorRevision="",cadvisorVersion="",dockerVersion="",kernelVersion='
           '"6.1.0-18-amd64",osVersion="Debian GNU/Linux 12 (bookworm)"} 1',
           "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.",
           "# TYPE container_cpu_usage_seconds_total counter"]
    for labels, mc, _ in rows:
        out.append(f"container_cpu_usage_seconds_total{lbl(labels, cpu='total')} "
                   f"{_fmt(_cpu_counter(mc, ms, 200.0))} {ms}")
    out += ["# HELP container_memory_working_set_bytes Current working set in bytes.",
            "# TYPE container_memory_working_set_bytes gauge"]
    for labels, _, mib in rows:
        out.append(f"container_memory_working_set_bytes{lbl(labels)} {_fmt(mib * MiB)} {ms}")
    out += ["# HELP container_last_seen Last time a container was seen by the exporter",
            "# TYPE container_last_seen gauge"]
    for labels, _, _ in rows:
        out.append(f"container_last_seen{lbl(labels)} {_fmt(float(ms // 1000))} {ms}")
    out += ["# HELP container_network_receive_bytes_total Cumulative count of bytes received",
            "# TYPE container_network_receive_bytes_total counter"]
    for labels, mc, _ in rows:
        if labels["container"] == "" and labels["pod"]:
            out.append(f"container_network_receive_bytes_total{lbl(labels, interface='eth0')} "
                       f"{_fmt(_cpu_counter(mc * 1000, ms, 1e6))} {ms}")
    out += ["# HELP machine_cpu_cores Number of logical CPU cores.", "# TYPE machine_cpu_cores gauge",
            f'machine_cpu_cores{{boot_id="{node.name}-boot",machine_id="{node.name}-machine",system_uuid='
            f'"{node.name}-uuid"}} {node.cpu_cores}',
            "# HELP machine_memory_bytes Amount of memory installed on the machine.",
            "# TYPE machine_memory_bytes gauge",
            f'machine_memory_bytes{{boot_id="{node.name}-boot",machine_id="{node.name}-machine",system_uuid='
            f'"{node.name}-uuid"}} {_fmt(node.memory_gib * 1024 * MiB)}', ""]
    return "\n".join(out)


def pod_body(pod: Pod, now_s: float) -> str:
    """A web pod's own ``/metrics``: ``http_requests_total`` growing at its fixed rate, with the sample's
    timestamp (so a rate over it is exact, whenever the scrape runs)."""
    ms = int(now_s * 1000)
    return ("# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200",method="GET"}} {_fmt(pod.requests_per_s * (ms - T0_MS) / 1000)} {ms}\n')


def queue_body() -> str:
    return "# HELP queue_messages_ready Messages ready.\n# TYPE queue_messages_ready gauge\n" + "".join(
        f'queue_messages_ready{{queue="{q}"}} {_fmt(v)}\n' for q, v in QUEUES.items())


class KubeletFarm:
    """The kubelets of :data:`NODES` (one HTTP server each) and one server for the pods' own metrics and
    the queue exporter, in a background thread; ``start()``/``stop()``."""

    def __init__(self) -> None:
        self._socks = {}
        for name in [n.name for n in NODES] + ["apps"]:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self._socks[name] = sock
        self.ports = {name: s.getsockname()[1] for name, s in self._socks.items()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def scrape_configs(self, interval: str = "1s") -> list[dict]:
        """The scrape jobs a Kubernetes user has for these (static here, with the labels Kubernetes service
        discovery and the usual relabeling give): ``kubelet`` (/metrics/resource) and ``cadvisor``
        (/metrics/cadvisor, its container CPU and memory series dropped as kube-prometheus does not; here
        they would double the resource endpoint's under the adapter's default rules), the web pods and the
        queue exporter."""
        node_targets = [{"targets": [self.address(n.name)], "labels": {"node": n.name}} for n in NODES]
        pods = [{"targets": [self.address("apps")],
                 "labels": {"namespace": p.namespace, "pod": p.name, "__metrics_path__":
                            f"/pods/{p.namespace}/{p.name}/metrics"}}
                for p in PODS if p.requests_per_s]
        return [
            {"job_name": "kubelet", "metrics_path": "/metrics/resource", "scrape_interval": interval,
             "static_configs": node_targets},
            {"job_name": "cadvisor", "metrics_path": "/metrics/cadvisor", "scrape_interval": interval,
             "static_configs": node_targets,
             "metric_relabel_configs": [{"source_labels": ["__name__"], "action": "drop",
                                         "regex": "container_cpu_usage_seconds_total|"
                                                  "container_memory_working_set_bytes"}]},
            {"job_name": "web-pods", "scrape_interval": interval, "static_configs": pods},
            {"job_name": "queue", "metrics_path": "/queue/metrics", "scrape_interval": interval,
             "static_configs": [{"targets": [self.address("apps")], "labels": {"namespace": "batch"}}]},
        ]

    async def _start(self) -> None:
        for name, sock in self._socks.items():
            app = web.Application()
            if name == "apps":
                async def pod_metrics(request: web.Request) -> web.Response:
                    ns, pod = request.match_info["ns"], request.match_info["pod"]
                    p = next((x for x in PODS if x.namespace == ns and x.name == pod), None)
                    if p is None:
                        raise web.HTTPNotFound()
                    return web.Response(text=pod_body(p, time.time()), content_type="text/plain")

                async def queue(request: web.Request) -> web.Response:
                    return web.Response(text=queue_body(), content_type="text/plain")

                app.router.add_get("/pods/{ns}/{pod}/metrics", pod_metrics)
                app.router.add_get("/queue/metrics", queue)
            else:
                node = next(n for n in NODES if n.name == name)

                async def resource(request: web.Request, node: Node = node) -> web.Response:
                    return web.Response(text=resource_body(node, time.time()), content_type="text/plain")

                async def cadvisor(request: web.Request, node: Node = node) -> web.Response:
                    return web.Response(text=cadvisor_body(node, time.time()), content_type="text/plain")

                app.router.add_get("/metrics/resource", resource)
                app.router.add_get("/metrics/cadvisor", cadvisor)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)

    def start(self) -> KubeletFarm:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            for r in self._runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def node_object(node: Node) -> dict:
    """The node as the API server lists it (what ``kubectl top node`` reads: allocatable)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "uid": f"uid-{node.name}", "creationTimestamp": "2026-11-01T00:00:00Z",
                         "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", **node.labels}},
            "status": {"capacity": {"cpu": str(node.cpu_cores), "memory": f"{node.memory_gib * 1024 * 1024}Ki",
                                    "pods": "110"},
                       "allocatable": {"cpu": str(node.cpu_cores), "memory": f"{node.memory_gib * 1024 * 1024}Ki",
                                       "pods": "110"},
                       "addresses": [{"type": "Hostname", "address": node.name}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_object(pod: Pod) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "labels": dict(pod.labels),
                         "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"nodeName": pod.node, "containers": [{"name": c.name, "image": c.image}
                                                            for c in pod.containers]},
            "status": {"phase": "Running", "podIP": "10.244.0.1"}}
