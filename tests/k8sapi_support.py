"""Test support for the HTTP side of the Kubernetes metrics APIs (``shardmon.k8sapi.server``):

- :class:`FixedProvider`, a **test double of the provider seam** (``k8sapi/provider.py``) answering fixed
  values, for the HTTP layer's own tests only (routing, JSON shapes, quantities, errors, authentication).
  The real provider (prometheus-adapter's rules over the engine) is the data side's, tested there.
- :func:`make_pki`: a cluster CA and a front-proxy CA with their client certificates (CN the user,
  O the groups), as kubeadm lays them out, written as PEM files;
- :class:`ServedAPI`: ``shardmon.k8sapi.service.start`` on a free loopback port, on an event loop in a
  thread of its own, for tests that talk to it with kubectl or the ``kubernetes`` client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shardmon.k8sapi.provider import (
    ContainerUsage,
    CustomMetricInfo,
    ExternalMetricInfo,
    ExternalValue,
    MetricValue,
    NodeUsage,
    NotFoundError,
    ObjectReference,
    PodUsage,
)
from shardmon.k8sapi.selector import Selector
from shardmon.model.errors import QueryUnavailableError
from tests.tlsutil import _cert

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


class FixedProvider:
    """A test double of ``MetricsProvider`` with fixed values: 2 nodes, 3 pods in 2 namespaces, one custom
    pod metric and one external metric. ``down`` makes every call fail as a query with a shard down."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[tuple] = []
        self.node_usage = [
            NodeUsage("node-a", T0, 20.0, 0.123456789, 1264 * 1024 * 1024, {"zone": "a", "role": "worker"}),
            NodeUsage("node-b", T0, 20.0, 1.5, 3 * 1024**3, {"zone": "b", "role": "worker"}),
        ]
        self.pod_usage = [
            PodUsage("web", "web-1", T0, 30.0, (ContainerUsage("app", 0.25, 64 * 1024 * 1024),
                                                 ContainerUsage("sidecar", 0.001, 10 * 1024 * 1024)),
                     {"app": "web"}),
            PodUsage("web", "web-2", T0, 30.0, (ContainerUsage("app", 0.5, 80 * 1024 * 1024),), {"app": "web"}),
            PodUsage("db", "db-0", T0, 30.0, (ContainerUsage("postgres", 2.0, 2 * 1024**3),), {"app": "db"}),
        ]
        self.requests = {"web-1": 1.5, "web-2": 2.25}
        self.queue = [({"queue": "tasks", "namespace": "web"}, 12.0), ({"queue": "mail", "namespace": "web"}, 3.0)]

    def _check(self, *call) -> None:
        self.calls.append(call)
        if self.down:
            raise QueryUnavailableError("shard 1 at 127.0.0.1:1 unavailable: connection refused")

    def nodes(self, names: Sequence[str] | None, selector: Selector) -> list[NodeUsage]:
        self._check("nodes", names, str(selector))
        return [n for n in self.node_usage if (names is None or n.name in names) and selector.matches(n.labels)]

    def pods(self, namespace: str | None, names: Sequence[str] | None, selector: Selector) -> list[PodUsage]:
        self._check("pods", namespace, names, str(selector))
        return [p for p in self.pod_usage if (namespace is None or p.namespace == namespace)
                and (names is None or p.name in names) and selector.matches(p.labels)]

    def custom_metrics(self) -> list[CustomMetricInfo]:
        self._check("custom_metrics")
        return [CustomMetricInfo("pods", "http_requests_per_second", True),
                CustomMetricInfo("namespaces", "http_requests_per_second", False)]

    def custom_values(self, group_resource: str, metric: str, namespace: str | None, name: str | None,
                      selector: Selector, metric_selector: Selector) -> list[MetricValue]:
        self._check("custom_values", group_resource, metric, namespace, name, str(selector), str(metric_selector))
        if metric != "http_requests_per_second" or group_resource not in ("pods", "namespaces"):
            raise NotFoundError(f"the server could not find the metric {metric} for {group_resource}")
        if group_resource == "namespaces":
            return [MetricValue(ObjectReference("Namespace", name or "web"), metric, T0, 3.75, 60.0)]
        pods = [p for p in self.pod_usage if p.namespace == namespace and p.name in self.requests
                and (name is None or p.name == name) and selector.matches(p.labels)]
        if name is not None and not pods:
            raise NotFoundError(f"the server could not find the metric {metric} for pods {name}")
        sel = None if metric_selector.empty else {r.key: r.values[0] for r in metric_selector.requirements}
        return [MetricValue(ObjectReference("Pod", p.name, p.namespace), metric, T0, self.requests[p.name], 60.0, sel)
                for p in pods]

    def external_metrics(self) -> list[ExternalMetricInfo]:
        self._check("external_metrics")
        return [ExternalMetricInfo("queue_messages_ready")]

    def external_values(self, namespace: str, metric: str, metric_selector: Selector) -> list[ExternalValue]:
        self._check("external_values", namespace, metric, str(metric_selector))
        if metric != "queue_messages_ready":
            raise NotFoundError(f"the server could not find the requested resource ({metric})")
        return [ExternalValue(metric, labels, T0, v) for labels, v in self.queue
                if labels["namespace"] == namespace and metric_selector.matches(labels)]

    def close(self) -> None:
        pass


# -- certificates ------------------------------------------------------------------------------------


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())



@dataclass
class PKI:
    folder: Path

    def path(self, name: str) -> str:
        return str(self.folder / name)

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.folder / f"{name}.crt").read_bytes())


#: client certificates made by :func:`make_pki`: file stem -> (issuing CA, CN, O)
CLIENTS = {
    "admin": ("ca", "kubernetes-admin", ("system:masters",)),
    "front-proxy-client": ("front-proxy-ca", "front-proxy-client", ()),
    "other-proxy": ("front-proxy-ca", "not-the-aggregator", ()),
    "rogue": ("rogue-ca", "mallory", ("system:masters",)),
}


def make_pki(folder: Path) -> PKI:
    """ca.crt (the cluster CA: client_ca_file), front-proxy-ca.crt (requestheader_client_ca_file),
    rogue-ca.crt (trusted by nobody), server.crt/key (localhost, 127.0.0.1, from ca), and the client
    certificates of :data:`CLIENTS` (``<stem>.crt``/``.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    cas = {}
    for ca in ("ca", "front-proxy-ca", "rogue-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(f"{ca} of the test"), key, _name(f"{ca} of the test"), key, ca=True)
        cas[ca] = (cert, key)
        (folder / f"{ca}.crt").write_bytes(_pem(cert))
    for stem, (ca, cn, orgs) in {**CLIENTS, "server": ("ca", "k8s-api", ())}.items():
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert, ca_key = cas[ca]
        cert = _cert(_name(cn, orgs), key, ca_cert.subject, ca_key, server=stem == "server")
        (folder / f"{stem}.crt").write_bytes(_pem(cert))
        (folder / f"{stem}.key").write_bytes(_pem(key))
    return PKI(folder)


# -- a served app --------------------------------------------------------------------------------------


class ServedAPI:
    """``shardmon.k8sapi.service.start(config, provider)`` on 127.0.0.1:0 in a thread with its own loop."""

    def __init__(self, config, provider) -> None:
        from shardmon.k8sapi.service import start

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="k8s-api", daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(start(config, provider, address="127.0.0.1:0"),
                                                        self.loop).result(30)
        self.address = self.running.address
        self.url = f"https://{self.address}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> ServedAPI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
