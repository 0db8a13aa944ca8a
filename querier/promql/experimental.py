"""Prometheus 2.53's experimental PromQL functions, and the parse error when they are not enabled.

Prometheus parses ``mad_over_time``, ``sort_by_label`` and ``sort_by_label_desc`` only with
``--enable-feature=promql-experimental-functions``; without it the parser refuses the call at the
function's name: ``1:1: parse error: function "sort_by_label" is not enabled``. Shardmon's switch is
``querier.enable_experimental_functions`` (the engine's ``experimental_functions``).

promql-parser knows every function of Prometheus 3 and takes no such flag, so the check runs on the
parsed tree: a call of an experimental function is looked for in it, and its position in the text
(the first time the name is followed by ``(`` outside a string) is the error's.
"""

from __future__ import annotations

import re

import promql_parser

from shardmon.model.errors import BadQueryError
from shardmon.querier.promql.position import line_column

#: The functions Prometheus 2.53 marks ``Experimental: true``.
EXPERIMENTAL_FUNCTIONS = frozenset({"mad_over_time", "sort_by_label", "sort_by_label_desc"})

_CANDIDATE = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|#[^\n]*'  # strings and comments: passed over
    r"|(?<![\w:])(" + "|".join(sorted(EXPERIMENTAL_FUNCTIONS, key=len, reverse=True)) + r")\s*\("
)


def _calls(node, found: set[str]) -> None:
    """The names of the experimental functions called anywhere in ``node``, into ``found``."""
    if isinstance(node, promql_parser.Call):
        if node.func.name in EXPERIMENTAL_FUNCTIONS:
            found.add(node.func.name)
        for arg in node.args:
            _calls(arg, found)
        return
    for attr in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if isinstance(child, promql_parser.Expr):
            _calls(child, found)


def check_experimental(text: str, expr: promql_parser.Expr) -> None:
    """Raise Prometheus's parse error if ``expr`` (parsed from ``text``) calls an experimental function."""
    if not any(name in text for name in EXPERIMENTAL_FUNCTIONS):
        return  # The common case costs a few substring searches.
    found: set[str] = set()
    _calls(expr, found)
    if not found:
        return
    for m in _CANDIDATE.finditer(text):
        if m.group(1) in found:
            line, column = line_column(text, m.start(1))
            raise BadQueryError(f'{line}:{column}: parse error: function "{m.group(1)}" is not enabled')
    name = sorted(found)[0]
    raise BadQueryError(f'parse error: function "{name}" is not enabled')


__all__ = ["EXPERIMENTAL_FUNCTIONS", "check_experimental"]
