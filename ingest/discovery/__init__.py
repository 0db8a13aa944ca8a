"""Service discovery: target groups from ``static_configs``, ``file_sd_configs``, ``http_sd_configs`` and
``kubernetes_sd_configs``, with Prometheus's config fields, sources and ``__meta_*`` label names.

Output
------
Every mechanism produces :class:`TargetGroup` values, shaped as Prometheus's ``targetgroup.Group``::

    TargetGroup(source="pod/default/web-0",
                targets=[{"__address__": "10.1.2.3:8080", "__meta_kubernetes_pod_container_name": "web", ...}],
                labels={"__meta_kubernetes_namespace": "default", "__meta_kubernetes_pod_name": "web-0", ...})

``source`` identifies the group within its provider (one SD config entry): a later group with the same
source replaces the earlier one, and a group with no targets removes it. The labels of one target are
the group labels overridden by the target's own (:meth:`TargetGroup.label_sets`), exactly the label set
Prometheus hands to relabeling. ``__meta_*`` labels are for relabeling and are dropped afterwards (as
every ``__`` label is; see :mod:`ingest.target`).

Sources, as Prometheus makes them: static ``"0"``, ``"1"``... (index in ``static_configs``), file
``"<path>:<i>"``, HTTP ``"<url>:<i>"``, Kubernetes ``"node/<name>"``, ``"pod/<ns>/<name>"``,
``"svc/<ns>/<name>"``, ``"endpoints/<ns>/<name>"``, ``"endpointslice/<ns>/<name>"``. Sources are unique
within a provider, not across the providers of a job: treat the list a job gets as a whole.

Manager
-------
:class:`ingest.discovery.manager.DiscoveryManager` (also importable from here) runs every SD config of
every scrape config on the running asyncio loop and calls ``on_update(job_name, groups)`` (a plain
function or a coroutine function) whenever the list of a job's non-empty groups changes: static groups
first, then file, HTTP and Kubernetes providers in configuration order. Updates are coalesced: the
first change is delivered at once, further ones at most every ``update_interval`` seconds (5 s by
default, as Prometheus). A job that disappears on :meth:`~DiscoveryManager.apply_config` gets a last
``on_update(job, [])``::

    from ingest.discovery import DiscoveryManager

    async def on_update(job: str, groups: list[TargetGroup]) -> None:
        ...  # turn groups into targets (label_sets(), then ingest.target's rules) and reassign

    manager = DiscoveryManager(on_update)
    await manager.apply_config(config.scrape_configs)   # start; call again on reload (unchanged providers keep running)
    manager.groups("node")                               # the current groups of a job
    await manager.stop()

Mechanisms (modules of this package): :mod:`.file` (files polled for changes every second plus a full
re-read every ``refresh_interval``; a file that fails to parse keeps its previous groups and counts
``shardmon_sd_file_read_errors_total``), :mod:`.http` (polled every ``refresh_interval``; a failed
refresh keeps the last groups and counts ``shardmon_sd_http_failures_total``), :mod:`.kubernetes`
(list + watch of the API server, roles node, pod, service, endpoints, endpointslice; connection from
``api_server`` + HTTP config, ``kubeconfig_file``, or the in-cluster service account, see
:mod:`.kubeclient`). Metrics are in :mod:`.metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from model.labels import is_valid_label_name

if TYPE_CHECKING:
    from ingest.discovery.manager import DiscoveryManager
    from model.config import ScrapeConfig

__all__ = ["ADDRESS", "DiscoveryManager", "TargetGroup", "sanitize_label_name", "static_groups"]

ADDRESS = "__address__"

_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_label_name(name: str) -> str:
    """Every character outside ``[a-zA-Z0-9_]`` replaced by ``_``, as Prometheus's
    ``strutil.SanitizeLabelName`` (one ``_`` per character, multi-byte ones included)."""
    return _INVALID_LABEL_CHAR.sub("_", name)


class TargetGroup(NamedTuple):
    """A group of targets with common labels, as Prometheus's ``targetgroup.Group`` (picklable)."""

    source: str
    targets: list[dict[str, str]]  # each has "__address__" and the target's own labels
    labels: dict[str, str]  # labels of every target of the group (a target's own label wins)

    def label_sets(self) -> list[dict[str, str]]:
        """The full label set of each target: the group labels, overridden by the target's labels."""
        return [{**self.labels, **t} for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "targets": [dict(t) for t in self.targets], "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetGroup:
        return cls(str(d.get("source", "")), [dict(t) for t in d.get("targets") or []], dict(d.get("labels") or {}))

    @classmethod
    def empty(cls, source: str) -> TargetGroup:
        """The group that removes ``source``."""
        return cls(source, [], {})


def static_groups(sc: ScrapeConfig) -> list[TargetGroup]:
    """The ``static_configs`` of a scrape config as target groups (sources ``"0"``, ``"1"``...)."""
    return [
        TargetGroup(str(i), [{ADDRESS: t} for t in g.targets], dict(g.labels)) for i, g in enumerate(sc.static_configs)
    ]


def _scalar_text(value: Any, what: str) -> str:
    # YAML scalars become their text, as Go's yaml.v2 decodes them into a string.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return ""
    raise ValueError(f"{what}: expected a string, got {type(value).__name__}")


def parse_groups(data: Any, *, yaml_scalars: bool, strict_fields: bool) -> list[tuple[list[str], dict[str, str]]]:
    """Check a decoded list of ``{"targets": [...], "labels": {...}}`` and return ``(targets, labels)``
    pairs. Raises ``ValueError`` naming the item. ``yaml_scalars`` accepts numbers and booleans as text
    (YAML); ``strict_fields`` refuses unknown keys (YAML, as Prometheus's strict YAML decoding; its JSON
    decoding ignores them)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"expected a list of target groups, got {type(data).__name__}")
    out: list[tuple[list[str], dict[str, str]]] = []
    for i, item in enumerate(data):
        where = f"target group {i}"
        if item is None:
            raise ValueError("nil target group item found")
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(item).__name__}")
        if strict_fields:
            unknown = sorted(set(item) - {"targets", "labels"})
            if unknown:
                raise ValueError(f"{where}: field {unknown[0]!r} not found in type targetgroup")
        raw_targets = item.get("targets")
        raw_labels = item.get("labels")
        if raw_targets is None:
            raw_targets = []
        if raw_labels is None:
            raw_labels = {}
        if not isinstance(raw_targets, list):
            raise ValueError(f"{where}: targets must be a list")
        if not isinstance(raw_labels, dict):
            raise ValueError(f"{where}: labels must be a mapping")
        targets = [_text(t, f"{where}: targets[{j}]", yaml_scalars) for j, t in enumerate(raw_targets)]
        labels: dict[str, str] = {}
        for name, value in raw_labels.items():
            name = _text(name, f"{where}: label name", yaml_scalars)
            if not is_valid_label_name(name):
                raise ValueError(f"{where}: {name!r} is not a valid label name")
            labels[name] = _text(value, f"{where}: label {name}", yaml_scalars)
        out.append((targets, labels))
    return out


def _text(value: Any, what: str, yaml_scalars: bool) -> str:
    if yaml_scalars:
        return _scalar_text(value, what)
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def groups_with_meta(
    parsed: Iterable[tuple[list[str], dict[str, str]]], source_prefix: str, meta_label: str
) -> list[TargetGroup]:
    """Target groups with sources ``"<source_prefix>:<i>"`` and ``meta_label`` = ``source_prefix``."""
    return [
        TargetGroup(f"{source_prefix}:{i}", [{ADDRESS: t} for t in targets], {**labels, meta_label: source_prefix})
        for i, (targets, labels) in enumerate(parsed)
    ]


def __getattr__(name: str) -> Any:
    # DiscoveryManager is imported lazily: its module imports the mechanisms, which import this one.
    if name == "DiscoveryManager":
        from ingest.discovery.manager import DiscoveryManager

        return DiscoveryManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
