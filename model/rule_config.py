"""Rule files, read and checked as Prometheus 2.42's ``model/rulefmt`` reads them.

A rule file holds ``groups``, each with a ``name`` (unique in the file), an optional ``interval``,
``query_offset`` and ``limit``, and ``rules``: recording rules (``record``, ``expr``, ``labels``) and alerting rules
(``alert``, ``expr``, ``for``, ``keep_firing_for``, ``labels``, ``annotations``). Unknown fields are
refused. ``query_offset`` is Prometheus 2.53's, which 2.42's rulefmt (and so promtool 2.42) refuses as an
unknown field: the one departure from 2.42 here, so that a group can query behind remote-written data. :func:`load_rule_file` returns a :class:`RuleFile` or raises
:class:`~shardmon.model.errors.RuleFileError` whose ``errors`` are rulefmt's messages, each starting
with the file name and, where rulefmt gives one, the YAML ``line:column``, then the group, the rule's
index (from 1) and name, and the problem (``rules.yml: 9:15: group "g", rule 2, "x": could not parse
expression: ...``). Expressions are parsed with promql-parser (its wording of a parse error, not Go's).

The templates of an alerting rule's labels and annotations are checked through ``check_template``, the
Go text/template parse of every label and annotation (:func:`template_checker`, on ``shardmon.model.gotemplate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import yaml

from shardmon.model.errors import RuleFileError
from shardmon.model.gotemplate.prometheus import check_template
from shardmon.model.labels import is_valid_label_name, is_valid_metric_name
from shardmon.model.units import parse_duration_ms

_GROUPS_TYPE = "rulefmt.RuleGroups"
_GROUP_TYPE = "rulefmt.RuleGroup"
_RULE_TYPE = "rulefmt.RuleNode"
_GROUP_FIELDS = ("name", "interval", "query_offset", "limit", "rules")
_RULE_FIELDS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")


@dataclass(frozen=True)
class RuleSpec:
    """One rule as written: ``record`` or ``alert`` set (the other ``""``); durations in milliseconds."""

    record: str = ""
    alert: str = ""
    expr: str = ""
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.alert or self.record


@dataclass(frozen=True)
class RuleGroupSpec:
    """One group as written: ``interval_ms`` 0 means the global ``evaluation_interval``; ``limit`` 0 none;
    ``query_offset_ms`` None means the global ``rule_query_offset`` (set, even to 0, it overrides it)."""

    name: str
    interval_ms: int = 0
    query_offset_ms: int | None = None
    limit: int = 0
    rules: tuple[RuleSpec, ...] = ()


@dataclass(frozen=True)
class RuleFile:
    """A checked rule file: its path as given and its groups in file order."""

    path: str
    groups: tuple[RuleGroupSpec, ...] = ()

    @property
    def rule_count(self) -> int:
        return sum(len(g.rules) for g in self.groups)


def template_checker(text: str) -> str | None:
    """Why a label or annotation template does not parse as Go text/template (with Prometheus's prelude and
    functions, as rulefmt parses it), or None."""
    err = check_template(text)
    return None if err is None else str(err)


class _Decoder:
    """Walks the composed YAML nodes as yaml.v3's strict decoder does, collecting its type errors."""

    def __init__(self) -> None:
        self.type_errors: list[str] = []
        self.fatal: str | None = None

    def _type_error(self, node: yaml.Node, text: str) -> None:
        self.type_errors.append(f"line {node.start_mark.line + 1}: {text}")

    def mapping(self, node: yaml.Node, type_name: str, fields: tuple[str, ...]) -> dict[str, yaml.Node] | None:
        if _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self._type_error(node, f"cannot unmarshal {_tag(node)} {_value_text(node)}into {type_name}")
            return None
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else ""
            if name not in fields:
                self._type_error(key, f"field {name} not found in type {type_name}")
                continue
            if name in out:
                self._type_error(key, f"mapping key \"{name}\" already defined at line {out[name].start_mark.line}")
                continue
            out[name] = value
        return out

    def string(self, node: yaml.Node | None) -> str:
        if node is None or _is_null(node):
            return ""
        if isinstance(node, yaml.ScalarNode):
            return node.value
        self._type_error(node, f"cannot unmarshal {_tag(node)} into string")
        return ""

    def integer(self, node: yaml.Node | None) -> int:
        text = self.string(node)
        if not text:
            return 0
        try:
            return int(text, 0)
        except ValueError:
            self._type_error(node, f"cannot unmarshal {_tag(node)} `{text}` into int")
            return 0

    def duration(self, node: yaml.Node | None) -> int:
        text = self.string(node)
        if not text:
            return 0
        try:
            return parse_duration_ms(text)
        except ValueError:
            # model.Duration's own unmarshaler: its error ends the decoding, as Go's yaml.v3 does.
            if self.fatal is None:
                self.fatal = f'not a valid duration string: "{text}"'
            return 0

    def string_map(self, node: yaml.Node | None) -> dict[str, str]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self._type_error(node, f"cannot unmarshal {_tag(node)} into map[string]string")
            return {}
        return {self.string(k): self.string(v) for k, v in node.value}


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _tag(node: yaml.Node) -> str:
    return "!!" + node.tag.rsplit(":", 1)[-1] if node.tag.startswith("tag:yaml.org,2002:") else node.tag


def _value_text(node: yaml.Node) -> str:
    return f"`{node.value}` " if isinstance(node, yaml.ScalarNode) else ""


def _pos(node: yaml.Node | None) -> str:
    """yaml.v3's ``line:column`` of a node; an absent field is Go's zero node, ``0:0``."""
    if node is None:
        return "0:0"
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def parse_rule_text(text: str, path: str) -> RuleFile:
    """Check the text of a rule file named ``path``; :class:`RuleFileError` with rulefmt's messages."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        message = f"{path}: yaml: {line}{getattr(exc, 'problem', None) or exc}"
        raise RuleFileError([message, message]) from None  # rulefmt decodes twice and reports both.
    dec = _Decoder()
    top = dec.mapping(root, _GROUPS_TYPE, ("groups",)) if root is not None else {}
    group_nodes: list[yaml.Node] = []
    if top and "groups" in top and not _is_null(top["groups"]):
        if isinstance(top["groups"], yaml.SequenceNode):
            group_nodes = top["groups"].value
        else:
            dec._type_error(top["groups"], f"cannot unmarshal {_tag(top['groups'])} into []rulefmt.RuleGroup")
    groups = []
    for gnode in group_nodes:
        g = dec.mapping(gnode, _GROUP_TYPE, _GROUP_FIELDS) or {}
        rule_nodes = []
        rules_node = g.get("rules")
        if rules_node is not None and isinstance(rules_node, yaml.SequenceNode):
            rule_nodes = rules_node.value
        elif rules_node is not None and not _is_null(rules_node):
            dec._type_error(rules_node, f"cannot unmarshal {_tag(rules_node)} into []rulefmt.RuleNode")
        rules = []
        for rnode in rule_nodes:
            r = dec.mapping(rnode, _RULE_TYPE, _RULE_FIELDS) or {}
            rules.append((r, RuleSpec(
                record=dec.string(r.get("record")), alert=dec.string(r.get("alert")), expr=dec.string(r.get("expr")),
                for_ms=dec.duration(r.get("for")), keep_firing_for_ms=dec.duration(r.get("keep_firing_for")),
                labels=dec.string_map(r.get("labels")), annotations=dec.string_map(r.get("annotations")),
            )))
        groups.append((gnode, rules, RuleGroupSpec(
            name=dec.string(g.get("name")), interval_ms=dec.duration(g.get("interval")),
            query_offset_ms=None if g.get("query_offset") is None or _is_null(g["query_offset"])
            else dec.duration(g["query_offset"]),
            limit=dec.integer(g.get("limit")), rules=tuple(spec for _, spec in rules),
        )))
    if dec.fatal is not None:
        raise RuleFileError([f"{path}: {dec.fatal}"])
    if dec.type_errors:
        raise RuleFileError([f"{path}: yaml: unmarshal errors:\n  " + "\n  ".join(dec.type_errors)])
    errors = []
    seen: set[str] = set()
    for gnode, rules, spec in groups:
        if spec.name == "":
            errors.append(f"{path}: {_pos(gnode)}: Groupname must not be empty")
        if spec.name in seen:
            errors.append(f'{path}: {_pos(gnode)}: groupname: "{spec.name}" is repeated in the same file')
        seen.add(spec.name)
        for index, (nodes, rule) in enumerate(rules, start=1):
            for problem in rule_problems(rule, nodes):
                errors.append(f'{path}: {problem[0]}group "{spec.name}", rule {index}, "{rule.name}": {problem[1]}')
    if errors:
        raise RuleFileError(errors)
    return RuleFile(path, tuple(spec for _, _, spec in groups))


def rule_problems(rule: RuleSpec, nodes: dict[str, yaml.Node] | None = None) -> list[tuple[str, str]]:
    """What rulefmt finds wrong with one rule: ``(position prefix, problem)`` pairs, in rulefmt's order."""
    nodes = nodes or {}
    record, alert, expr = nodes.get("record"), nodes.get("alert"), nodes.get("expr")
    out: list[tuple[str, str]] = []
    if rule.record and rule.alert:
        out.append((f"{_pos(record)}: {_pos(alert)}: ", "only one of 'record' and 'alert' must be set"))
    if not rule.record and not rule.alert:
        out.append((f"{_pos(record)}: ", "one of 'record' or 'alert' must be set"))
    if not rule.expr:
        out.append((f"{_pos(expr)}: ", "field 'expr' must be set in rule"))
    else:
        try:
            promql_parser.parse(rule.expr)
        except Exception as exc:  # noqa: BLE001 - promql-parser raises ValueError (and others on odd input)
            out.append((f"{_pos(expr)}: ", f"could not parse expression: {exc}"))
    if rule.record:
        at = f"{_pos(record)}: "
        if rule.annotations:
            out.append((at, "invalid field 'annotations' in recording rule"))
        if rule.for_ms:
            out.append((at, "invalid field 'for' in recording rule"))
        if rule.keep_firing_for_ms:
            out.append((at, "invalid field 'keep_firing_for' in recording rule"))
        if not is_valid_metric_name(rule.record):
            out.append((at, f"invalid recording rule name: {rule.record}"))
    for name in rule.labels:
        if not is_valid_label_name(name) or name == "__name__":
            out.append(("", f"invalid label name: {name}"))
    for name in rule.annotations:
        if not is_valid_label_name(name):
            out.append(("", f"invalid annotation name: {name}"))
    if rule.alert:
        for kind, values in (("label", rule.labels), ("annotation", rule.annotations)):
            for name, text in values.items():
                problem = template_checker(text)
                if problem:
                    out.append(("", f'{kind} "{name}": {problem}'))
    return out


def read_rule_text(path: str | Path) -> str:
    """One rule file's text; RuleFileError as Prometheus words an unreadable file."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise RuleFileError([f"{path}: open {path}: {(exc.strerror or str(exc)).lower()}"]) from None
    except UnicodeDecodeError:
        raise RuleFileError([f"{path}: yaml: invalid UTF-8"]) from None


def load_rule_file(path: str | Path) -> RuleFile:
    """Read and check one rule file (``path`` kept as given, as Prometheus keys groups by it)."""
    return parse_rule_text(read_rule_text(path), str(path))
