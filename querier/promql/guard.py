"""The front door of every PromQL text: limits on its length and nesting, checked before it is parsed.

promql-parser is a recursive-descent parser in Rust: a query nested a few thousand levels deep
overflows its thread's stack and kills the process (measured with promql-parser 0.12 on an 8 MiB
stack: 2,750 nested subqueries; parentheses, calls and operator chains a little deeper), and its time
grows with the square of the depth (1,000 levels: 0.1-0.6 s). The evaluator is recursive too and
meets Python's recursion limit at about 240 levels of nested calls. So the text is measured first, in
one linear pass that never recurses:

- its length in bytes (``querier.max_query_length``);
- a bound on the depth of the syntax tree it would parse into (``querier.max_query_depth``): every
  bracket (``(``, ``[``, ``{``: parentheses, calls, aggregations, ranges, subqueries) is a level,
  and every operator (binary, unary, ``and``/``or``/``unless``/``atan2``) and every range or
  subquery bracket counts as a level of the bracket it is in, since ``a + b + c`` parses into
  ``(a + b) + c``. String literals and comments are skipped. The bound is never below the depth of
  the tree, which is checked again after parsing, as a second line.

Both limits are refused as :class:`~shardmon.model.errors.BadQueryError` (HTTP 400 ``bad_data``) naming the
limit and its config field. The defaults are far above any real query (dashboards nest a few tens of
levels at most) and far below what crashes or hits the recursion limit.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import promql_parser

from shardmon.model.errors import BadQueryError
from shardmon.querier import metrics
from shardmon.querier.promql.position import with_position

#: Default of ``querier.max_query_length``: bytes of query text.
DEFAULT_MAX_QUERY_LENGTH = 256 * 1024
#: Default of ``querier.max_query_depth``: levels of nesting (see the module docstring).
DEFAULT_MAX_QUERY_DEPTH = 100
#: The most ``querier.max_query_depth`` may be set to: what the evaluator takes under Python's default
#: recursion limit (measured: 230 levels of every construct), and far below the parser's crash, also on
#: a 2 MiB thread stack. Deeper still only ends in a BadQueryError (the evaluator's RecursionError).
MAX_QUERY_DEPTH_CEILING = 200

# The tokens that matter for nesting; everything else (names, spaces, '=', ',', '@') is passed over by
# finditer in C. Strings and comments are matched whole so that what they hold is not read as brackets;
# an unterminated one runs to the end (the parser reports it). Numbers are matched whole so that the
# sign of an exponent (1e-3) is not an operator. The keyword operators are whole words (a metric name
# such as job:or:rate matches too, and only makes the bound larger). No pattern backtracks.
_TOKENS = re.compile(
    r"""
      (?P<str>"[^"\\]*(?:\\.[^"\\]*)*"?|'[^'\\]*(?:\\.[^'\\]*)*'?|`[^`]*`?)
    | (?P<comment>\#[^\n]*)
    | (?P<num>(?<![\w:.])(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)[\w.:]*)
    | (?P<word>\b(?:[aA][nN][dD]|[oO][rR]|[uU][nN][lL][eE][sS][sS]|[aA][tT][aA][nN]2)\b)
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>])
    """,
    re.VERBOSE | re.DOTALL,
)


def depth_bound(text: str, stop_above: int | None = None) -> int:
    """An upper bound on the depth of the syntax tree of ``text`` (a lone selector is 1), in one pass.

    With ``stop_above``, the pass ends as soon as the bound is known to exceed it and returns a
    number above it (what the bound is known to be at least, enough to refuse the query).
    """
    # Per open bracket: (its opener, operators counted in it so far, deepest closed child so far).
    stack: list[tuple[str, int, int]] = []
    opener, ops, deepest = "", 0, 0
    for m in _TOKENS.finditer(text):
        kind = m.lastgroup
        if kind == "open":
            bracket = m.group()
            if bracket == "[" and opener != "{":
                ops += 1  # x[5m], expr[1h:1m]: a node around what precedes it.
            stack.append((opener, ops, deepest))
            opener, ops, deepest = bracket, 0, 0
        elif kind == "close":
            if not stack:
                continue  # Unbalanced: the parser says so.
            value = 1 + ops + deepest
            opener, ops, deepest = stack.pop()
            deepest = max(deepest, value)
        elif (kind == "op" or kind == "word") and opener != "{":
            ops += 1
        else:
            continue
        # What is open now is nested inside len(stack) brackets: a lower bound of the final answer.
        if stop_above is not None and len(stack) + ops + deepest + 1 > stop_above:
            return len(stack) + ops + deepest + 1
    value = 1 + ops + deepest
    while stack:  # Brackets left open: the parser refuses the text, but it must get there safely.
        opener, ops, deepest = stack.pop()
        value = 1 + ops + max(deepest, value)
    return value


def tree_depth(expr) -> int:
    """The depth of a parsed expression's tree (a lone selector is 1), without recursion."""
    deepest = 0
    todo = [(expr, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            children = [node.expr]
        elif isinstance(node, promql_parser.BinaryExpr):
            children = [node.lhs, node.rhs]
        elif isinstance(node, promql_parser.AggregateExpr):
            children = [node.expr] if node.param is None else [node.param, node.expr]
        elif isinstance(node, promql_parser.Call):
            children = list(node.args)
        elif isinstance(node, promql_parser.MatrixSelector):
            children = [node.vector_selector]
        else:
            children = []
        todo.extend((child, depth + 1) for child in children if child is not None)
    return deepest


class QueryGuard(NamedTuple):
    """The limits every PromQL text passes before it is parsed; :meth:`parse` applies them."""

    max_length: int = DEFAULT_MAX_QUERY_LENGTH
    max_depth: int = DEFAULT_MAX_QUERY_DEPTH

    def check(self, text: str, what: str = "query") -> None:
        """Raise :class:`BadQueryError` when ``text`` is too long or too deeply nested to parse safely."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.max_length:
            metrics.QUERIES_REFUSED.labels("max_query_length").inc()
            raise BadQueryError(
                f"the {what} is {size:,} bytes long, more than the limit of {self.max_length:,} "
                "(querier.max_query_length)"
            )
        if depth_bound(text, stop_above=self.max_depth) > self.max_depth:
            metrics.QUERIES_REFUSED.labels("max_query_depth").inc()
            raise BadQueryError(self._too_deep(what))

    def _too_deep(self, what: str) -> str:
        return f"the {what} is nested more than {self.max_depth} levels deep (querier.max_query_depth)"

    def parse(self, text: str, what: str = "query") -> promql_parser.Expr:
        """Check ``text`` (:meth:`check`), parse it, and check its tree; :class:`BadQueryError` for
        anything the parser refuses, worded as Prometheus's ``line:column: parse error: ...``
        (:mod:`.position`)."""
        self.check(text, what)
        try:
            expr = promql_parser.parse(text)
        except ValueError as exc:
            raise BadQueryError(with_position(text, str(exc))) from exc
        except BaseException as exc:  # pyo3's PanicException derives from BaseException.
            if type(exc).__name__ != "PanicException":
                raise
            raise BadQueryError(f"the {what} cannot be parsed: {exc}") from None
        if tree_depth(expr) > self.max_depth:  # Never reached while depth_bound is a bound; kept as a second line.
            metrics.QUERIES_REFUSED.labels("max_query_depth").inc()
            raise BadQueryError(self._too_deep(what))
        return expr


__all__ = ["DEFAULT_MAX_QUERY_DEPTH", "DEFAULT_MAX_QUERY_LENGTH", "MAX_QUERY_DEPTH_CEILING", "QueryGuard",
           "depth_bound", "tree_depth"]
