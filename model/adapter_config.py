"""prometheus-adapter's configuration, typed: ``rules``, ``externalRules`` and ``resourceRules`` with the
adapter's own keys (its ``pkg/config``), so an adapter config file or ConfigMap is pasted in unchanged.

Checked as it loads, as the adapter checks it when it starts: unknown keys are refused (the adapter
unmarshals strictly), a series filter has exactly one of ``is``/``isNot``, every regex compiles (RE2, Go's
syntax), ``name.as`` is given when ``name.matches`` has several capture groups, and every template (the
``resources.template`` and each query, with the adapter's ``<<`` ``>>`` delimiters) parses. Errors name
the field path (``kubernetes_metrics.rules[2].name.matches: ...``).

:data:`DEFAULT_RESOURCE_RULES` are the resource rules of the adapter's published deployment
(deploy/manifests/config-map.yaml): the kubelet's ``container_cpu_usage_seconds_total`` /
``node_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes`` /
``node_memory_working_set_bytes``, a window of 5m.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from shardmon.model.config_base import ConfigModel, check_label_names
from shardmon.model.errors import ConfigError, RegexError, TemplateParseError
from shardmon.model.gotemplate.executor import Template
from shardmon.model.gotemplate.values import GoStruct
from shardmon.model.regex import compile_search_regex
from shardmon.model.units import Duration

#: The adapter parses its templates with these delimiters (PromQL's braces stay text).
DELIMS = ("<<", ">>")
#: What ``resources.template`` is executed with to turn it into a label regex (the adapter's trick).
_GROUP_RX, _RESOURCE_RX = "(?P<group>.+?)", "(?P<resource>.+?)"


def adapter_template(name: str, text: str) -> Template:
    """``text`` parsed as the adapter parses its templates (``<<`` ``>>``); TemplateParseError if bad."""
    return Template(name, text, delims=DELIMS)


def group_resource_struct(group: str, resource: str) -> GoStruct:
    """A ``schema.GroupResource`` as the templates see it (``.Group``, ``.Resource``)."""
    return GoStruct("schema.GroupResource", [("Group", "string"), ("Resource", "string")],
                    {"Group": group, "Resource": resource})


def _check_template(name: str, text: str) -> str:
    try:
        adapter_template(name, text)
    except TemplateParseError as exc:
        raise ValueError(f"unable to parse {name} template {text!r}: {exc}") from None
    return text


def _check_regex(what: str, pattern: str) -> None:
    try:
        compile_search_regex(pattern)
    except RegexError as exc:
        raise ValueError(f"unable to compile {what} {pattern!r}: {exc}") from None


class GroupResource(ConfigModel):
    """A Kubernetes group-resource (``{group: apps, resource: deployment}``); the resource may be singular or
    plural, as in ``kubectl get``."""

    group: str = Field("", description="The API group; empty for the core group (pods, nodes, namespaces).")
    resource: str = Field(description="The resource, singular or plural (pod or pods).")

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        if not value:
            raise ValueError("a resource is required")
        return value


class RegexFilter(ConfigModel):
    """One of ``seriesFilters``: keeps series whose name matches ``is``, or does not match ``isNot``
    (unanchored, as Go's ``MatchString``)."""

    is_: str = Field("", alias="is", description="Keep the series whose name matches this regex.")
    isNot: str = Field("", description="Keep the series whose name does not match this regex.")  # noqa: N815

    @model_validator(mode="after")
    def _one(self) -> RegexFilter:
        if self.is_ and self.isNot:
            raise ValueError(f"cannot have both an `is` ({self.is_!r}) and `isNot` ({self.isNot!r}) expression in "
                             "a single filter")
        if not self.is_ and not self.isNot:
            raise ValueError("must have either an `is` or `isNot` expression in a filter")
        _check_regex("series filter", self.is_ or self.isNot)
        return self


class ResourceMapping(ConfigModel):
    """Which series labels name Kubernetes objects (the label's value is the object's name)."""

    template: str = Field(
        "", description="A template turning a group-resource into a label name, with <<.Group>> (dots and dashes "
        "as underscores) and <<.Resource>> (singular), e.g. 'kube_<<.Group>>_<<.Resource>>'; also read back to "
        "find the resource of a label.")
    overrides: dict[str, GroupResource] = Field(
        default_factory=dict, description="Label name -> the group-resource it names, e.g. pod: {resource: pod}.")
    namespaced: bool | None = Field(
        None, description="For external rules: whether the request's namespace is added to the query as a "
        "namespace matcher (default true).")

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value:
            return value
        _check_template("resource-label", value)
        try:
            raw = adapter_template("resource-label", value).execute(group_resource_struct(_GROUP_RX, _RESOURCE_RX))
        except Exception as exc:  # noqa: BLE001 - any execution error is the template's
            raise ValueError(f"unable to convert label template {value!r} to matcher: {exc}") from None
        if not raw:
            raise ValueError(f"unable to convert label template {value!r} to matcher: empty template")
        _check_regex("label template", f"^{raw}$")
        if "resource" not in compile_search_regex(f"^{raw}$").group_names:
            raise ValueError(f"label template {value!r}: must include at least `<<.Resource>>` in the label template")
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict[str, GroupResource]) -> dict[str, GroupResource]:
        check_label_names(dict.fromkeys(value, ""))
        return value


class NameMapping(ConfigModel):
    """How a series name becomes the API's metric name."""

    matches: str = Field(
        "", description="A regex a series name must match (unanchored; empty: '.*'); its groups are $1, ${name}...")
    as_: str = Field(
        "", alias="as", description="The API name, with the captures of matches ('${1}_per_second'). Default: $1 "
        "when matches has one capture group, the whole name when it has none.")

    @model_validator(mode="after")
    def _as(self) -> NameMapping:
        if self.matches:
            _check_regex("series name match expression", self.matches)
            groups = compile_search_regex(self.matches).groups
            if not self.as_ and groups > 1:
                raise ValueError(f"must specify an 'as' value for name matcher {self.matches!r} (it has {groups} "
                                 "capture groups)")
        return self


class DiscoveryRule(ConfigModel):
    """One rule of ``rules`` or ``externalRules``: discovery, association, naming, querying."""

    seriesQuery: str = Field(  # noqa: N815 (the adapter's key)
        description="A series selector (as /api/v1/series's match[]) finding the series of this rule.")
    seriesFilters: list[RegexFilter] = Field(  # noqa: N815
        default_factory=list, description="Further filters on the series names found (is / isNot regexes).")
    resources: ResourceMapping = Field(
        default_factory=ResourceMapping, description="Which labels name Kubernetes objects (template, overrides).")
    name: NameMapping = Field(default_factory=NameMapping, description="How a series name becomes the metric name.")
    metricsQuery: str = Field(  # noqa: N815
        description="The PromQL template answering a request: <<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>, "
        "<<.LabelValuesByName>>, <<.GroupBySlice>>.")

    @field_validator("seriesQuery", "metricsQuery")
    @classmethod
    def _required(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("metricsQuery")
    @classmethod
    def _metrics_query(cls, value: str) -> str:
        return _check_template("metrics-query", value)


class ResourceRule(ConfigModel):
    """The queries of one resource (cpu or memory) of the resource metrics API."""

    containerQuery: str = Field(  # noqa: N815
        description="The template answering pods: a value per container (grouped by <<.GroupBy>>, which holds "
        "the pod label and containerLabel).")
    nodeQuery: str = Field(description="The template answering nodes: a value per node.")  # noqa: N815
    resources: ResourceMapping = Field(
        default_factory=ResourceMapping, description="Which labels name nodes, pods and namespaces.")
    containerLabel: str = Field(  # noqa: N815
        "", description="The label holding the container's name in containerQuery's answer.")

    @field_validator("containerQuery", "nodeQuery")
    @classmethod
    def _query(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return _check_template("metrics-query", value)


class ResourceRules(ConfigModel):
    """The resource metrics API (``metrics.k8s.io``: ``kubectl top``, the HPA's cpu and memory)."""

    cpu: ResourceRule = Field(description="CPU usage in cores.")
    memory: ResourceRule = Field(description="Memory usage (working set) in bytes.")
    window: Duration = Field(
        0, description="The window reported with each value (should match the rate window of the cpu queries).")


class AdapterConfig(ConfigModel):
    """A prometheus-adapter configuration file (``--config``), as the adapter reads it."""

    rules: list[DiscoveryRule] = Field(default_factory=list, description="Custom metrics rules.")
    resourceRules: ResourceRules | None = Field(None, description="Resource metrics rules.")  # noqa: N815
    externalRules: list[DiscoveryRule] = Field(default_factory=list, description="External metrics rules.")  # noqa: N815


_OVERRIDES = {"namespace": {"resource": "namespace"}, "node": {"resource": "node"}, "pod": {"resource": "pod"}}

#: prometheus-adapter's deploy/manifests/config-map.yaml, the resource rules a user of the adapter has.
DEFAULT_RESOURCE_RULES = ResourceRules.model_validate({
    "cpu": {
        "containerLabel": "container",
        "containerQuery": "sum by (<<.GroupBy>>) (\n  irate (\n      container_cpu_usage_seconds_total"
                          "{<<.LabelMatchers>>,container!=\"\",pod!=\"\"}[4m]\n  )\n)\n",
        "nodeQuery": "sum by (<<.GroupBy>>) (\n  irate(\n      node_cpu_usage_seconds_total{<<.LabelMatchers>>}[4m]\n"
                     "  )\n)\n",
        "resources": {"overrides": _OVERRIDES},
    },
    "memory": {
        "containerLabel": "container",
        "containerQuery": "sum by (<<.GroupBy>>) (\n  container_memory_working_set_bytes"
                          "{<<.LabelMatchers>>,container!=\"\",pod!=\"\"}\n)\n",
        "nodeQuery": "sum by (<<.GroupBy>>) (\n  node_memory_working_set_bytes{<<.LabelMatchers>>}\n)\n",
        "resources": {"overrides": _OVERRIDES},
    },
    "window": "5m",
})


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def parse_adapter_config(text: str, source: str) -> AdapterConfig:
    """An adapter configuration file's text; ConfigError naming ``source`` and the field path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return AdapterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(
            f"{_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())) from None


def load_adapter_config(path: str | Path) -> AdapterConfig:
    """An adapter configuration file (``--config``); ConfigError naming the file and the field path."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_adapter_config(text, str(path))


__all__ = ["DEFAULT_RESOURCE_RULES", "DELIMS", "AdapterConfig", "DiscoveryRule", "GroupResource", "NameMapping",
           "RegexFilter", "ResourceMapping", "ResourceRule", "ResourceRules", "adapter_template",
           "group_resource_struct", "load_adapter_config", "parse_adapter_config"]
