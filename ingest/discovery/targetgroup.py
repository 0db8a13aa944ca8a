"""Target groups: what every service discovery mechanism produces, as Prometheus's ``targetgroup.Group``.

:class:`TargetGroup` (a source, its targets, their common labels); :func:`static_groups` (the groups
of ``static_configs``); :func:`parse_groups` and :func:`groups_with_meta` (the ``[{"targets": [...],
"labels": {...}}]`` lists file and HTTP discovery read); :func:`sanitize_label_name` (Prometheus's
``strutil.SanitizeLabelName``, for ``__meta_*`` label names made of foreign keys). See the package's
docstring for what sources mean and how groups replace each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from shardmon.model.config import ScrapeConfig
from shardmon.model.labels import is_valid_label_name

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
