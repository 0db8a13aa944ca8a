"""A PromQL expression printed as Prometheus 2.42 prints its parsed form (``promql/parser/printer.go``).

``/api/v1/rules`` shows each rule's ``query`` as ``rule.Query().String()``: the expression parsed and
printed again, so ``sum by(job)(x)`` reads ``sum by (job) (x)`` and ``x{b="1",a="2"}`` reads
``x{a="2",b="1"}``. :func:`go_string` parses with promql-parser (the engine's parser) and walks its tree
with Go's rules: matchers sorted, ``offset``/``@`` as Go writes them, numbers as ``fmt.Sprint``, strings
as ``%q``. A text the parser refuses is returned unchanged (rule files are checked before they get here).
"""

from __future__ import annotations

import datetime as dt

import promql_parser

from shardmon.model.gotemplate.gofmt import go_quote, sprint
from shardmon.model.units import format_duration_ms

_MATCH_OPS = ((promql_parser.MatchOp.Equal, "="), (promql_parser.MatchOp.NotEqual, "!="),
              (promql_parser.MatchOp.Re, "=~"), (promql_parser.MatchOp.NotRe, "!~"))


def go_string(expr: str) -> str:
    """``expr`` as Prometheus's ``parser.ParseExpr(expr).String()``; unchanged if it does not parse."""
    try:
        node = promql_parser.parse(expr)
    except Exception:  # noqa: BLE001 - promql-parser raises plain exceptions for bad text
        return expr
    return _print(node)


def _ms(d: dt.timedelta) -> int:
    return (d.days * 86_400_000) + d.seconds * 1000 + d.microseconds // 1000


def _offset(offset: dt.timedelta | None) -> str:
    if offset is None:
        return ""
    ms = _ms(offset)
    if ms > 0:
        return f" offset {format_duration_ms(ms)}"
    if ms < 0:
        return f" offset -{format_duration_ms(-ms)}"
    return ""


def _at(at) -> str:
    if at is None:
        return ""
    if at.type == promql_parser.AtModifierType.Start:
        return " @ start()"
    if at.type == promql_parser.AtModifierType.End:
        return " @ end()"
    # promql-parser prints the time as Go does (``@ 100.000``): seconds with the milliseconds.
    return " " + str(at).strip()


def _matcher(m) -> str:
    op = next(text for match_op, text in _MATCH_OPS if m.op == match_op)
    return f"{m.name}{op}{go_quote(m.value)}"


def _selector(vs, with_modifiers: bool = True) -> str:
    name = vs.name or ""
    parts = [_matcher(m) for m in vs.matchers.matchers
             if not (name and m.name == "__name__" and m.op == promql_parser.MatchOp.Equal and m.value == name)]
    if vs.matchers.or_matchers:  # not in 2.42's grammar; printed as the parser wrote them
        parts = [" or ".join(",".join(sorted(_matcher(m) for m in group)) for group in vs.matchers.or_matchers)]
    else:
        parts.sort()
    text = f"{name}{{{','.join(parts)}}}" if parts else name
    if with_modifiers:
        text += _at(vs.at) + _offset(vs.offset)
    return text


def _print(node) -> str:  # noqa: C901 - one branch per node type, as printer.go
    kind = type(node).__name__
    if kind == "VectorSelector":
        return _selector(node)
    if kind == "MatrixSelector":
        vs = node.vector_selector
        return f"{_selector(vs, False)}[{format_duration_ms(_ms(node.range))}]{_at(vs.at)}{_offset(vs.offset)}"
    if kind == "SubqueryExpr":
        step = format_duration_ms(_ms(node.step)) if node.step else ""
        return f"{_print(node.expr)}[{format_duration_ms(_ms(node.range))}:{step}]{_at(node.at)}{_offset(node.offset)}"
    if kind == "NumberLiteral":
        return sprint(float(node.val))
    if kind == "StringLiteral":
        return go_quote(node.val)
    if kind == "ParenExpr":
        return f"({_print(node.expr)})"
    if kind == "UnaryExpr":  # the parser drops a unary plus: always a minus
        return f"-{_print(node.expr)}"
    if kind == "Call":
        return f"{node.func.name}({', '.join(_print(a) for a in node.args)})"
    if kind == "AggregateExpr":
        text = str(node.op).lower()
        mod = node.modifier
        if mod is not None and mod.type == promql_parser.AggModifierType.Without:
            text += f" without ({', '.join(mod.labels)}) "
        elif mod is not None and mod.labels:
            text += f" by ({', '.join(mod.labels)}) "
        param = f"{_print(node.param)}, " if node.param is not None else ""
        return f"{text}({param}{_print(node.expr)})"
    if kind == "BinaryExpr":
        return f"{_print(node.lhs)} {str(node.op).lower()}{_binary_modifier(node.modifier)} {_print(node.rhs)}"
    raise TypeError(f"cannot print a {kind}")


def _binary_modifier(mod) -> str:
    if mod is None:
        return ""
    text = " bool" if mod.return_bool else ""
    matching = mod.matching
    if matching is not None:
        on = matching.type == promql_parser.LabelModifierType.Include
        if on or matching.labels:
            text += f" {'on' if on else 'ignoring'} ({', '.join(matching.labels)})"
            card = mod.card
            if card in (promql_parser.VectorMatchCardinality.ManyToOne, promql_parser.VectorMatchCardinality.OneToMany):
                side = "left" if card == promql_parser.VectorMatchCardinality.ManyToOne else "right"
                text += f" group_{side} ({', '.join(mod.group_labels or [])})"
    return text
