"""``kubernetes_sd_configs``: targets from the Kubernetes API, as Prometheus's ``discovery/kubernetes``.

:class:`KubernetesDiscoverer` lists and watches the role's resource in every configured namespace (all
namespaces when none is configured; nodes are cluster-scoped), plus, as Prometheus, services and pods
for the endpoints and endpointslice roles (their metadata is attached to the targets) and nodes with
``attach_metadata: {node: true}``. After the first list of every watched resource it sends all groups;
then each change re-sends the groups it affects: a changed or deleted object its own group, a changed
service, pod or node every group that looked it up (Prometheus does not rebuild endpoints on a pod
change; doing so only makes pod labels fresher). A deleted object sends an empty group (its targets
go). A node without any address sends nothing, as in Prometheus. The groups themselves are built by
:mod:`shardmon.ingest.discovery.kubernetes_labels`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

import aiohttp

from shardmon.ingest.discovery.kubeclient import (
    RESOURCES,
    SERVICE_ACCOUNT_DIR,
    KubeConfigError,
    ResourceWatcher,
    connection_for,
    object_key,
)
from shardmon.ingest.discovery.kubernetes_labels import (
    GetNamespaced,
    Obj,
    endpoints_group,
    endpointslice_group,
    node_group,
    pod_group,
    service_group,
    source_of,
    string_of,
)
from shardmon.ingest.discovery.metrics import KUBERNETES_FAILURES
from shardmon.ingest.discovery.targetgroup import TargetGroup
from shardmon.model.sd_config import KubernetesSDConfig

log = logging.getLogger(__name__)

Send = Callable[[Sequence[TargetGroup]], None]


class _RoleState:
    """The objects of every watched resource and the groups built from the role's objects."""

    def __init__(self, role: str, attach_node: bool, send: Send) -> None:
        self.role = role
        self.attach_node = attach_node
        self.send = send
        self.objects: dict[str, dict[str, Obj]] = {r: {} for r in RESOURCES}
        self.deps: dict[tuple[str, str], set[str]] = {}  # (resource, key) -> keys of role objects using it
        self.uses: dict[str, set[tuple[str, str]]] = {}  # key of a role object -> what it looked up
        self.sent: dict[str, TargetGroup] = {}
        self.unsynced = 0
        self.synced = False

    def expect_syncs(self, n: int) -> None:
        self.unsynced = n

    def on_synced(self) -> None:
        self.unsynced -= 1
        if self.unsynced == 0 and not self.synced:
            self.synced = True
            self._send([self._build(key, obj) for key, obj in self.objects[self.role].items()])

    def on_event(self, resource: str, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        store = self.objects[resource]
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        if not self.synced:
            return
        updates: list[TargetGroup | None] = []
        if resource == self.role:
            updates.append(self._build(key, obj, deleted=kind == "DELETED"))
        primaries = self.objects[self.role]
        for pk in sorted(self.deps.get((resource, key), ())):
            if pk in primaries and not (resource == self.role and pk == key):
                updates.append(self._build(pk, primaries[pk]))
        self._send(updates)

    def _lookup(self, used: set[tuple[str, str]], resource: str, key: str) -> Obj | None:
        used.add((resource, key))
        return self.objects[resource].get(key)

    def _build(self, key: str, obj: Obj, deleted: bool = False) -> TargetGroup | None:
        for dep in self.uses.pop(key, ()):
            users = self.deps.get(dep)
            if users is not None:
                users.discard(key)
                if not users:
                    del self.deps[dep]
        if deleted:
            return TargetGroup.empty(source_of(self.role, obj))
        used: set[tuple[str, str]] = set()

        def get_namespaced(resource: str) -> GetNamespaced:
            return lambda ns, name: self._lookup(used, resource, f"{ns}/{name}" if ns else name)

        def get_node(name: str) -> Obj | None:
            return self._lookup(used, "node", name)

        node_getter = get_node if self.attach_node else None
        if self.role == "node":
            group = node_group(obj)
        elif self.role == "pod":
            node_name = string_of((obj.get("spec") or {}).get("nodeName"))
            node = get_node(node_name) if self.attach_node and node_name else None
            group = pod_group(obj, node)
        elif self.role == "service":
            group = service_group(obj)
        elif self.role == "endpoints":
            group = endpoints_group(obj, get_service=get_namespaced("service"), get_pod=get_namespaced("pod"),
                                    get_node=node_getter)
        else:
            group = endpointslice_group(obj, get_service=get_namespaced("service"), get_pod=get_namespaced("pod"),
                                        get_node=node_getter)
        if used:
            self.uses[key] = used
            for dep in used:
                self.deps.setdefault(dep, set()).add(key)
        return group

    def _send(self, updates: Sequence[TargetGroup | None]) -> None:
        out = []
        for g in updates:
            if g is None or self.sent.get(g.source) == g:
                continue
            if g.targets:
                self.sent[g.source] = g
            else:
                self.sent.pop(g.source, None)
            out.append(g)
        if out:
            self.send(out)


class KubernetesDiscoverer:
    """Runs one ``kubernetes_sd_configs`` entry; :meth:`run` sends group updates until cancelled.

    ``sa_dir`` and ``env`` locate the in-cluster service account (tests); ``backoff_min``/``max`` bound
    the wait before listing again after a failure; ``watch_timeout_s`` is the server-side watch timeout
    (default: 5 to 10 minutes, as client-go)."""

    def __init__(self, cfg: KubernetesSDConfig, *, sa_dir: str = SERVICE_ACCOUNT_DIR,
                 env: Mapping[str, str] | None = None, backoff_min: float = 0.5, backoff_max: float = 30.0,
                 watch_timeout_s: int | None = None) -> None:
        self.cfg = cfg
        self.sa_dir, self.env = sa_dir, env
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.watch_timeout_s = watch_timeout_s
        self.watchers: list[ResourceWatcher] = []

    def resources(self) -> list[str]:
        """The resources watched for the role."""
        role = self.cfg.role
        out = [role]
        if role in ("endpoints", "endpointslice"):
            out += ["service", "pod"]
        if self.cfg.attach_metadata.node and role in ("pod", "endpoints", "endpointslice"):
            out.append("node")
        return out

    async def run(self, send: Send) -> None:
        try:
            conn = connection_for(self.cfg, self.sa_dir, self.env)
        except KubeConfigError as exc:
            KUBERNETES_FAILURES.inc()
            log.error("kubernetes_sd: cannot create the discoverer (role %s): %s", self.cfg.role, exc)
            return
        namespaces = list(dict.fromkeys(self.cfg.namespaces.names))
        if self.cfg.namespaces.own_namespace and conn.namespace and conn.namespace not in namespaces:
            namespaces.append(conn.namespace)
        if not namespaces:
            namespaces = [""]  # all namespaces
        attach_node = self.cfg.attach_metadata.node and self.cfg.role in ("pod", "endpoints", "endpointslice")
        state = _RoleState(self.cfg.role, attach_node, send)
        async with aiohttp.ClientSession() as session:
            self.watchers = []
            for resource in self.resources():
                namespaced = RESOURCES[resource][2]
                label, field = self.cfg.selector(resource)
                for ns in namespaces if namespaced else [""]:
                    self.watchers.append(ResourceWatcher(
                        session, conn, resource, ns, state.on_event, state.on_synced,
                        label_selector=label, field_selector=field, backoff_min=self.backoff_min,
                        backoff_max=self.backoff_max, watch_timeout_s=self.watch_timeout_s,
                    ))
            state.expect_syncs(len(self.watchers))
            await asyncio.gather(*(w.run() for w in self.watchers))
