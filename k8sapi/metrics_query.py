"""prometheus-adapter's ``metricsQuery`` (and the resource rules' queries): the template's arguments from a
request, and the query text (pure logic).

The template (``<<`` ``>>`` delimiters) sees ``.Series`` (the series name), ``.LabelMatchers`` (the
comma-separated matchers: the ``metricLabelSelector``'s, then the namespace's, then the objects': one name
``pod="a"``, several ``pod=~"a|b"``), ``.LabelValuesByName`` (label -> its values joined by ``|``),
``.GroupBy`` (the resource's label, then any extra: the container label of resource rules) and
``.GroupBySlice``. An external query has no resource matcher and an empty group-by.

A Kubernetes selector becomes matchers as the adapter translates it: ``k=v`` / ``k==v`` ``k="v"``,
``k!=v`` ``k!="v"``, ``k in (a,b)`` ``k=~"a|b"`` (values sorted), ``k notin (a,b)`` ``k!~"a|b"``, ``k``
``k!=""``, ``!k`` ``k=""``; ``k>1`` and ``k<1`` have no PromQL form and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from shardmon.k8sapi.naming import ResourceConverter
from shardmon.k8sapi.resources import NAMESPACES, GroupResource
from shardmon.k8sapi.selector import EQUALS, EVERYTHING, EXISTS, GT, IN, LT, NOT_EQUALS, NOT_EXISTS, NOT_IN, Selector
from shardmon.model.adapter_config import adapter_template
from shardmon.model.errors import BadRequestError, QueryExecutionError, TemplateExecError
from shardmon.model.gotemplate.gofmt import go_quote
from shardmon.model.gotemplate.values import GoStruct

_ARGS_FIELDS = [("Series", "string"), ("LabelMatchers", "string"), ("LabelValuesByName", "map[string]string"),
                ("GroupBy", "string"), ("GroupBySlice", "[]string")]


class UnsupportedSelectorError(BadRequestError):
    """A ``metricLabelSelector`` requirement PromQL cannot express (``>``, ``<``)."""


def matcher(label: str, op: str, value: str) -> str:
    """``label<op>"value"``, the value quoted as Go's ``%q`` (which PromQL reads)."""
    return f"{label}{op}{go_quote(value)}"


def selector_parts(selector: Selector) -> list[tuple[str, str, str, str]]:
    """Each requirement as ``(label, operator, value, values joined by |)``: the matcher and the
    ``.LabelValuesByName`` entry, in the selector's order."""
    out = []
    for req in selector.requirements:
        values = sorted(req.values)
        joined = "|".join(values)
        if req.op in (GT, LT):
            raise UnsupportedSelectorError(
                f"operator not supported by prometheus: {req.key}{'>' if req.op == GT else '<'}{joined}")
        if req.op == EXISTS:
            out.append((req.key, "!=", "", joined))
        elif req.op == NOT_EXISTS:
            out.append((req.key, "=", "", joined))
        elif len(values) == 1:
            op = {EQUALS: "=", NOT_EQUALS: "!=", IN: "=~", NOT_IN: "!~"}[req.op]
            out.append((req.key, op, values[0], joined))
        else:
            out.append((req.key, "!~" if req.op in (NOT_EQUALS, NOT_IN) else "=~", joined, joined))
    return out


class MetricsQuery:
    """One query template of a rule, with the rule's resource converter."""

    def __init__(self, text: str, converter: ResourceConverter, *, namespaced: bool = True,
                 name: str = "metrics-query") -> None:
        self.text = text
        self.template = adapter_template(name, text)
        self.converter = converter
        self.namespaced = namespaced

    def _parts(self, metric_selector: Selector, namespace: str | None,
               namespace_label: str | None = None) -> list[tuple[str, str, str, str]]:
        parts = selector_parts(metric_selector)
        if namespace:
            label = namespace_label or self.converter.label_for(NAMESPACES)
            parts.append((label, "=", namespace, namespace))
        return parts

    def _render(self, series: str, parts: list[tuple[str, str, str, str]], group_by: list[str]) -> str:
        args = GoStruct("naming.queryTemplateArgs", _ARGS_FIELDS, {
            "Series": series,
            "LabelMatchers": ",".join(matcher(label, op, value) for label, op, value, _ in parts),
            "LabelValuesByName": {label: joined for label, _, _, joined in parts},
            "GroupBy": ",".join(group_by),
            "GroupBySlice": list(group_by),
        })
        try:
            out = self.template.execute(args)
        except TemplateExecError as exc:
            raise QueryExecutionError(f"unable to build the query of template {self.text!r}: {exc}") from None
        if not out:
            raise QueryExecutionError("empty query produced by metrics query template")
        return out

    def build(self, series: str, gr: GroupResource, namespace: str | None, names: Sequence[str] | None, *,
              metric_selector: Selector = EVERYTHING, extra_group_by: Sequence[str] = ()) -> str:
        """The query for objects ``names`` of ``gr`` (in ``namespace``). ``names`` None: every object the
        series name (the resource label matches any non-empty value), a Shardmon extension for listing
        without the Kubernetes API."""
        parts = self._parts(metric_selector, namespace)
        label = self.converter.label_for(gr)
        if names is None:
            parts.append((label, "=~", ".+", ".+"))
        else:
            joined = "|".join(names)
            parts.append((label, "=~" if len(names) > 1 else "=", joined, joined))
        return self._render(series, parts, [label, *extra_group_by])

    def build_external(self, series: str, namespace: str | None, metric_selector: Selector) -> str:
        """The query of an external metric: the selector's matchers and, when the rule is namespaced, the
        namespace's (its label from the rule's resources, ``namespace`` when they name none)."""
        ns = namespace if self.namespaced else None
        ns_label = None
        if ns:
            try:
                ns_label = self.converter.label_for(NAMESPACES)
            except BadRequestError:
                ns_label = "namespace"
        return self._render(series, self._parts(metric_selector, ns, ns_label), [])


__all__ = ["MetricsQuery", "UnsupportedSelectorError", "matcher", "selector_parts"]
