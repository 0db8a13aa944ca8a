"""Kubernetes group-resources as prometheus-adapter's REST mapper sees them (pure logic): ``pod``, ``pods``
and ``Pod`` are the same resource, ``deployment`` without a group is ``deployments.apps``, and each has a
kind, an API version and a scope.

The adapter asks the API server's discovery for this; Shardmon keeps a table of the built-in resources a
metric is commonly attached to, and guesses for any other (a custom resource: plural by English rules,
as apimachinery's ``UnsafeGuessKindToResource``, namespaced, version ``v1``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupResource:
    """A resource as the API names it: ``group`` ("" for the core group) and the plural ``resource``."""

    group: str
    resource: str

    def __str__(self) -> str:  # schema.GroupResource.String(): "pods", "deployments.apps"
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @classmethod
    def parse(cls, text: str) -> GroupResource:
        """``deployments.apps`` -> (apps, deployments); ``pods`` -> ("", pods) (schema.ParseGroupResource)."""
        resource, _, group = text.partition(".")
        return cls(group, resource)


@dataclass(frozen=True)
class ResourceInfo:
    group_resource: GroupResource
    singular: str
    kind: str
    version: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """As the adapter writes ``describedObject.apiVersion``: ``group/version`` ("/v1" for the core group)."""
        return f"{self.group_resource.group}/{self.version}"


def _info(group: str, plural: str, singular: str, kind: str, version: str, namespaced: bool) -> ResourceInfo:
    return ResourceInfo(GroupResource(group, plural), singular, kind, version, namespaced)


_KNOWN = [
    _info("", "pods", "pod", "Pod", "v1", True),
    _info("", "nodes", "node", "Node", "v1", False),
    _info("", "namespaces", "namespace", "Namespace", "v1", False),
    _info("", "services", "service", "Service", "v1", True),
    _info("", "endpoints", "endpoints", "Endpoints", "v1", True),
    _info("", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", "v1", True),
    _info("", "persistentvolumes", "persistentvolume", "PersistentVolume", "v1", False),
    _info("", "replicationcontrollers", "replicationcontroller", "ReplicationController", "v1", True),
    _info("", "serviceaccounts", "serviceaccount", "ServiceAccount", "v1", True),
    _info("", "configmaps", "configmap", "ConfigMap", "v1", True),
    _info("apps", "deployments", "deployment", "Deployment", "v1", True),
    _info("apps", "statefulsets", "statefulset", "StatefulSet", "v1", True),
    _info("apps", "daemonsets", "daemonset", "DaemonSet", "v1", True),
    _info("apps", "replicasets", "replicaset", "ReplicaSet", "v1", True),
    _info("batch", "jobs", "job", "Job", "v1", True),
    _info("batch", "cronjobs", "cronjob", "CronJob", "v1", True),
    _info("networking.k8s.io", "ingresses", "ingress", "Ingress", "v1", True),
    _info("autoscaling", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", "v2", True),
    _info("policy", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", "v1", True),
    _info("storage.k8s.io", "storageclasses", "storageclass", "StorageClass", "v1", False),
]
_BY_NAME: dict[tuple[str, str], ResourceInfo] = {}
for _i in _KNOWN:
    for _name in (_i.group_resource.resource, _i.singular, _i.kind.lower()):
        _BY_NAME.setdefault((_i.group_resource.group, _name), _i)

NAMESPACES = GroupResource("", "namespaces")
NODES = GroupResource("", "nodes")
PODS = GroupResource("", "pods")
PERSISTENT_VOLUMES = GroupResource("", "persistentvolumes")


def guess_plural(singular: str) -> str:
    """apimachinery's ``UnsafeGuessKindToResource`` on a lower-case kind: ``s``/``es``/``ies``."""
    s = singular.lower()
    if not s:
        return s
    if s.endswith(("s", "x", "z", "ch", "sh")):
        return s + "es"
    if s.endswith("y") and len(s) > 1 and s[-2] not in "aeiou":
        return s[:-1] + "ies"
    return s + "s"


def _guess_singular(plural: str) -> str:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith(("ses", "xes", "zes", "ches", "shes")):
        return plural[:-2]
    return plural[:-1] if plural.endswith("s") else plural


def known(group: str, resource: str) -> ResourceInfo | None:
    """The built-in resource ``group``/``resource`` names (singular, plural or kind, any case), or None. An
    empty group looks in the core group first, then in every known group (the REST mapper's partial match)."""
    name = resource.lower()
    found = _BY_NAME.get((group, name))
    if found is None and not group:
        found = next((i for (g, n), i in _BY_NAME.items() if n == name), None)
    return found


def lookup(group: str, resource: str) -> ResourceInfo:
    """As :func:`known`; a resource not built in is guessed (plural by English rules, namespaced, ``v1``)."""
    found = known(group, resource)
    if found is not None:
        return found
    name = resource.lower()
    if guess_plural(_guess_singular(name)) == name:
        plural, singular = name, _guess_singular(name)
    else:
        plural, singular = guess_plural(name), name
    return ResourceInfo(GroupResource(group, plural), singular, singular[:1].upper() + singular[1:], "v1", True)


def normalize(group: str, resource: str) -> GroupResource:
    """The canonical group-resource (``pod`` -> ``pods``, ``deployment`` -> ``deployments.apps``)."""
    return lookup(group, resource).group_resource


def info(gr: GroupResource) -> ResourceInfo:
    return lookup(gr.group, gr.resource)


__all__ = ["NAMESPACES", "NODES", "PERSISTENT_VOLUMES", "PODS", "GroupResource", "ResourceInfo", "guess_plural",
           "info", "known", "lookup", "normalize"]
