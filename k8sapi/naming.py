"""prometheus-adapter's association and naming (pure logic): which series labels name which Kubernetes
resources (``resources.template`` and ``overrides``, both ways), and how a series becomes an API metric
(``seriesFilters``, ``name.matches``/``as``).

- A label is a resource when an override names it, or when it reads back through the template
  (``kube_<<.Group>>_<<.Resource>>`` makes ``kube_apps_deployment`` the ``deployments.apps`` resource);
  the label of a resource is its override, else the template executed with the group (dots and dashes as
  underscores) and the singular resource.
- A series passes when its name passes every filter (``is`` matches, ``isNot`` does not; unanchored) and
  ``name.matches``; its API name is ``as`` expanded with the captures (default ``$1`` with one capture
  group, the whole name without).
"""

from __future__ import annotations

from collections.abc import Iterable

from shardmon.k8sapi import resources
from shardmon.k8sapi.resources import GroupResource
from shardmon.model.adapter_config import (
    DiscoveryRule,
    ResourceMapping,
    adapter_template,
    group_resource_struct,
)
from shardmon.model.errors import BadRequestError
from shardmon.model.regex import compile_search_regex


class NoLabelError(BadRequestError):
    """A rule has no label for the resource asked about (neither an override nor a template)."""


class ResourceConverter:
    """Labels to group-resources and back, for one rule's ``resources``."""

    def __init__(self, mapping: ResourceMapping) -> None:
        self._label_to_res: dict[str, GroupResource] = {}
        self._res_to_label: dict[GroupResource, str] = {}
        self._template = adapter_template("resource-label", mapping.template) if mapping.template else None
        self._extractor = None
        if mapping.template:
            raw = self._template.execute(group_resource_struct("(?P<group>.+?)", "(?P<resource>.+?)"))
            self._extractor = compile_search_regex(f"^{raw}$")
        for label, gr in mapping.overrides.items():
            canonical = resources.normalize(gr.group, gr.resource)
            self._label_to_res[label] = canonical
            self._res_to_label[canonical] = label

    def label_for(self, gr: GroupResource) -> str:
        """The label naming objects of ``gr``; NoLabelError when the rule has none."""
        gr = resources.normalize(gr.group, gr.resource)
        label = self._res_to_label.get(gr)
        if label is not None:
            return label
        if self._template is None:
            raise NoLabelError(f"unable to convert resource {gr} into label: no generic resource label form "
                               "specified for this metric")
        info = resources.info(gr)
        label = self._template.execute(group_resource_struct(
            gr.group.replace(".", "_").replace("-", "_"), info.singular))
        if not label:
            raise NoLabelError(f"unable to convert resource {gr} into label: empty label produced by label template")
        return label

    def resource_for(self, label: str) -> GroupResource | None:
        """The resource ``label`` names, or None."""
        found = self._label_to_res.get(label)
        if found is not None or self._extractor is None:
            return found
        m = self._extractor.match(label)
        if m is None:
            return None
        names = self._extractor.group_names
        group = m.group(names.index("group")) if "group" in names else ""
        # As the adapter, which skips what its REST mapper does not know: only resources the table knows.
        found_info = resources.known((group or "").replace("_", "."), m.group(names.index("resource")) or "")
        return None if found_info is None else found_info.group_resource

    def resources_for(self, label_names: Iterable[str]) -> list[GroupResource]:
        """The resources a series with these labels is attached to, in label order, each once."""
        out: dict[GroupResource, None] = {}
        for name in label_names:
            if name == "__name__":
                continue
            gr = self.resource_for(name)
            if gr is not None:
                out[gr] = None
        return list(out)


class MetricNamer:
    """One rule's series filters and naming, with its converter."""

    def __init__(self, rule: DiscoveryRule) -> None:
        self.rule = rule
        self.converter = ResourceConverter(rule.resources)
        self._filters = [(compile_search_regex(f.is_ or f.isNot), bool(f.is_)) for f in rule.seriesFilters]
        self._matches = compile_search_regex(rule.name.matches or ".*")
        if rule.name.matches:
            self._filters.append((self._matches, True))
        self._as = rule.name.as_ or ("$0" if self._matches.groups == 0 else "$1")

    def passes(self, series_name: str) -> bool:
        """Whether a series of this name passes ``seriesFilters`` and ``name.matches``."""
        return all(rx.search(series_name) == positive for rx, positive in self._filters)

    def metric_name(self, series_name: str) -> str | None:
        """The API name of a series, or None when the name does not match ``name.matches``."""
        m = self._matches.match(series_name)
        return None if m is None else self._matches.expand(self._as, m)


__all__ = ["MetricNamer", "NoLabelError", "ResourceConverter"]
