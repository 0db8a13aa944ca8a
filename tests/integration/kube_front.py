"""A test-only Kubernetes API front: what the real API server and its aggregator do for ``kubectl top`` and
the custom/external metrics clients, on one HTTPS URL.

- ``/api``, ``/api/v1``, ``/apis``, ``/version``: discovery as the API server answers it (the core group's
  nodes, pods and namespaces; the three metrics groups as registered APIServices);
- ``/api/v1/nodes[/<name>]``, ``/api/v1[/namespaces/<ns>]/pods[/<name>]``, ``/api/v1/namespaces``: the
  objects the test adds (:class:`tests.integration.fake_kube.FakeKube`'s lists, with ``labelSelector``);
- ``/apis/metrics.k8s.io/...``, ``/apis/custom.metrics.k8s.io/...``, ``/apis/external.metrics.k8s.io/...``:
  proxied to Shardmon's Kubernetes metrics API as kube-aggregator proxies to an APIService: over TLS with
  the front-proxy client certificate, the authenticated user in ``X-Remote-User`` / ``X-Remote-Group``.

Clients authenticate to the front with a bearer token. It runs on its own event loop in a thread
(``start()``/``stop()``), so that kubectl and blocking clients can call it from the test.
"""

from __future__ import annotations

import asyncio
import ssl
import threading

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.integration.fake_kube import FakeKube

METRICS_GROUPS = {"metrics.k8s.io": ["v1beta1"], "custom.metrics.k8s.io": ["v1beta2", "v1beta1"],
                  "external.metrics.k8s.io": ["v1beta1"]}
CORE_RESOURCES = [("nodes", "Node", False), ("pods", "Pod", True), ("namespaces", "Namespace", False)]


class KubeFront(FakeKube):
    def __init__(self, token: str, ssl_context: ssl.SSLContext, upstream: str, proxy_ssl: ssl.SSLContext,
                 user: str = "kubectl-user", groups: tuple[str, ...] = ("system:authenticated",)) -> None:
        super().__init__(token=token, ssl_context=ssl_context)
        self.upstream = upstream.rstrip("/")
        self.proxy_ssl = proxy_ssl
        self.user, self.groups = user, groups
        self.proxied: list[tuple[str, int]] = []  # (path with query, status) of every proxied request
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._session: aiohttp.ClientSession | None = None

    # --- in a thread -------------------------------------------------------------------------------

    def start_in_thread(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(10)

    def stop_in_thread(self) -> None:
        async def _stop() -> None:
            if self._session is not None:
                await self._session.close()
            await self.stop()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- server ------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._front)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context).start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    def _discovery(self, path: str) -> dict | None:
        if path == "/version":
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": n, "singularName": kind.lower(), "namespaced": ns, "kind": kind,
                 "verbs": ["get", "list", "watch"]} for n, kind, ns in CORE_RESOURCES]}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in METRICS_GROUPS.items()]}
        return None

    def _get_one(self, path: str) -> dict | None:
        """``/api/v1/nodes/<n>``, ``/api/v1/namespaces/<ns>/pods/<p>``, ``/api/v1/namespaces[/<ns>]``."""
        parts = [p for p in path.split("/") if p][2:]
        if parts == ["namespaces"]:
            names = sorted({o["metadata"]["namespace"] for o in self.objects["pod"].values()})
            return {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": [
                {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": n}} for n in names]}
        if len(parts) == 2 and parts[0] == "nodes":
            return self.objects["node"].get(parts[1]) or {}
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "pods":
            return self.objects["pod"].get(f"{parts[1]}/{parts[3]}") or {}
        return None

    async def _front(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        doc = self._discovery(request.path)
        proxied = len(parts) >= 2 and parts[0] == "apis" and parts[1] in METRICS_GROUPS
        one = None if doc is not None or proxied else self._get_one(request.path)
        if doc is None and not proxied and one is None:
            return await self._handle(request)  # the lists (and watches), as FakeKube serves them
        self.requests.append((request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            return web.json_response(self._status(401, "Unauthorized", "Unauthorized"), status=401)
        if doc is not None:
            return web.json_response(doc)
        if proxied:
            return await self._proxy(request)
        if not one:
            return web.json_response(self._status(404, "NotFound", f"{parts[-2]} \"{parts[-1]}\" not found"),
                                     status=404)
        return web.json_response(one)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.proxy_ssl))
        headers = CIMultiDict({"X-Remote-User": self.user, "Accept": request.headers.get("Accept", "application/json")})
        for g in self.groups:
            headers.add("X-Remote-Group", g)
        url = self.upstream + request.rel_url.raw_path_qs
        try:
            async with self._session.get(url, headers=headers) as resp:
                body = await resp.read()
                self.proxied.append((request.rel_url.raw_path_qs, resp.status))
                return web.Response(body=body, status=resp.status,
                                    content_type=resp.content_type or "application/json")
        except aiohttp.ClientError as exc:  # as kube-aggregator answers when the APIService is unreachable
            self.proxied.append((request.rel_url.raw_path_qs, 503))
            return web.json_response(self._status(503, "ServiceUnavailable", f"service unavailable: {exc}"),
                                     status=503)
