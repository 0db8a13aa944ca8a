"""A small fake Kubernetes API server (aiohttp) for discovery tests: list and watch of nodes, pods,
services, endpoints and endpointslices, as the real API server serves them.

- ``GET /api/v1[/namespaces/<ns>]/<resource>`` and ``/apis/discovery.k8s.io/v1[...]/endpointslices``
  list (``{"metadata": {"resourceVersion"}, "items"}``) or, with ``?watch=1&resourceVersion=N``, stream
  JSON lines ``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": ...}`` of the changes after N, then the
  new ones, until ``timeoutSeconds``.
- ``labelSelector`` (``k=v``, ``k!=v``, ``k``, ``!k``, comma-separated) and ``fieldSelector``
  (``metadata.name=x``, ``metadata.namespace=x``) filter lists and watches.
- :meth:`FakeKube.compact` makes watches from older versions fail with a 410 ``ERROR`` event (the
  client must list again); :meth:`FakeKube.end_watches` ends every open watch stream cleanly (as at
  ``timeoutSeconds``); :meth:`FakeKube.drop_watches` breaks every open watch stream mid-response.
- With ``token``, every request must carry ``Authorization: Bearer <token>`` (else 401).
- With ``ssl_context``, it serves HTTPS.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from typing import Any

from aiohttp import web

from shardmon.ingest.discovery.kubeclient import RESOURCES, object_key

_BY_RESOURCE = {resource: (role, namespaced) for role, (_, resource, namespaced) in RESOURCES.items()}
#: The kind of a list of each role, as the API server answers it (kubectl decodes lists by it).
_LIST_KIND = {"node": "NodeList", "pod": "PodList", "service": "ServiceList", "endpoints": "EndpointsList",
              "endpointslice": "EndpointSliceList"}
_DROP = object()
_END = object()


def _labels_match(selector: str, labels: dict[str, str]) -> bool:
    for req in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in req:
            k, v = req.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in req:
            k, v = req.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip().lstrip("="):
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def _fields_match(selector: str, obj: dict) -> bool:
    for req in filter(None, (r.strip() for r in selector.split(","))):
        k, _, v = req.partition("=")
        value: Any = obj
        for part in k.strip().split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value if value is not None else "") != v.strip().lstrip("="):
            return False
    return True


class FakeKube:
    def __init__(self, token: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.ssl_context = ssl_context
        self.objects: dict[str, dict[str, dict]] = {role: {} for role in RESOURCES}
        self.rv = 100
        self.min_rv = 0
        self.history: list[tuple[int, str, str, dict]] = []  # (rv, role, type, object)
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, query) of every request
        self.unauthorized = 0
        self._streams: set[asyncio.Queue] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- objects -----------------------------------------------------------------------------------

    def _record(self, role: str, kind: str, obj: dict) -> dict:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, role, kind, obj))
        for q in list(self._streams):
            q.put_nowait((self.rv, role, kind, obj))
        return obj

    def add(self, role: str, obj: dict) -> None:
        key = object_key(obj)
        kind = "MODIFIED" if key in self.objects[role] else "ADDED"
        self.objects[role][key] = self._record(role, kind, obj)

    modify = add

    def delete(self, role: str, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}" if namespace else name
        obj = self.objects[role].pop(key)
        self._record(role, "DELETED", obj)

    def compact(self) -> None:
        """Forget the history: a watch from any version so far gets 410 Gone."""
        self.min_rv = self.rv + 1
        self.history.clear()

    def drop_watches(self) -> None:
        """Break every open watch stream (the client sees the connection drop)."""
        for q in list(self._streams):
            q.put_nowait(_DROP)

    def end_watches(self) -> None:
        """End every open watch stream cleanly, as the server does at ``timeoutSeconds``."""
        for q in list(self._streams):
            q.put_nowait(_END)

    def watch_count(self, role: str | None = None) -> int:
        return sum(1 for path, q in self.requests if q.get("watch") and (role is None or path.endswith(
            RESOURCES[role][1])))

    def list_count(self, role: str) -> int:
        return sum(1 for path, q in self.requests if not q.get("watch") and path.endswith(RESOURCES[role][1]))

    # --- server ------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeKube:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _status(code: int, reason: str, message: str) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
                "code": code}

    def _route(self, path: str) -> tuple[str, str, bool] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "discovery.k8s.io", "v1"]:
            rest = parts[3:]
        else:
            return None
        ns = ""
        if len(rest) == 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if len(rest) != 1 or rest[0] not in _BY_RESOURCE:
            return None
        role, namespaced = _BY_RESOURCE[rest[0]]
        if ns and not namespaced:
            return None
        return role, ns, namespaced

    def _matches(self, role: str, ns: str, obj: dict, query: dict[str, str]) -> bool:
        meta = obj.get("metadata") or {}
        if ns and meta.get("namespace") != ns:
            return False
        if not _labels_match(query.get("labelSelector", ""), meta.get("labels") or {}):
            return False
        return _fields_match(query.get("fieldSelector", ""), obj)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append((request.path, query))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            return web.json_response(self._status(401, "Unauthorized", "Unauthorized"), status=401)
        route = self._route(request.path)
        if route is None:
            return web.json_response(self._status(404, "NotFound", f"no route {request.path}"), status=404)
        role, ns, _ = route
        if query.get("watch") in ("1", "true"):
            return await self._watch(request, role, ns, query)
        items = [o for o in self.objects[role].values() if self._matches(role, ns, o, query)]
        return web.json_response({"kind": _LIST_KIND[role], "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    async def _watch(self, request: web.Request, role: str, ns: str, query: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        since = int(query.get("resourceVersion") or 0)
        if since < self.min_rv:
            line = {"type": "ERROR", "object": self._status(410, "Expired", f"too old resource version: {since}")}
            await resp.write(json.dumps(line).encode() + b"\n")
            await resp.write_eof()
            return resp
        q: asyncio.Queue = asyncio.Queue()
        self._streams.add(q)
        for event in [e for e in self.history if e[0] > since]:
            q.put_nowait(event)
        deadline = asyncio.get_running_loop().time() + float(query.get("timeoutSeconds") or 60)
        try:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(q.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if event is _END:
                    break
                if event is _DROP:
                    request.transport.close()  # mid-stream, no final chunk: the client sees a broken response
                    return resp
                _, erole, kind, obj = event
                if erole != role or not self._matches(role, ns, obj, query):
                    continue
                await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        finally:
            self._streams.discard(q)
        await resp.write_eof()
        return resp
