"""Vector selectors: from the parser's selector to matchers, one fetch, and values over the grid.

An instant selector takes, at each step, a series' latest sample in ``[t - lookback, t]`` (both ends
inclusive, ``t`` the step time minus the offset), unless that sample is a staleness marker, which
ends the series. A range selector keeps every sample of ``[t - range, t]`` (both ends inclusive, as
Prometheus 2.x) except staleness markers. Each selector fetches once, for the whole grid.

With ``@ t`` the selector looks at ``t`` minus the offset at every step; ``@ start()`` and
``@ end()`` are the query's start and end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import numpy as np
import promql_parser

from shardmon.model.errors import BadQueryError
from shardmon.model.labels import METRIC_NAME, Matcher, MatchType
from shardmon.model.promql.selection import instant_selection, range_selection
from shardmon.model.promql.value import EvalContext, InstantVector, RangeVector, duration_ms, not_supported
from shardmon.model.samples import I64

_MATCH_TYPES = (
    (promql_parser.MatchOp.Equal, MatchType.EQ),
    (promql_parser.MatchOp.NotEqual, MatchType.NEQ),
    (promql_parser.MatchOp.Re, MatchType.RE),
    (promql_parser.MatchOp.NotRe, MatchType.NRE),
)

_MAX_INT64 = 2**63 - 1


def selector_matchers(vs: promql_parser.VectorSelector) -> list[Matcher]:
    """The matchers of a selector: the metric name as a ``__name__`` equality, then the braces' matchers."""
    if vs.matchers.or_matchers:
        raise not_supported("'or' between matchers in a selector")
    matchers = []
    if vs.name:
        matchers.append(Matcher(MatchType.EQ, METRIC_NAME, vs.name))
    for m in vs.matchers.matchers:
        match_type = next(t for op, t in _MATCH_TYPES if m.op == op)
        try:
            matchers.append(Matcher.parse_op(match_type.value, m.name, m.value))
        except ValueError as exc:
            raise BadQueryError(str(exc)) from exc
    return matchers


def at_time_ms(ctx: EvalContext, at: promql_parser.AtModifier | None) -> int | None:
    """The time (ms) an ``@`` modifier pins a selector or subquery to, or None without one.

    ``@ start()`` and ``@ end()`` are the whole query's start and end, inside subqueries too.
    """
    if at is None:
        return None
    if at.type == promql_parser.AtModifierType.Start:
        return ctx.query_start_ms if ctx.query_start_ms is not None else int(ctx.steps[0])
    if at.type == promql_parser.AtModifierType.End:
        return ctx.query_end_ms if ctx.query_end_ms is not None else int(ctx.steps[-1])
    # The parser keeps the time rounded to the millisecond, as Prometheus does, and prints it with
    # three decimals; its datetime form fails past the year 9999 and panics before 1970 (which the
    # text shows as 0), so the text is read, and a zero checked.
    seconds = Decimal(str(at).removeprefix("@").strip())
    ms = int(seconds * 1000)
    if ms == 0:
        try:
            at.at  # noqa: B018 - only to learn whether the time is before 1970.
        except BaseException as exc:  # pyo3's PanicException derives from BaseException.
            if type(exc).__name__ != "PanicException":
                raise
            raise not_supported("an @ time before 1970") from None
    if ms > _MAX_INT64:
        raise BadQueryError(f"timestamp out of bounds for @ modifier: {seconds}")
    return ms


def evaluation_times(
    ctx: EvalContext, at: promql_parser.AtModifier | None, offset: timedelta | None
) -> np.ndarray:
    """Per step, the time a selector or subquery looks at: the step (or its ``@`` time) minus the offset."""
    fixed = at_time_ms(ctx, at)
    base = ctx.steps if fixed is None else np.full(ctx.n_steps, fixed, dtype=I64)
    return base - duration_ms(offset)


def eval_vector_selector(
    ctx: EvalContext, vs: promql_parser.VectorSelector, *, sample_times: bool = False
) -> InstantVector:
    """Evaluate an instant vector selector at every step of the grid.

    With ``sample_times``, the result also holds the timestamp of each sample it picked
    (``sample_ms``), for ``timestamp()``.
    """
    matchers = selector_matchers(vs)
    refs = evaluation_times(ctx, vs.at, vs.offset)
    lookback = ctx.lookback_delta_ms
    # Each series becomes a row of [series, steps] matrices: charged per series, before they are built.
    labels, ts, vals, offsets, hists = ctx.select_columns(matchers, int(refs[0]) - lookback, int(refs[-1]),
                                                          points_per_series=ctx.n_steps)
    return instant_selection(labels, ts, vals, offsets, refs, lookback, sample_times=sample_times, hists=hists)


def eval_matrix_selector(ctx: EvalContext, ms: promql_parser.MatrixSelector) -> RangeVector:
    """Fetch the samples of a range vector selector for the whole grid (staleness markers dropped)."""
    vs = ms.vector_selector
    matchers = selector_matchers(vs)
    range_ms = duration_ms(ms.range)
    ends = evaluation_times(ctx, vs.at, vs.offset)
    # The function over this range vector makes each series a row of [series, steps] matrices (its
    # windows and its result): charged per series, as the selector's samples.
    labels, ts, vals, offsets, hists = ctx.select_columns(matchers, int(ends[0]) - range_ms, int(ends[-1]),
                                                          points_per_series=ctx.n_steps)
    one_name = any(m.name == METRIC_NAME and m.type is MatchType.EQ for m in matchers)
    return range_selection(labels, ts, vals, offsets, ends, range_ms, one_name, hists)


def operands(node: promql_parser.Expr) -> list[promql_parser.Expr]:
    """The expressions an operator, aggregation, function call or parenthesis applies to (a subquery's
    inner expression too); none for selectors and literals."""
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [n for n in (node.param, node.expr) if n is not None]
    if isinstance(node, promql_parser.Call):
        return [n for n in node.args if n is not None]
    return []


def instant_selects(expr: promql_parser.Expr, lookback_ms: int, ts_ms: int) -> Iterator[tuple[tuple[Matcher, ...], int, int]]:
    """The selects an instant evaluation of ``expr`` at ``ts_ms`` makes outside subqueries and ``@``
    selectors: matchers and window, as the functions below compute them (for a caller that reads them ahead)."""
    todo = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, promql_parser.MatrixSelector):
            vs = node.vector_selector
            if vs.at is None:
                end = ts_ms - duration_ms(vs.offset)
                yield tuple(selector_matchers(vs)), end - duration_ms(node.range), end
        elif isinstance(node, promql_parser.VectorSelector):
            if node.at is None:
                end = ts_ms - duration_ms(node.offset)
                yield tuple(selector_matchers(node)), end - lookback_ms, end
        elif not isinstance(node, promql_parser.SubqueryExpr):  # a subquery: its own grid, nothing ahead
            todo += operands(node)
