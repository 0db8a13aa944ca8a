"""A small Kubernetes API client for discovery: where the API server is and how to authenticate
(``api_server`` + ``<http_config>``, a kubeconfig file, or the in-cluster service account), and
:class:`ResourceWatcher`, which lists then watches one resource in one namespace as client-go's
reflector does (paged list, ``?watch=1&resourceVersion=...`` stream of JSON lines, bookmarks, a re-list
on ``410 Gone`` or any broken stream, capped exponential backoff between failures).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yaml

from shardmon.ingest.discovery.metrics import KUBERNETES_EVENTS, KUBERNETES_FAILURES
from shardmon.model.errors import ConfigError, DiscoveryError
from shardmon.model.http_config import TLSConfig
from shardmon.model.httpclient import ClientSettings, basic_auth_value, read_secret_file, ssl_context
from shardmon.model.sd_config import KubernetesSDConfig

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# role -> (API group path, resource, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "node": ("/api/v1", "nodes", False),
    "pod": ("/api/v1", "pods", True),
    "service": ("/api/v1", "services", True),
    "endpoints": ("/api/v1", "endpoints", True),
    "endpointslice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
}


class KubeConfigError(ConfigError):
    """The API server or its credentials cannot be determined."""


@dataclass
class KubeConnection:
    """Where the API server is and what every request carries."""

    server: str  # scheme://host:port, no trailing slash
    settings: ClientSettings = field(default_factory=ClientSettings)
    namespace: str | None = None  # the own namespace (in-cluster) or the kubeconfig context's


def join_host_port(host: str, port: str | int) -> str:
    """``host:port``, with an IPv6 host in brackets (Go's ``net.JoinHostPort``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def in_cluster_connection(sa_dir: str = SERVICE_ACCOUNT_DIR, env: Mapping[str, str] | None = None,
                          own_namespace: bool = False) -> KubeConnection:
    """The connection of a pod: ``KUBERNETES_SERVICE_HOST``/``PORT``, the service account token (re-read
    on every request, as it is rotated) and CA certificate, and the pod's namespace."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
        )
    token_file = os.path.join(sa_dir, "token")
    if not os.path.exists(token_file):
        raise KubeConfigError(f"unable to load in-cluster configuration: no service account token at {token_file}")
    ca_file = os.path.join(sa_dir, "ca.crt")
    settings = ClientSettings(
        authorization=lambda: f"Bearer {read_secret_file(token_file)}",
        ssl=ssl_context(TLSConfig(ca_file=ca_file)) if os.path.exists(ca_file) else None,
    )
    namespace = None
    if own_namespace:
        try:
            namespace = read_secret_file(os.path.join(sa_dir, "namespace"))
        except OSError as exc:
            raise KubeConfigError(f"could not determine the pod's namespace: {exc}") from None
        if not namespace:
            raise KubeConfigError("could not read own namespace name (empty file)")
    return KubeConnection("https://" + join_host_port(host, port), settings, namespace)


def _named(entries: Any, name: str, what: str, path: str) -> dict:
    for e in entries or []:
        if isinstance(e, dict) and e.get("name") == name:
            return e.get(what) or {}
    raise KubeConfigError(f"{path}: no {what} named {name!r}")


def kubeconfig_connection(path: str) -> KubeConnection:
    """The connection of a kubeconfig file's current context: the cluster's ``server``,
    ``certificate-authority[-data]``, ``insecure-skip-tls-verify``, ``tls-server-name`` and the user's
    ``token``/``tokenFile``, ``client-certificate[-data]``/``client-key[-data]`` or
    ``username``/``password``. ``exec`` and ``auth-provider`` plugins are not supported."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"{path}: cannot read kubeconfig: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: str | None) -> str | None:
        return os.path.join(base, os.path.expanduser(p)) if p else None

    ctx_name = doc.get("current-context")
    if not ctx_name:
        raise KubeConfigError(f"{path}: no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context", path)
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster", path)
    user = _named(doc.get("users"), ctx["user"], "user", path) if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeConfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    if user.get("exec") or user.get("auth-provider"):
        raise KubeConfigError(f"{path}: user {ctx.get('user')!r}: exec and auth-provider plugins are not supported")

    def data(key: str) -> str | None:
        raw = cluster.get(key) if key.startswith("certificate") else user.get(key)
        return base64.b64decode(raw).decode() if raw else None

    tls = TLSConfig(
        ca=data("certificate-authority-data"),
        ca_file=None if cluster.get("certificate-authority-data") else rel(cluster.get("certificate-authority")),
        cert=data("client-certificate-data"),
        cert_file=None if user.get("client-certificate-data") else rel(user.get("client-certificate")),
        key=data("client-key-data"),
        key_file=None if user.get("client-key-data") else rel(user.get("client-key")),
        server_name=cluster.get("tls-server-name"),
        insecure_skip_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
    )
    if user.get("token"):
        token = str(user["token"])
        authorization: Callable[[], str | None] = lambda: f"Bearer {token}"  # noqa: E731
    elif user.get("tokenFile"):
        token_file = rel(user["tokenFile"]) or ""
        authorization = lambda: f"Bearer {read_secret_file(token_file)}"  # noqa: E731
    elif user.get("username"):
        value = basic_auth_value(str(user["username"]), str(user.get("password", "")))
        authorization = lambda: value  # noqa: E731
    else:
        authorization = lambda: None  # noqa: E731
    settings = ClientSettings(
        authorization=authorization,
        ssl=ssl_context(tls) if server.startswith("https") else None,
        server_hostname=tls.server_name or None,
        proxy=cluster.get("proxy-url"),
    )
    return KubeConnection(server, settings, ctx.get("namespace"))


def connection_for(cfg: KubernetesSDConfig, sa_dir: str = SERVICE_ACCOUNT_DIR,
                   env: Mapping[str, str] | None = None) -> KubeConnection:
    """The connection a ``kubernetes_sd_configs`` entry describes."""
    if cfg.kubeconfig_file:
        return kubeconfig_connection(cfg.kubeconfig_file)
    if cfg.api_server:
        return KubeConnection(cfg.api_server, ClientSettings.from_http_config(cfg))
    return in_cluster_connection(sa_dir, env, own_namespace=cfg.namespaces.own_namespace)


def resource_path(role: str, namespace: str) -> str:
    group, resource, namespaced = RESOURCES[role]
    if namespaced and namespace:
        return f"{group}/namespaces/{namespace}/{resource}"
    return f"{group}/{resource}"


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (``name`` for cluster-scoped objects), as client-go's store keys."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else name


class KubeAPIError(DiscoveryError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class _Gone(Exception):
    """The resource version is too old (410): list again."""


_EVENT_NAMES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}

OnEvent = Callable[[str, str, dict], None]  # (role, "ADDED" | "MODIFIED" | "DELETED", object)


class ResourceWatcher:
    """Lists then watches one resource (``role``) in one namespace ("" for all or cluster-scoped),
    reporting every change as an event; a re-list reports the difference to what it had, so nothing is
    missed across a broken watch. ``on_synced`` is called once, after the first list's events."""

    def __init__(self, session: aiohttp.ClientSession, conn: KubeConnection, role: str, namespace: str,
                 on_event: OnEvent, on_synced: Callable[[], None], *, label_selector: str = "",
                 field_selector: str = "", backoff_min: float = 0.5, backoff_max: float = 30.0,
                 watch_timeout_s: int | None = None, page_size: int = 500) -> None:
        self.session, self.conn, self.role, self.namespace = session, conn, role, namespace
        self.on_event, self.on_synced = on_event, on_synced
        self.label_selector, self.field_selector = label_selector, field_selector
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.watch_timeout_s = watch_timeout_s
        self.page_size = page_size
        self.objects: dict[str, dict] = {}
        self.lists = 0  # completed lists (tests and logs)

    @property
    def url(self) -> str:
        return self.conn.server + resource_path(self.role, self.namespace)

    def _params(self, **extra: str) -> dict[str, str]:
        params = dict(extra)
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    def _emit(self, kind: str, obj: dict) -> None:
        KUBERNETES_EVENTS.labels(role=self.role, event=_EVENT_NAMES[kind]).inc()
        self.on_event(self.role, kind, obj)

    async def list(self) -> str:
        """List everything (paged), report the difference to the objects held; the list's resourceVersion."""
        items: dict[str, dict] = {}
        cont = ""
        while True:
            params = self._params(limit=str(self.page_size))
            if cont:
                params["continue"] = cont
            kwargs = self.conn.settings.request_kwargs({"Accept": "application/json"})
            timeout = aiohttp.ClientTimeout(total=60)
            async with self.session.get(self.url, params=params, timeout=timeout, **kwargs) as resp:
                if resp.status == 410:
                    raise _Gone()
                if resp.status != 200:
                    raise KubeAPIError(resp.status, (await resp.text())[:300])
                body = await resp.json(content_type=None)
            for obj in body.get("items") or []:
                items[object_key(obj)] = obj
            meta = body.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                rv = str(meta.get("resourceVersion") or "")
                break
        old = self.objects
        self.objects = items
        for key, obj in old.items():
            if key not in items:
                self._emit("DELETED", obj)
        for key, obj in items.items():
            before = old.get(key)
            if before is None:
                self._emit("ADDED", obj)
            elif before != obj:
                self._emit("MODIFIED", obj)
        self.lists += 1
        return rv

    async def watch(self, rv: str) -> str:
        """Watch from ``rv`` until the server ends the stream; the last resourceVersion seen."""
        timeout_s = self.watch_timeout_s or random.randint(300, 600)  # as client-go's reflector
        params = self._params(watch="1", resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds=str(timeout_s))
        kwargs = self.conn.settings.request_kwargs({"Accept": "application/json"})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_s + 30)
        async with self.session.get(self.url, params=params, timeout=timeout, **kwargs) as resp:
            if resp.status == 410:
                raise _Gone()
            if resp.status != 200:
                raise KubeAPIError(resp.status, (await resp.text())[:300])
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        rv = self._watch_event(json.loads(line), rv)
            if buf.strip():
                rv = self._watch_event(json.loads(buf), rv)
        return rv

    def _watch_event(self, ev: dict, rv: str) -> str:
        kind = ev.get("type")
        obj = ev.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Gone()
            raise KubeAPIError(int(code or 500), str(obj.get("message", "watch error")))
        new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if kind == "BOOKMARK":
            return new_rv
        key = object_key(obj)
        if kind in ("ADDED", "MODIFIED"):
            self.objects[key] = obj
            self._emit(kind, obj)
        elif kind == "DELETED":
            old = self.objects.pop(key, obj)
            self._emit("DELETED", obj or old)
        return new_rv

    async def run(self) -> None:
        synced = False
        backoff = self.backoff_min
        while True:
            try:
                rv = await self.list()
                if not synced:
                    synced = True
                    self.on_synced()
                backoff = self.backoff_min
                while True:  # a stream the server ended cleanly is resumed from the last version
                    started = time.monotonic()
                    rv = await self.watch(rv)
                    if time.monotonic() - started < self.backoff_min:
                        await asyncio.sleep(self.backoff_min)  # no busy loop on a server that ends at once
            except _Gone:
                log.info("kubernetes_sd: %s %s: resource version too old, listing again", self.role, self.url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped stream, an unreachable or refusing server: list again
                KUBERNETES_FAILURES.inc()
                log.warning("kubernetes_sd: %s %s: %s: %s (retrying in %.1fs)", self.role, self.url,
                            type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
