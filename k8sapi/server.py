"""The aiohttp app of the Kubernetes metrics APIs, answering as Metrics Server (``metrics.k8s.io``) and
prometheus-adapter (custom-metrics-apiserver: ``custom.metrics.k8s.io``, ``external.metrics.k8s.io``)
answer the API aggregator, kubectl and the HorizontalPodAutoscaler.

Routes: discovery (``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``), ``/version``, a minimal
``/openapi/v2``, the health checks (``/healthz``, ``/livez``, ``/readyz``, answered without
authentication as Metrics Server's are), ``/metrics`` (this process's registry), and the metrics paths:

- ``metrics.k8s.io/v1beta1``: ``nodes``, ``nodes/{name}``, ``pods``, ``namespaces/{ns}/pods``,
  ``namespaces/{ns}/pods/{name}`` (``labelSelector``; ``fieldSelector`` on ``metadata.name`` and, for pods,
  ``metadata.namespace``);
- ``custom.metrics.k8s.io/{v1beta2,v1beta1}``: ``namespaces/{ns}/{resource}/{name|*}/{metric}``,
  ``{resource}/{name|*}/{metric}``, ``namespaces/{ns}/metrics/{metric}`` (``labelSelector``,
  ``metricLabelSelector``, ``fieldSelector`` ``metadata.name``);
- ``external.metrics.k8s.io/v1beta1``: ``namespaces/{ns}/{metric}`` (``labelSelector`` selects the
  metric's labels).

Every error is a Kubernetes ``Status`` (``k8sapi/documents.py``): 404 for an unknown path or object, 400
for a bad selector, 401 for a request no authenticator accepts (``k8sapi/auth.py``), 503 when the shards
cannot answer. The provider's methods block: they run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from cryptography import x509

from shardmon.k8sapi import documents as docs
from shardmon.k8sapi.auth import Authenticator, AuthError, UserInfo
from shardmon.k8sapi.fields import parse_field_selector
from shardmon.k8sapi.metrics import AUTH_FAILURES, REQUEST_DURATION, REQUESTS
from shardmon.k8sapi.provider import MetricsProvider, NotFoundError
from shardmon.k8sapi.selector import EVERYTHING, parse_selector
from shardmon.model.buildinfo import build_info
from shardmon.model.errors import ShardmonError
from shardmon.model.httpserver import add_metrics_route, make_app

log = logging.getLogger(__name__)

R, C, E = docs.RESOURCE_GROUP, docs.CUSTOM_GROUP, docs.EXTERNAL_GROUP
HEALTH = ("/healthz", "/livez", "/readyz")
#: The authenticated user of a request (``request[USER]``), for handlers and logs.
USER = web.RequestKey("user", UserInfo)


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(doc, separators=(",", ":")), status=status, content_type="application/json")


def status_response(code: int, message: str, **details: str) -> web.Response:
    return _json(docs.status(code, message, details=details or None), code)


def render_error(exc: ShardmonError, code: int) -> web.Response:
    """The error middleware's renderer: the error as a ``Status`` with the error tree's HTTP status."""
    return status_response(code, str(exc))



def peer_certificate(request: web.Request) -> x509.Certificate | None:
    """The client certificate OpenSSL verified during the handshake (None without one)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


class KubernetesMetricsAPI:
    """The routes above over one provider; ``authenticator`` None serves everyone (tests of the routes)."""

    def __init__(self, provider: MetricsProvider, authenticator: Authenticator | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.provider, self.authenticator, self.clock = provider, authenticator, clock
        self.version = build_info()["version"]

    # -- the app -----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = make_app("k8sapi", None, render_error=render_error,
                       middlewares=[self._count, self._authenticate, self._http_errors])
        get = app.router.add_get
        for path in HEALTH:
            get(path, self.health, name=f"health{path.replace('/', '_')}")
        get("/version", self.version_info, name="version")
        get("/openapi/v2", self.openapi, name="openapi")
        add_metrics_route(app)
        get("/apis", self.groups, name="discovery")
        get("/apis/{group}", self.group, name="discovery_group")
        get("/apis/{group}/{version}", self.resources, name="discovery_resources")
        rm = f"/apis/{R}/v1beta1"
        get(f"{rm}/nodes", self.nodes, name="nodes")
        get(f"{rm}/nodes/{{name}}", self.node, name="node")
        get(f"{rm}/pods", self.pods, name="pods")
        get(f"{rm}/namespaces/{{namespace}}/pods", self.pods, name="namespace_pods")
        get(f"{rm}/namespaces/{{namespace}}/pods/{{name}}", self.pod, name="pod")
        cm = f"/apis/{C}/{{version:v1beta2|v1beta1}}"
        get(f"{cm}/namespaces/{{namespace}}/metrics/{{metric}}", self.namespace_metric, name="custom_namespace")
        get(f"{cm}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}", self.custom, name="custom_namespaced")
        get(f"{cm}/{{resource}}/{{name}}/{{metric}}", self.custom, name="custom_cluster")
        get(f"/apis/{E}/v1beta1/namespaces/{{namespace}}/{{metric}}", self.external, name="external")
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route.name or "not_found"
        started = time.perf_counter()
        code = 500
        try:
            resp = await handler(request)
            code = resp.status
            return resp
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            REQUESTS.labels(route, str(code)).inc()
            REQUEST_DURATION.labels(route).observe(time.perf_counter() - started)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        if self.authenticator is None or request.path in HEALTH or request.path.startswith(
                tuple(p + "/" for p in HEALTH)):
            return await handler(request)
        try:
            request[USER] = await self.authenticator.authenticate(peer_certificate(request), request.headers)
        except AuthError as exc:
            AUTH_FAILURES.labels(exc.reason).inc()
            log.debug("%s %s: 401: %s (%s)", request.method, request.path, exc, exc.reason)
            return status_response(401, "Unauthorized")
        return await handler(request)

    @web.middleware
    async def _http_errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound as exc:
            if exc.content_type == "application/json":  # a Status already (the provider's NotFoundError)
                raise
            return status_response(404, "the server could not find the requested resource")
        except web.HTTPMethodNotAllowed:
            return status_response(405, f"the server does not allow this method on the requested resource "
                                        f"({request.method})")

    async def _call(self, fn, *args):
        """``fn(*args)`` in a worker thread; the provider's NotFoundError leaves as a 404 ``Status``."""
        try:
            return await asyncio.to_thread(fn, *args)
        except NotFoundError as exc:
            raise web.HTTPNotFound(text=json.dumps(docs.status(404, str(exc))), content_type="application/json") from None

    # -- health, version, discovery ----------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version_info(self, request: web.Request) -> web.Response:
        return _json(docs.version_info(self.version, f"{platform.system().lower()}/{platform.machine()}"))

    async def openapi(self, request: web.Request) -> web.Response:
        return _json({"swagger": "2.0", "info": {"title": "Shardmon Kubernetes metrics APIs",
                                                  "version": f"v{self.version}"}, "paths": {}})

    async def groups(self, request: web.Request) -> web.Response:
        return _json(docs.api_group_list())

    async def group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group not in docs.GROUPS:
            raise web.HTTPNotFound()
        return _json(docs.api_group(group))

    async def resources(self, request: web.Request) -> web.Response:
        group, version = request.match_info["group"], request.match_info["version"]
        if version not in docs.GROUPS.get(group, ()):
            raise web.HTTPNotFound()
        if group == R:
            resources = docs.resource_metrics_resources()
        elif group == C:
            resources = docs.custom_metrics_resources(await self._call(self.provider.custom_metrics))
        else:
            resources = docs.external_metrics_resources(await self._call(self.provider.external_metrics))
        return _json(docs.resource_list(group, version, resources))

    # -- metrics.k8s.io ----------------------------------------------------------------------------

    async def nodes(self, request: web.Request) -> web.Response:
        selector = parse_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), ("metadata.name",))
        name = fields.exact("metadata.name")
        nodes = await self._call(self.provider.nodes, None if name is None else [name], selector)
        nodes = [n for n in nodes if fields.matches({"metadata.name": n.name})]
        return _json(docs.node_metrics_list(sorted(nodes, key=lambda n: n.name), self.clock()))

    async def node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        nodes = [n for n in await self._call(self.provider.nodes, [name], EVERYTHING) if n.name == name]
        if not nodes:
            return _json(docs.not_found(R, "nodemetrics", name), 404)
        return _json(docs.node_metrics(nodes[0], self.clock()))

    async def pods(self, request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace")
        selector = parse_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), ("metadata.name", "metadata.namespace"))
        name = fields.exact("metadata.name")
        namespace = namespace or fields.exact("metadata.namespace")
        pods = await self._call(self.provider.pods, namespace, None if name is None else [name], selector)
        pods = [p for p in pods if fields.matches({"metadata.name": p.name, "metadata.namespace": p.namespace})]
        return _json(docs.pod_metrics_list(sorted(pods, key=lambda p: (p.namespace, p.name)), self.clock()))

    async def pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pods = [p for p in await self._call(self.provider.pods, namespace, [name], EVERYTHING)
                if p.name == name and p.namespace == namespace]
        if not pods:
            return _json(docs.not_found(R, "podmetrics", f"{namespace}/{name}"), 404)
        return _json(docs.pod_metrics(pods[0], self.clock()))

    # -- custom.metrics.k8s.io, external.metrics.k8s.io --------------------------------------------

    async def custom(self, request: web.Request) -> web.Response:
        m = request.match_info
        return await self._custom(request, m["version"], m["resource"], m["metric"], m.get("namespace"), m["name"])

    async def namespace_metric(self, request: web.Request) -> web.Response:
        m = request.match_info
        return await self._custom(request, m["version"], "namespaces", m["metric"], None, m["namespace"])

    async def _custom(self, request: web.Request, version: str, resource: str, metric: str, namespace: str | None,
                      name: str) -> web.Response:
        selector = parse_selector(request.query.get("labelSelector"))
        metric_selector = parse_selector(request.query.get("metricLabelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), ("metadata.name",))
        wanted = None if name == "*" else name
        if wanted is None and fields.exact("metadata.name") is not None:
            wanted = fields.exact("metadata.name")  # as custom-metrics-apiserver: a name by field selector
        values = await self._call(self.provider.custom_values, resource, metric, namespace, wanted, selector,
                                  metric_selector)
        return _json(docs.metric_value_list(values, version))

    async def external(self, request: web.Request) -> web.Response:
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        metric_selector = parse_selector(request.query.get("labelSelector"))
        values = await self._call(self.provider.external_values, namespace, metric, metric_selector)
        return _json(docs.external_metric_value_list(values))


__all__ = ["HEALTH", "USER", "KubernetesMetricsAPI", "peer_certificate", "render_error", "status_response"]
