"""The PromQL engine: parses a query, evaluates it over a step grid, returns Prometheus-shaped results.

A query is evaluated for all its steps at once (see :mod:`shardmon.model.promql.value`): an instant query is a
range query with one step. Data is read through a :class:`~shardmon.model.storage.Querier`, once per
selector, for the whole time span the selector needs.

All of Prometheus 2.53's PromQL: selectors (all matcher types, ``offset``, ``@`` with
``start()``/``end()``), subqueries, every binary operator with vector matching, every aggregation
and every function, on floats and on native histograms (``functions_hist.py``, ``binary_hist.py``), the
experimental functions behind ``querier.enable_experimental_functions``; Prometheus 3's additions are
rejected with a :class:`~shardmon.model.promql.value.UnsupportedQueryError`, "... not supported yet", never
answered wrongly. The semantics are Prometheus 2.53's (lookback window and range windows closed at both
ends); Prometheus's own test scripts all pass (``shardmon promqltest``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import promql_parser

from shardmon.model.errors import BadQueryError
from shardmon.model.labels import EMPTY_LABELS, Labels
from shardmon.model.promql.aggregation import AGGREGATIONS, SCALAR_PARAMETER, aggregate
from shardmon.model.promql.ranking import check_k
from shardmon.model.promql.value import (
    EvalContext,
    InstantVector,
    RangeVector,
    Scalar,
    Value,
    duration_ms,
    not_supported,
)
from shardmon.model.samples import F64, I64
from shardmon.model.storage import Querier, QueryBudget, SeriesColumns
from shardmon.querier.promql.binary import binary_op, negate, vector_matching
from shardmon.querier.promql.binary_hist import aggregate_with_histograms
from shardmon.querier.promql.experimental import check_experimental
from shardmon.querier.promql.functions import FUNCTIONS, note_pushed_non_counter
from shardmon.querier.promql.functions_hist import call_with_histograms, has_histograms
from shardmon.querier.promql.guard import DEFAULT_MAX_QUERY_DEPTH, DEFAULT_MAX_QUERY_LENGTH, QueryGuard
from shardmon.querier.promql.histogram import note_invalid_quantile
from shardmon.querier.promql.pushdown import pushdown_spec, pushed_down, rows_spec
from shardmon.querier.promql.selector import eval_matrix_selector, eval_vector_selector, evaluation_times

#: Prometheus's HTTP API limit on the points of one series in a range query.
MAX_POINTS_PER_SERIES = 11_000
#: Annotations (warnings and infos) an API answer lists before "<n> more annotations omitted", as Prometheus.
MAX_ANNOTATIONS = 10
#: Query texts whose parsed trees an engine keeps.
_PARSED_TEXTS = 4096

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
    """One series of a result: its labels and its points (int64 ms timestamps, float64 values).

    ``histograms``: None when every point is a float; else an object array parallel to ``values``, a native
    :class:`~shardmon.model.histogram.Histogram` where the point is one (its ``values`` entry NaN), None where
    it is a float.
    """

    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray
    histograms: np.ndarray | None = None


def _hists(row: np.ndarray | None) -> np.ndarray | None:
    """A result series' histograms, None when it has none."""
    if row is None or not (row != None).any():  # noqa: E711 - elementwise
        return None
    return row


class QueryResult(NamedTuple):
    """The answer to a query, in the shapes of Prometheus's HTTP API.

    ``result_type`` is ``"vector"`` (``series`` with one point each, at the evaluation time),
    ``"matrix"`` (``series`` with the steps where each has a value), ``"scalar"`` (``scalar`` at
    ``time_ms``) or ``"string"``. Series are sorted by labels. ``time_ms`` is the evaluation time of
    an instant query and the end of a range query. ``warnings`` are the Querier's (e.g. a shard was
    unreachable) and the engine's warning annotations (``PromQL warning: ...``); ``partial`` says the
    result may lack the series of a shard that did not answer (HTTP ``isPartial``, gRPC ``is_partial``);
    ``infos`` are the engine's info annotations (``PromQL info: ...``, Prometheus 2.53), which both APIs
    list after the warnings (:meth:`annotations`), as Prometheus 2.53's ``warnings`` does.
    """

    result_type: str
    series: list[ResultSeries]
    scalar: float | None
    time_ms: int
    warnings: list[str]
    partial: bool = False
    infos: Sequence[str] = ()

    def annotations(self, limit: int = MAX_ANNOTATIONS) -> list[str]:
        """Warnings then infos, as Prometheus 2.53's API lists them (``AsStrings(query, 10)``): at most
        ``limit``, then ``"<n> more annotations omitted"``."""
        every = [*self.warnings, *self.infos]
        if limit > 0 and len(every) > limit:
            return every[:limit] + [f"{len(every) - limit} more annotations omitted"]
        return every


class Engine:
    """Evaluates PromQL queries against a :class:`~shardmon.model.storage.Querier`.

    ``lookback_delta_ms`` is how far back an instant selector looks for a series' latest sample
    (Prometheus's ``--query.lookback-delta``); ``timeout_ms`` bounds each query's evaluation;
    ``subquery_step_ms`` is the step of a subquery that names none (``x[1h:]``), Prometheus's global
    ``evaluation_interval``; ``max_samples`` and ``max_series`` bound what one query may load (see
    :class:`~shardmon.model.storage.QueryBudget`), ``max_query_length`` and ``max_query_depth`` its text (see
    :mod:`shardmon.querier.promql.guard`); ``experimental_functions`` lets Prometheus 2.53's experimental
    functions parse (``querier.enable_experimental_functions``; :mod:`shardmon.querier.promql.experimental`).

    Each query runs on a :class:`~shardmon.model.storage.QueryBudget` (:meth:`new_budget`); a caller that
    passes its own can cancel the query from another thread, and evaluation stops at its next check.
    Errors: :class:`~shardmon.model.errors.BadQueryError` for a malformed query or parameters (its subclass
    :class:`~shardmon.model.promql.value.UnsupportedQueryError` for a feature not implemented yet),
    :class:`~shardmon.model.errors.QueryExecutionError` for a query that cannot be evaluated (its subclass
    :class:`~shardmon.model.errors.QueryLimitError` over a limit), :class:`~shardmon.model.errors.QueryTimeoutError`,
    :class:`~shardmon.model.errors.QueryCanceledError`, and :class:`~shardmon.model.errors.QueryUnavailableError`
    from the Querier.
    """

    def __init__(
        self,
        querier: Querier,
        *,
        lookback_delta_ms: int = 300_000,
        timeout_ms: int = 120_000,
        subquery_step_ms: int = 60_000,
        max_samples: int = 50_000_000,
        max_series: int = 1_000_000,
        max_query_length: int = DEFAULT_MAX_QUERY_LENGTH,
        max_query_depth: int = DEFAULT_MAX_QUERY_DEPTH,
        aggregation_pushdown: bool = True,
        experimental_functions: bool = False,
    ) -> None:
        if lookback_delta_ms <= 0:
            raise ValueError(f"lookback_delta_ms must be positive, got {lookback_delta_ms}")
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        if subquery_step_ms <= 0:
            raise ValueError(f"subquery_step_ms must be positive, got {subquery_step_ms}")
        self._querier = querier
        self._lookback_delta_ms = lookback_delta_ms
        self._timeout_ms = timeout_ms
        self._max_samples = max_samples
        self._max_series = max_series
        self._subquery_step_ms = subquery_step_ms
        #: Aggregations the shards can compute are pushed down to them (see :mod:`shardmon.querier.promql.pushdown`),
        #: when the Querier computes partial aggregates.
        self.aggregation_pushdown = aggregation_pushdown
        #: Prometheus's experimental functions (``querier.enable_experimental_functions``) parse; without it
        #: they are a parse error, as Prometheus without ``--enable-feature=promql-experimental-functions``.
        self.experimental_functions = experimental_functions
        #: The limits every query text passes before it is parsed.
        self.guard = QueryGuard(max_query_length, max_query_depth)
        # The same texts come again and again (rules every interval, dashboards): each is checked and
        # parsed once. A refused text raises, which is never cached (and is counted each time).
        self._parse = functools.lru_cache(maxsize=_PARSED_TEXTS)(self.guard.parse)

    @property
    def querier(self) -> Querier:
        """Where this engine reads samples from."""
        return self._querier

    @property
    def lookback_delta_ms(self) -> int:
        """How far back an instant selector looks (``--query.lookback-delta``)."""
        return self._lookback_delta_ms

    def parse(self, query: str) -> promql_parser.Expr:
        """``query`` checked by :attr:`guard` and parsed (cached per text; the tree is only read); an
        experimental function is a parse error unless :attr:`experimental_functions`."""
        expr = self._parse(query)
        if not self.experimental_functions:
            check_experimental(query, expr)
        return expr

    def with_querier(self, querier: Querier) -> Engine:
        """This engine (same limits, same parse cache) reading from ``querier`` instead."""
        other = copy.copy(self)
        other._querier = querier
        return other

    def new_budget(self, timeout_ms: int | None = None) -> QueryBudget:
        """A budget for one query: the engine's limits, and ``timeout_ms`` capped by the engine's
        timeout (as Prometheus caps the API's ``timeout`` by ``--query.timeout``)."""
        timeout_ms = self._timeout_ms if not timeout_ms or timeout_ms <= 0 else min(timeout_ms, self._timeout_ms)
        return QueryBudget(max_series=self._max_series, max_samples=self._max_samples, timeout_s=timeout_ms / 1000)

    def instant(self, query: str, time_ms: int, *, budget: QueryBudget | None = None) -> QueryResult:
        """Evaluate ``query`` at ``time_ms``: a vector, a scalar, or (for ``foo[5m]``) a matrix."""
        time_ms = int(time_ms)
        expr = self.parse(query)
        inner = _unwrap_parens(expr)
        ctx = self._context(np.array([time_ms], dtype=I64), time_ms, time_ms, budget)
        if isinstance(inner, (promql_parser.MatrixSelector, promql_parser.SubqueryExpr)):
            return self._raw_samples(ctx, inner, time_ms)
        value = _evaluate(ctx, expr)
        if isinstance(value, str):
            return QueryResult("string", [], value, time_ms, ctx.warnings, ctx.partial, ctx.infos)
        if isinstance(value, Scalar):
            return QueryResult("scalar", [], float(value.values[0]), time_ms, ctx.warnings, ctx.partial, ctx.infos)
        assert isinstance(value, InstantVector), type(value)
        ts = np.array([time_ms], dtype=I64)
        if value.order is not None:
            rows = [r for r in value.order.tolist() if value.present[r, 0]]
        else:
            rows = sorted(np.flatnonzero(value.present[:, 0]).tolist(), key=value.labels.__getitem__)
        column = value.values[:, 0].copy()  # One copy; each series' value is a view of it.
        if value.histograms is None:
            series = [ResultSeries(value.labels[r], ts, column[r:r + 1]) for r in rows]
        else:
            hcol = value.histograms[:, 0]
            series = [ResultSeries(value.labels[r], ts, column[r:r + 1], _hists(hcol[r:r + 1])) for r in rows]
        return QueryResult("vector", series, None, time_ms, ctx.warnings, ctx.partial, ctx.infos)

    def _raw_samples(
        self, ctx: EvalContext, node: promql_parser.MatrixSelector | promql_parser.SubqueryExpr, time_ms: int
    ) -> QueryResult:
        """``foo[5m]`` (or a subquery) as a whole instant query: the samples of the window, a matrix.

        A subquery's samples are its points, at the times of its own grid.
        """
        rv = _evaluate(ctx, node)
        assert isinstance(rv, RangeVector), type(rv)
        lo, hi = int(rv.window_ends[0]) - rv.range_ms, int(rv.window_ends[0])
        series = []
        bounds = rv.offsets.tolist()
        for i, (lbls, ts, vals) in enumerate(rv.series()):
            keep = (ts >= lo) & (ts <= hi)
            if keep.any():
                hists = None if rv.histograms is None else _hists(rv.histograms[bounds[i]:bounds[i + 1]][keep])
                series.append(ResultSeries(lbls, ts[keep], vals[keep], hists))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series, None, time_ms, ctx.warnings, ctx.partial, ctx.infos)

    def range(
        self, query: str, start_ms: int, end_ms: int, step_ms: int, *, budget: QueryBudget | None = None
    ) -> QueryResult:
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
        expr = self.parse(query)
        if isinstance(_unwrap_parens(expr), (promql_parser.MatrixSelector, promql_parser.SubqueryExpr)):
            raise BadQueryError(
                'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
            )
        if isinstance(_unwrap_parens(expr), promql_parser.StringLiteral):
            raise BadQueryError('invalid expression type "string" for range query, must be Scalar or instant Vector')
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=I64)
        ctx = self._context(steps, start_ms, end_ms, budget)
        value = _evaluate(ctx, expr)
        if isinstance(value, Scalar):
            series = [ResultSeries(EMPTY_LABELS, steps, value.values.astype(F64, copy=True))]
            return QueryResult("matrix", series, None, end_ms, ctx.warnings, ctx.partial, ctx.infos)
        assert isinstance(value, InstantVector), type(value)
        # Rows present at every step (the common case) keep the step array and a view of their row; the
        # others are cut by their mask.
        present, values, labels, hists = value.present, value.values, value.labels, value.histograms
        full = present.all(axis=1).tolist()
        series = []
        for i, row in enumerate(np.flatnonzero(present.any(axis=1)).tolist()):
            if i % 4096 == 4095:
                ctx.check_deadline()
            if full[row]:
                series.append(ResultSeries(labels[row], steps, values[row], None if hists is None else _hists(hists[row])))
            else:
                mask = present[row]
                series.append(ResultSeries(labels[row], steps[mask], values[row][mask],
                                           None if hists is None else _hists(hists[row][mask])))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series, None, end_ms, ctx.warnings, ctx.partial, ctx.infos)

    def _context(self, steps: np.ndarray, start_ms: int, end_ms: int, budget: QueryBudget | None) -> EvalContext:
        return EvalContext(
            self._querier,
            steps,
            self._lookback_delta_ms,
            budget if budget is not None else self.new_budget(),
            query_start_ms=start_ms,
            query_end_ms=end_ms,
            subquery_step_ms=self._subquery_step_ms,
            aggregation_pushdown=self.aggregation_pushdown,
        )


def _evaluate(ctx: EvalContext, expr: promql_parser.Expr) -> Value:
    # PromQL arithmetic is IEEE arithmetic: overflow to Inf, Inf - Inf = NaN and x/0 are results,
    # not accidents, so numpy's warnings about them are noise.
    with np.errstate(all="ignore"):
        try:
            return _Evaluator(ctx, _unwrap_parens(expr)).eval(expr)
        except RecursionError:
            # Only if querier.max_query_depth was raised past what this Python's recursion limit allows.
            raise BadQueryError("the query is nested too deeply to evaluate (lower querier.max_query_depth)") from None


def _unwrap_parens(node):
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


class _Evaluator:
    """Walks the AST, turning each node into a :mod:`shardmon.model.promql.value` value over the whole grid."""

    def __init__(self, ctx: EvalContext, whole_query=None) -> None:
        self.ctx = ctx
        #: The node that is the whole query (parentheses aside), if this walk is the query's own.
        self.whole_query = whole_query

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

    def _eval_StringLiteral(self, node: promql_parser.StringLiteral) -> str:
        # A string is only ever a function argument or the whole query: it is its Python str.
        return node.val

    def _eval_UnaryExpr(self, node: promql_parser.UnaryExpr) -> Value:
        # The parser drops a unary plus, so a UnaryExpr is always a minus.
        operand = self.eval(node.expr)
        if isinstance(operand, Scalar):
            return Scalar(-operand.values)
        assert isinstance(operand, InstantVector), type(operand)
        return negate(operand)

    def _eval_BinaryExpr(self, node: promql_parser.BinaryExpr) -> Value:
        op = str(node.op).lower()
        matching = vector_matching(op, node.modifier)
        return_bool = node.modifier is not None and bool(node.modifier.return_bool)
        # Both sides are evaluated first, left then right, as in Prometheus.
        lhs = self.eval(node.lhs)
        rhs = self.eval(node.rhs)
        return binary_op(self.ctx, op, lhs, rhs, matching, return_bool)

    def _eval_VectorSelector(self, node: promql_parser.VectorSelector) -> Value:
        spec = rows_spec(self.ctx, node)
        if spec is not None:  # The shards pick the samples (see querier/promql/pushdown.py).
            rows = pushed_down(self.ctx, spec)
            if rows is not None:
                return rows
        return eval_vector_selector(self.ctx, node)

    def _eval_MatrixSelector(self, node: promql_parser.MatrixSelector) -> Value:
        # The parser allows a range vector only as a function argument or as the whole query.
        return eval_matrix_selector(self.ctx, node)

    def _eval_SubqueryExpr(self, node: promql_parser.SubqueryExpr) -> Value:
        """``expr[range:step]``: ``expr`` evaluated over a grid of its own, as a range vector.

        As Prometheus 2.x: the inner grid is the multiples of the step (the subquery's, else the
        engine's default) from the first at or after the earliest window start to the latest window
        end. Each outer step's window is ``[t - range, t]``, both ends included, ``t`` being the step
        (or the ``@`` time) minus the offset; so a window holds the grid's points inside it.
        """
        ctx = self.ctx
        range_ms = duration_ms(node.range)
        step_ms = duration_ms(node.step) if node.step is not None else ctx.subquery_step_ms
        ends = evaluation_times(ctx, node.at, node.offset)
        first = -(-(int(ends[0]) - range_ms) // step_ms) * step_ms  # Rounded up to a multiple.
        n_inner = max(0, (int(ends[-1]) - first) // step_ms + 1)
        if n_inner == 0:
            return RangeVector(*SeriesColumns.of_arrays([], [], [])[:4], ends, range_ms)
        # The inner grid costs a point per step, charged before it is built; each selector inside
        # charges its [series, steps] cells on it in turn (Prometheus counts a subquery's points).
        ctx.charge_points(n_inner)
        inner_steps = first + step_ms * np.arange(n_inner, dtype=I64)
        inner = _Evaluator(dataclasses.replace(ctx, steps=inner_steps)).eval(node.expr)
        assert isinstance(inner, InstantVector), type(inner)
        labels, timestamps, values, hists = _series_points(ctx, inner, inner_steps)
        # As a range selector's series: each is a row of the [series, steps] matrices of the function
        # that takes this range vector, over the outer grid.
        ctx.charge_points(len(labels) * ctx.n_steps)
        rv = RangeVector(*SeriesColumns.of_arrays(labels, timestamps, values)[:4], ends, range_ms)
        if hists:
            rv = rv._replace(histograms=_hists(np.concatenate(hists)))
        return rv

    def _eval_Call(self, node: promql_parser.Call) -> Value:
        name = node.func.name
        impl = FUNCTIONS.get(name)
        if impl is None:
            raise not_supported(f"function '{name}'")
        spec = rows_spec(self.ctx, node)
        if spec is not None:  # The shards evaluate it over their series (see querier/promql/pushdown.py).
            rows = pushed_down(self.ctx, spec)
            if rows is not None:
                note_pushed_non_counter(self.ctx, node, rows)
                return rows
        # timestamp() of a selector is the time of each sample it picks, not the step's (Prometheus
        # special-cases it), so the selector must keep those times.
        sample_times = name == "timestamp"
        args = [self._eval_arg(arg, sample_times=sample_times) for arg in node.args]
        # promql-parser lets a literal 0 through where an instant vector is due (ln(0), log2(0)): refuse
        # it as Prometheus's parser does.
        wanted = node.func.arg_types
        for i, value in enumerate(args):
            if isinstance(value, Scalar) and wanted and wanted[min(i, len(wanted) - 1)] == promql_parser.ValueType.Vector:
                raise BadQueryError(f"expected type vector in call to function '{name}', got scalar")
        if has_histograms(args):  # Native histograms: each function as 2.53 treats them.
            return call_with_histograms(self.ctx, name, impl, args, node.args)
        # Functions also get the argument expressions: absent() takes labels from its selector.
        return impl(self.ctx, args, node.args)

    def _eval_arg(self, node, *, sample_times: bool = False) -> Value | str:
        # Prometheus unwraps parentheses around a function's range-vector argument:
        # ``rate((foo[5m]))`` is ``rate(foo[5m])``; likewise for timestamp()'s selector.
        inner = _unwrap_parens(node)
        if isinstance(inner, promql_parser.MatrixSelector):
            return eval_matrix_selector(self.ctx, inner)
        if sample_times and isinstance(inner, promql_parser.VectorSelector):
            return eval_vector_selector(self.ctx, inner, sample_times=True)
        return self.eval(node)

    def _eval_AggregateExpr(self, node: promql_parser.AggregateExpr) -> Value:
        op = str(node.op).lower()
        if op not in AGGREGATIONS:
            raise not_supported(f"aggregation '{op}'")
        param: np.ndarray | str | None = None
        if op == "count_values":
            # The parser has checked that the parameter is a string literal (maybe in parentheses).
            param = _unwrap_parens(node.param).val
        elif op in SCALAR_PARAMETER:
            # A scalar expression, evaluated before the vector as in Prometheus, one value per step.
            scalar = self.eval(node.param)
            assert isinstance(scalar, Scalar), type(scalar)
            param = scalar.values
            if op == "quantile":
                note_invalid_quantile(self.ctx, param)  # Prometheus 2.53's warning.
        modifier = node.modifier
        if modifier is None:
            grouping, without = [], False
        else:
            grouping = list(modifier.labels)
            without = modifier.type == promql_parser.AggModifierType.Without
        spec = pushdown_spec(self.ctx, node, op, grouping, without, param, self.whole_query is node)
        if spec is not None:
            if op in ("topk", "bottomk"):
                check_k(spec.param)  # An overflowing k fails before the shards are asked.
            merged = pushed_down(self.ctx, spec)
            if merged is not None:
                note_pushed_non_counter(self.ctx, _unwrap_parens(node.expr), merged)
                return merged
        vector = self.eval(node.expr)
        assert isinstance(vector, InstantVector), type(vector)
        if vector.histograms is not None:
            return aggregate_with_histograms(self.ctx, op, vector, grouping, without, param)
        return aggregate(self.ctx, op, vector, grouping, without, param)


def _series_points(ctx: EvalContext, vector: InstantVector, steps: np.ndarray) -> tuple[list[Labels], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per series with any value, its points (step times, values and histograms: empty when the vector has
    none); rows with equal labels join.

    Rows may share labels when their values fall on different steps; Prometheus's evaluator
    collects those into one series.
    """
    rows_of: dict[Labels, list[int]] = {}
    for row in np.flatnonzero(vector.present.any(axis=1)).tolist():
        rows_of.setdefault(vector.labels[row], []).append(row)
    labels, timestamps, values, hists = [], [], [], []
    for i, (lbls, rows) in enumerate(rows_of.items()):
        if i % 4096 == 4095:
            ctx.check_deadline()
        present = vector.present[rows]
        mask = present.any(axis=0)
        # The value of the (single) row present at each step.
        which = present.argmax(axis=0), np.arange(steps.shape[0])
        picked = vector.values[rows][which]
        labels.append(lbls)
        timestamps.append(steps[mask])
        values.append(picked[mask])
        if vector.histograms is not None:
            hists.append(vector.histograms[rows][which][mask])
    return labels, timestamps, values, hists


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
