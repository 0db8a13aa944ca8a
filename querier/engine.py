"""The PromQL engine: parses a query, evaluates it over a step grid, returns Prometheus-shaped results.

A query is evaluated for all its steps at once (see :mod:`querier.value`): an instant query is a
range query with one step. Data is read through a :class:`~model.storage.Querier`, once per
selector, for the whole time span the selector needs.

Implemented so far: instant and range vector selectors (all matcher types, ``offset``), ``rate`` and
``increase``, the aggregations ``sum``/``avg``/``min``/``max``/``count`` with ``by``/``without``,
number literals, parentheses and unary minus on scalars. Anything else is rejected with a
:class:`~querier.value.UnsupportedQueryError` ("... not supported yet"), never answered wrongly.
The semantics are Prometheus 2.x's (lookback window and range windows closed at both ends).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import promql_parser

from model.errors import BadQueryError
from model.labels import EMPTY_LABELS, Labels
from model.samples import F64, I64
from model.storage import Querier
from querier.aggregation import AGGREGATIONS, aggregate
from querier.functions import FUNCTIONS
from querier.selector import eval_matrix_selector, eval_vector_selector
from querier.value import (
    EvalContext,
    InstantVector,
    Scalar,
    Value,
    not_supported,
)

#: Prometheus's HTTP API limit on the points of one series in a range query.
MAX_POINTS_PER_SERIES = 11_000

# The parser follows Prometheus 3, which renamed holt_winters to double_exponential_smoothing. We
# speak Prometheus 2's PromQL, so the old name must parse (registering twice is harmless).
promql_parser.register_extra_functions(
    [
        promql_parser.Function(
            "holt_winters",
            [promql_parser.ValueType.Matrix, promql_parser.ValueType.Scalar, promql_parser.ValueType.Scalar],
            promql_parser.ValueType.Vector,
        )
    ]
)


class ResultSeries(NamedTuple):
    """One series of a result: its labels and its points (int64 ms timestamps, float64 values)."""

    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray


class QueryResult(NamedTuple):
    """The answer to a query, in the shapes of Prometheus's HTTP API.

    ``result_type`` is ``"vector"`` (``series`` with one point each, at the evaluation time),
    ``"matrix"`` (``series`` with the steps where each has a value), ``"scalar"`` (``scalar`` at
    ``time_ms``) or ``"string"``. Series are sorted by labels. ``time_ms`` is the evaluation time of
    an instant query and the end of a range query. ``warnings`` are the Querier's (e.g. a shard was
    unreachable and the answer may be partial).
    """

    result_type: str
    series: list[ResultSeries]
    scalar: float | None
    time_ms: int
    warnings: list[str]


class Engine:
    """Evaluates PromQL queries against a :class:`~model.storage.Querier`.

    ``lookback_delta_ms`` is how far back an instant selector looks for a series' latest sample
    (Prometheus's ``--query.lookback-delta``); ``timeout_ms`` bounds each query's evaluation.
    Errors: :class:`~model.errors.BadQueryError` for a malformed query or parameters (its subclass
    :class:`~querier.value.UnsupportedQueryError` for a feature not implemented yet),
    :class:`~model.errors.QueryExecutionError` for a query that cannot be evaluated, and
    :class:`~model.errors.QueryTimeoutError`.
    """

    def __init__(self, querier: Querier, *, lookback_delta_ms: int = 300_000, timeout_ms: int = 120_000) -> None:
        if lookback_delta_ms <= 0:
            raise ValueError(f"lookback_delta_ms must be positive, got {lookback_delta_ms}")
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        self._querier = querier
        self._lookback_delta_ms = lookback_delta_ms
        self._timeout_ms = timeout_ms

    def instant(self, query: str, time_ms: int) -> QueryResult:
        """Evaluate ``query`` at ``time_ms``: a vector, a scalar, or (for ``foo[5m]``) a matrix."""
        time_ms = int(time_ms)
        expr = _parse(query)
        inner = _unwrap_parens(expr)
        if isinstance(inner, promql_parser.SubqueryExpr):
            raise not_supported("a subquery as the result of an instant query")
        ctx = self._context(np.array([time_ms], dtype=I64))
        if isinstance(inner, promql_parser.MatrixSelector):
            return self._raw_samples(ctx, inner, time_ms)
        value = _evaluate(ctx, expr)
        if isinstance(value, Scalar):
            return QueryResult("scalar", [], float(value.values[0]), time_ms, ctx.warnings)
        assert isinstance(value, InstantVector), type(value)
        ts = np.array([time_ms], dtype=I64)
        if value.order is not None:
            rows = [r for r in value.order.tolist() if value.present[r, 0]]
        else:
            rows = sorted(np.flatnonzero(value.present[:, 0]).tolist(), key=value.labels.__getitem__)
        series = [ResultSeries(value.labels[r], ts, value.values[r, :1].copy()) for r in rows]
        return QueryResult("vector", series, None, time_ms, ctx.warnings)

    def _raw_samples(self, ctx: EvalContext, node: promql_parser.MatrixSelector, time_ms: int) -> QueryResult:
        """``foo[5m]`` as a whole instant query: the raw samples of the window, a matrix."""
        with np.errstate(all="ignore"):
            rv = eval_matrix_selector(ctx, node)
        lo, hi = int(rv.window_ends[0]) - rv.range_ms, int(rv.window_ends[0])
        series = []
        for lbls, ts, vals in zip(rv.labels, rv.timestamps, rv.values):
            keep = (ts >= lo) & (ts <= hi)
            if keep.any():
                series.append(ResultSeries(lbls, ts[keep], vals[keep]))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series, None, time_ms, ctx.warnings)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> QueryResult:
        """Evaluate ``query`` at ``start_ms``, ``start_ms + step_ms``, ... up to ``end_ms``: a matrix.

        The parameters are checked as Prometheus's API does: ``end >= start``, ``step > 0``, and at
        most 11,000 steps after the first.
        """
        start_ms, end_ms, step_ms = int(start_ms), int(end_ms), int(step_ms)
        if end_ms < start_ms:
            raise BadQueryError("end timestamp must not be before start time")
        if step_ms <= 0:
            raise BadQueryError(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
            )
        if (end_ms - start_ms) // step_ms > MAX_POINTS_PER_SERIES:
            raise BadQueryError(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        expr = _parse(query)
        if isinstance(_unwrap_parens(expr), (promql_parser.MatrixSelector, promql_parser.SubqueryExpr)):
            raise BadQueryError(
                'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
            )
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=I64)
        ctx = self._context(steps)
        value = _evaluate(ctx, expr)
        if isinstance(value, Scalar):
            series = [ResultSeries(EMPTY_LABELS, steps, value.values.astype(F64, copy=True))]
            return QueryResult("matrix", series, None, end_ms, ctx.warnings)
        assert isinstance(value, InstantVector), type(value)
        series = []
        for row, lbls in enumerate(value.labels):
            mask = value.present[row]
            if mask.any():
                series.append(ResultSeries(lbls, steps[mask], value.values[row][mask]))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series, None, end_ms, ctx.warnings)

    def _context(self, steps: np.ndarray) -> EvalContext:
        deadline = time.monotonic() + self._timeout_ms / 1000
        return EvalContext(self._querier, steps, self._lookback_delta_ms, deadline)


def _parse(query: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(query)
    except ValueError as exc:
        raise BadQueryError(str(exc)) from exc


def _evaluate(ctx: EvalContext, expr: promql_parser.Expr) -> Value:
    # PromQL arithmetic is IEEE arithmetic: overflow to Inf, Inf - Inf = NaN and x/0 are results,
    # not accidents, so numpy's warnings about them are noise.
    with np.errstate(all="ignore"):
        return _Evaluator(ctx).eval(expr)


def _unwrap_parens(node):
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


class _Evaluator:
    """Walks the AST, turning each node into a :mod:`querier.value` value over the whole grid."""

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx

    def eval(self, node) -> Value:
        self.ctx.check_deadline()
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            raise not_supported(_describe(node))
        return method(node)

    def _eval_NumberLiteral(self, node: promql_parser.NumberLiteral) -> Value:
        return Scalar(np.full(self.ctx.n_steps, node.val, dtype=F64))

    def _eval_ParenExpr(self, node: promql_parser.ParenExpr) -> Value:
        return self.eval(node.expr)

    def _eval_UnaryExpr(self, node: promql_parser.UnaryExpr) -> Value:
        # The parser drops a unary plus, so a UnaryExpr is always a minus.
        operand = self.eval(node.expr)
        if isinstance(operand, Scalar):
            return Scalar(-operand.values)
        raise not_supported("unary minus on an instant vector")

    def _eval_VectorSelector(self, node: promql_parser.VectorSelector) -> Value:
        return eval_vector_selector(self.ctx, node)

    def _eval_MatrixSelector(self, node: promql_parser.MatrixSelector) -> Value:
        # Function arguments are evaluated in _eval_Call; a range vector anywhere else is only
        # possible as the whole query, which Engine handles before evaluating.
        raise not_supported("a range vector outside a function argument")

    def _eval_Call(self, node: promql_parser.Call) -> Value:
        name = node.func.name
        impl = FUNCTIONS.get(name)
        if impl is None:
            raise not_supported(f"function '{name}'")
        args = [self._eval_arg(arg) for arg in node.args]
        return impl(self.ctx, args)

    def _eval_arg(self, node) -> Value:
        # Prometheus unwraps parentheses around a function's range-vector argument:
        # ``rate((foo[5m]))`` is ``rate(foo[5m])``.
        inner = _unwrap_parens(node)
        if isinstance(inner, promql_parser.MatrixSelector):
            return eval_matrix_selector(self.ctx, inner)
        return self.eval(node)

    def _eval_AggregateExpr(self, node: promql_parser.AggregateExpr) -> Value:
        op = str(node.op).lower()
        if op not in AGGREGATIONS:
            raise not_supported(f"aggregation '{op}'")
        vector = self.eval(node.expr)
        assert isinstance(vector, InstantVector), type(vector)
        modifier = node.modifier
        if modifier is None:
            grouping, without = [], False
        else:
            grouping = list(modifier.labels)
            without = modifier.type == promql_parser.AggModifierType.Without
        return aggregate(self.ctx, op, vector, grouping, without)


def _describe(node) -> str:
    """A name for an AST node the engine cannot evaluate, for the "not supported yet" error."""
    if isinstance(node, promql_parser.BinaryExpr):
        return f"binary operator '{node.op}'"
    if isinstance(node, promql_parser.SubqueryExpr):
        return "subquery"
    if isinstance(node, promql_parser.StringLiteral):
        return "string literal"
    return f"expression type {type(node).__name__}"


__all__ = ["Engine", "QueryResult", "ResultSeries"]
