"""Kubernetes objects listed from the API server for label selectors, as prometheus-adapter and Metrics
Server list them (the API server applies the selector): the names and labels of the pods, nodes or other
objects a request selects.

The connection (kubeconfig or in-cluster service account) and its credentials are the Kubernetes service
discovery's (``shardmon.ingest.discovery.kubeclient``). Callers are synchronous (the provider runs in a
worker thread): the lister keeps its own event loop in a daemon thread, with one aiohttp session.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import aiohttp

from shardmon.ingest.discovery.kubeclient import (
    KubeAPIError,
    KubeConnection,
    in_cluster_connection,
    kubeconfig_connection,
)
from shardmon.k8sapi import adapter_metrics
from shardmon.k8sapi.resources import GroupResource, info
from shardmon.model.errors import QueryUnavailableError

_PAGE = 500
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KubeObject:
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)


def resource_path(gr: GroupResource, namespace: str | None) -> str:
    """``/api/v1[/namespaces/NS]/pods``, ``/apis/apps/v1[/namespaces/NS]/deployments``."""
    ri = info(gr)
    base = f"/apis/{gr.group}/{ri.version}" if gr.group else "/api/v1"
    if ri.namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{gr.resource}"
    return f"{base}/{gr.resource}"


class ObjectLister:
    """Lists objects of any resource from one API server."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="k8sapi-objects", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def connect(cls, kubeconfig: str | None, in_cluster: bool) -> ObjectLister | None:
        """The lister of the configured API server (kubeconfig first), or None when neither is set."""
        if kubeconfig:
            return cls(kubeconfig_connection(kubeconfig))
        if in_cluster:
            return cls(in_cluster_connection())
        return None

    def list(self, gr: GroupResource, namespace: str | None, label_selector: str = "") -> list[KubeObject]:
        """The objects of ``gr`` (in ``namespace``; None: all) the selector selects, in the API's order.
        An API server that cannot be reached or refuses is QueryUnavailableError (503, retryable)."""
        future = asyncio.run_coroutine_threadsafe(self._list(gr, namespace, label_selector), self._loop)
        try:
            out = future.result(_TIMEOUT_S + 5)
        except (KubeAPIError, aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, OSError) as exc:
            adapter_metrics.OBJECT_LISTS.labels("error").inc()
            raise QueryUnavailableError(f"unable to list matching resources: {gr}: {exc}") from None
        adapter_metrics.OBJECT_LISTS.labels("ok").inc()
        return out

    async def _list(self, gr: GroupResource, namespace: str | None, label_selector: str) -> list[KubeObject]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.conn.server + resource_path(gr, namespace)
        out: list[KubeObject] = []
        cont = ""
        while True:
            params = {"limit": str(_PAGE)}
            if label_selector:
                params["labelSelector"] = label_selector
            if cont:
                params["continue"] = cont
            kwargs = self.conn.settings.request_kwargs({"Accept": "application/json"})
            async with self._session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S),
                                         **kwargs) as resp:
                if resp.status != 200:
                    raise KubeAPIError(resp.status, (await resp.text())[:300])
                body = await resp.json(content_type=None)
            for obj in body.get("items") or []:
                meta = obj.get("metadata") or {}
                out.append(KubeObject(meta.get("namespace") or "", meta.get("name") or "",
                                      dict(meta.get("labels") or {})))
            cont = (body.get("metadata") or {}).get("continue") or ""
            if not cont:
                return out

    def close(self) -> None:
        async def _close() -> None:
            if self._session is not None:
                await self._session.close()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()


__all__ = ["KubeObject", "ObjectLister", "resource_path"]
