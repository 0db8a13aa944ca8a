"""Which aggregations the engine pushes down to the shards, and how it asks for them.

With ``querier.aggregation_pushdown`` (the engine's ``aggregation_pushdown``) and a Querier that computes
partial aggregates (the fan-out's ``aggregate``), an aggregation of
:data:`~shardmon.model.promql.pushdown.PUSHDOWN_OPS` whose argument is a vector selector, or one of
:data:`~shardmon.model.promql.pushdown.PUSHDOWN_FUNCTIONS` of a range selector, is computed by the shards
and merged (:mod:`shardmon.model.promql.pushdown`) instead of fetching the series. Not pushed down, so
evaluated as before:

- ``topk``, ``bottomk`` and ``count_values`` inside a larger expression (their rows' order could matter
  to it);
- a range function that drops the metric name over a selector without a ``__name__`` equality: two
  series of different names on different shards could end with the same labels, an error only the whole
  set shows;
- an answer the merge cannot make exact (``topk``/``bottomk`` ties on some shards only or between shards;
  replicas: see the fan-out's ``aggregate``).

An instant selector, and a range function of :data:`~shardmon.model.promql.pushdown.PUSHDOWN_FUNCTIONS` outside a
pushed-down aggregation (the whole query, or inside an operator), are pushed down too (:func:`rows_spec`): the
shards compute the value per series at every step and the querier puts their rows in label order, as the
selector would have (a function: on the same condition, a ``__name__`` equality unless ``last_over_time``). So an
instant query of a selector moves a value per series rather than its last five minutes of samples.
``timestamp()``'s selector is not (it needs the samples' times).
"""

from __future__ import annotations

import numpy as np
import promql_parser

from shardmon.model.labels import METRIC_NAME, MatchType, labels_of
from shardmon.model.promql.pushdown import (
    PUSHDOWN_FUNCTIONS,
    PUSHDOWN_OPS,
    ROWS,
    WHOLE_QUERY_OPS,
    AggregateSpec,
    merge_partials,
)
from shardmon.model.promql.value import EvalContext, InstantVector, duration_ms
from shardmon.querier import metrics
from shardmon.querier.promql.selector import evaluation_times, selector_matchers


def _unwrap(node):
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def pushdown_spec(ctx: EvalContext, node: promql_parser.AggregateExpr, op: str, grouping: list[str], without: bool,
                  param: np.ndarray | str | None, whole_query: bool) -> AggregateSpec | None:
    """The push-down of this aggregation, or None when it is evaluated from the series."""
    if not ctx.aggregation_pushdown or op not in PUSHDOWN_OPS or getattr(ctx.querier, "aggregate", None) is None:
        return None
    if op in WHOLE_QUERY_OPS and not whole_query:
        return None
    arg = _unwrap(node.expr)
    function, range_ms = "", 0
    if isinstance(arg, promql_parser.Call):
        function = arg.func.name
        if function not in PUSHDOWN_FUNCTIONS or len(arg.args) != 1:
            return None
        inner = _unwrap(arg.args[0])
        if not isinstance(inner, promql_parser.MatrixSelector):
            return None
        range_ms = duration_ms(inner.range)
        vs = inner.vector_selector
    elif isinstance(arg, promql_parser.VectorSelector):
        vs = arg
    else:
        return None
    matchers = selector_matchers(vs)
    one_name = any(m.name == METRIC_NAME and m.type is MatchType.EQ for m in matchers)
    if function and function != "last_over_time" and not one_name:
        return None
    times = evaluation_times(ctx, vs.at, vs.offset)
    start = int(times[0]) - (range_ms if function else ctx.lookback_delta_ms)
    return AggregateSpec(tuple(matchers), start, int(times[-1]), times, op, tuple(grouping), without, function,
                         range_ms, ctx.lookback_delta_ms, one_name,
                         param if isinstance(param, np.ndarray) else None,
                         param if isinstance(param, str) else "")


def rows_spec(ctx: EvalContext, node: promql_parser.Call | promql_parser.VectorSelector) -> AggregateSpec | None:
    """The push-down of an instant selector, or of a range function outside any pushed-down aggregation
    (``avg_over_time(x[5m])``): the shards evaluate it over their series and send its rows
    (:data:`~shardmon.model.promql.pushdown.ROWS`); None when it is evaluated from the series here."""
    if not ctx.aggregation_pushdown or getattr(ctx.querier, "aggregate", None) is None:
        return None
    if isinstance(node, promql_parser.VectorSelector):
        times = evaluation_times(ctx, node.at, node.offset)
        return AggregateSpec(tuple(selector_matchers(node)), int(times[0]) - ctx.lookback_delta_ms, int(times[-1]),
                             times, ROWS, lookback_ms=ctx.lookback_delta_ms)
    if node.func.name not in PUSHDOWN_FUNCTIONS or len(node.args) != 1:
        return None
    inner = _unwrap(node.args[0])
    if not isinstance(inner, promql_parser.MatrixSelector):
        return None
    vs = inner.vector_selector
    matchers = selector_matchers(vs)
    one_name = any(m.name == METRIC_NAME and m.type is MatchType.EQ for m in matchers)
    # Rows of several shards must not end with equal labels once the name is dropped (see the module docstring).
    if node.func.name != "last_over_time" and not one_name:
        return None
    range_ms = duration_ms(inner.range)
    times = evaluation_times(ctx, vs.at, vs.offset)
    return AggregateSpec(tuple(matchers), int(times[0]) - range_ms, int(times[-1]), times, ROWS, (), False,
                         node.func.name, range_ms, ctx.lookback_delta_ms, one_name)


def pushed_down(ctx: EvalContext, spec: AggregateSpec) -> InstantVector | None:
    """The aggregation (or the rows) merged from the shards' partials, or None where the exact path must answer."""
    ctx.check_deadline()
    answer = ctx.querier.aggregate(spec, budget=ctx.budget)  # type: ignore[attr-defined]
    if answer is None:
        return None
    partials, warnings, partial = answer
    with np.errstate(all="ignore"):
        vector = merge_partials(spec, ctx, partials, labels_of)
    if vector is None:  # topk/bottomk ties; rows too large for one answer, or of one series on several shards
        outcome = "ties" if spec.op != ROWS else "too_large" if any(p.ties for p in partials) else "replicated"
        metrics.PUSHDOWN.labels(outcome).inc()
        return None
    metrics.PUSHDOWN.labels("rows" if spec.op == ROWS else "pushed").inc()
    ctx.note(warnings, partial)
    return vector


__all__ = ["pushdown_spec", "pushed_down", "rows_spec"]
