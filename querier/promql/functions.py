"""PromQL functions, as a table from name to implementation, and the functions of instant vectors.

An implementation receives the evaluation context, its evaluated arguments (a
:class:`~shardmon.model.promql.value.RangeVector` for a range-vector argument, a ``str`` for a string) and the
argument expressions as written (``absent`` takes labels from its argument's matchers), and returns
a value over the whole grid. A function missing from :data:`FUNCTIONS` is rejected as not supported
yet, so adding one is adding an entry. The functions of range vectors are in
:mod:`shardmon.model.promql.functions_range`, ``label_*`` in :mod:`shardmon.querier.promql.functions_label`,
``histogram_quantile`` in :mod:`shardmon.querier.promql.histogram`.

The semantics are Prometheus 2.53's (``promql/functions.go``): the math functions, ``clamp*``,
``round``, ``timestamp`` and the date functions of a vector drop ``__name__``; ``sort``,
``sort_desc``, ``sort_by_label*`` (:mod:`shardmon.querier.promql.sort_label`) and ``label_*`` keep it.
``rate`` and ``increase`` of a selector add 2.53's info annotation for a metric name that does not look
like a counter's. A function that drops it can leave two series with the same
labels: at one step that is an error, at different steps they are one series.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import promql_parser

from shardmon.model.labels import EMPTY_LABELS, METRIC_NAME, Labels, without_names
from shardmon.model.promql.annotations import looks_like_counter, possible_non_counter
from shardmon.model.promql.functions_range import RANGE_FUNCTIONS
from shardmon.model.promql.gosort import sort_sort
from shardmon.model.promql.value import EvalContext, InstantVector, RangeVector, Scalar, Value
from shardmon.model.promql.window import windows_of
from shardmon.model.samples import F64, I64
from shardmon.querier.promql.functions_hist import NATIVE_FUNCTIONS
from shardmon.querier.promql.functions_label import LABEL_FUNCTIONS
from shardmon.querier.promql.histogram import HISTOGRAM_FUNCTIONS
from shardmon.querier.promql.labelset import merge_same_labels
from shardmon.querier.promql.sort_label import sort_by_labels

#: An implementation: (context, evaluated arguments, argument expressions) -> value.
FunctionImpl = Callable[[EvalContext, Sequence[Value | str], Sequence[promql_parser.Expr]], Value]


def _without_name(vector: InstantVector, values: np.ndarray, present: np.ndarray | None = None) -> InstantVector:
    """``vector`` with new values (and presence), ``__name__`` dropped."""
    labels = without_names(vector.labels)
    return merge_same_labels(labels, values, vector.present if present is None else present)


# -- math ------------------------------------------------------------------------------------------


def _sgn(v: np.ndarray) -> np.ndarray:
    # 0, -0 and NaN are their own sign, as in Prometheus.
    return np.where(v < 0, -1.0, np.where(v > 0, 1.0, v))


_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "acos": np.arccos,
    "acosh": np.arccosh,
    "asin": np.arcsin,
    "asinh": np.arcsinh,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "deg": lambda v: v * 180 / np.pi,
    "exp": np.exp,
    "floor": np.floor,
    "ln": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "rad": lambda v: v * np.pi / 180,
    "sgn": _sgn,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "tan": np.tan,
    "tanh": np.tanh,
}


def _math_function(fn: Callable[[np.ndarray], np.ndarray]) -> FunctionImpl:
    def impl(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
        vector = args[0]
        return _without_name(vector, fn(vector.values))

    return impl


def go_max(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Go's ``math.Max``: +Inf wins even over NaN, then NaN wins, and +0 is above -0."""
    out = np.where(np.isnan(x) | np.isnan(y), np.nan, np.maximum(x, y))
    zeros = (x == 0) & (y == 0)
    out = np.where(zeros, np.where(np.signbit(x), y, x), out)
    return np.where(np.isposinf(x) | np.isposinf(y), np.inf, out)


def go_min(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Go's ``math.Min``: -Inf wins even over NaN, then NaN wins, and -0 is below +0."""
    out = np.where(np.isnan(x) | np.isnan(y), np.nan, np.minimum(x, y))
    zeros = (x == 0) & (y == 0)
    out = np.where(zeros, np.where(np.signbit(x), x, y), out)
    return np.where(np.isneginf(x) | np.isneginf(y), -np.inf, out)


def _clamp(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, low, high = args
    values = go_max(low.values, go_min(high.values, vector.values))
    # Where max < min, Prometheus returns nothing at that step.
    return _without_name(vector, values, vector.present & ~(high.values < low.values))


def _clamp_max(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, high = args
    return _without_name(vector, go_min(high.values, vector.values))


def _clamp_min(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, low = args
    return _without_name(vector, go_max(low.values, vector.values))


def _round(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector = args[0]
    to_nearest = args[1].values if len(args) > 1 else np.ones(vector.values.shape[1], dtype=F64)
    # As Prometheus: ties round up, and dividing by the inverse rounds better than multiplying.
    inverse = 1.0 / to_nearest
    return _without_name(vector, np.floor(vector.values * inverse + 0.5) / inverse)


# -- conversions and time --------------------------------------------------------------------------


def _scalar(ctx: EvalContext, args: Sequence, exprs: Sequence) -> Scalar:
    vector = args[0]
    if not vector.labels:
        return Scalar(np.full(ctx.n_steps, np.nan, dtype=F64))
    # The value of the one series that has one; NaN where there are none or several.
    single = vector.present.sum(axis=0) == 1
    values = vector.values[np.argmax(vector.present, axis=0), np.arange(ctx.n_steps)]
    return Scalar(np.where(single, values, np.nan))


def _vector(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    values = args[0].values.astype(F64, copy=True)[None, :]
    return InstantVector([EMPTY_LABELS], values, np.ones(values.shape, dtype=bool))


def _time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> Scalar:
    return Scalar(ctx.steps.astype(F64) / 1000)


def _pi(ctx: EvalContext, args: Sequence, exprs: Sequence) -> Scalar:
    return Scalar(np.full(ctx.n_steps, np.pi, dtype=F64))


def _timestamp(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    """The time of each sample: a selector's own sample times, else (as Prometheus) the step's."""
    vector = args[0]
    if vector.sample_ms is not None:
        times = vector.sample_ms
    else:
        times = np.broadcast_to(ctx.steps, vector.values.shape)
    return _without_name(vector, times.astype(F64) / 1000)


def _days_since_epoch(seconds: np.ndarray) -> np.ndarray:
    return np.floor_divide(seconds, 86_400).astype("datetime64[D]")


def _year(seconds: np.ndarray) -> np.ndarray:
    return _days_since_epoch(seconds).astype("datetime64[Y]").astype(I64) + 1970


def _month(seconds: np.ndarray) -> np.ndarray:
    return _days_since_epoch(seconds).astype("datetime64[M]").astype(I64) % 12 + 1


def _day_of_month(seconds: np.ndarray) -> np.ndarray:
    days = _days_since_epoch(seconds)
    return (days - days.astype("datetime64[M]")).astype(I64) + 1


def _day_of_year(seconds: np.ndarray) -> np.ndarray:
    days = _days_since_epoch(seconds)
    return (days - days.astype("datetime64[Y]")).astype(I64) + 1


def _days_in_month(seconds: np.ndarray) -> np.ndarray:
    month = _days_since_epoch(seconds).astype("datetime64[M]")
    return ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(I64)


def _day_of_week(seconds: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday; Sunday is 0.
    return (np.floor_divide(seconds, 86_400) + 4) % 7


def _hour(seconds: np.ndarray) -> np.ndarray:
    return seconds % 86_400 // 3600


def _minute(seconds: np.ndarray) -> np.ndarray:
    return seconds % 3600 // 60


_DATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "day_of_month": _day_of_month,
    "day_of_week": _day_of_week,
    "day_of_year": _day_of_year,
    "days_in_month": _days_in_month,
    "hour": _hour,
    "minute": _minute,
    "month": _month,
    "year": _year,
}

# Seconds beyond this (about 292 billion years) are no time Go can represent either.
_MAX_SECONDS = 2.0**62


def _date_function(fn: Callable[[np.ndarray], np.ndarray]) -> FunctionImpl:
    """A date function: of the step time without an argument, else of each value as Unix seconds (UTC)."""

    def impl(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
        if not args:
            # Go's integer division of the milliseconds truncates towards zero.
            ms = ctx.steps
            seconds = np.where(ms < 0, -(-ms // 1000), ms // 1000)
            values = fn(seconds).astype(F64)[None, :]
            return InstantVector([EMPTY_LABELS], values, np.ones(values.shape, dtype=bool))
        vector = args[0]
        # Go converts the value to whole seconds by truncation. A value that is no such time (NaN,
        # infinite, huge) gives NaN here; Go's answer for it depends on the CPU.
        usable = np.abs(vector.values) < _MAX_SECONDS
        seconds = np.trunc(np.where(usable, vector.values, 0.0)).astype(I64)
        values = np.where(usable, fn(seconds).astype(F64), np.nan)
        return _without_name(vector, values)

    return impl


# -- order and absence -----------------------------------------------------------------------------


def _sorted(vector: InstantVector, *, descending: bool) -> InstantVector:
    """``vector`` with, for an instant query, the order of its rows by value, NaN last, as Prometheus.

    Prometheus sorts the series (in label order, as a selector gives them) with Go's unstable
    ``sort.Sort``, by a comparison that puts NaN above everything, itself included. Where values
    tie, or several are NaN, the order comes from that algorithm's swaps, so it is replayed.
    """
    if vector.values.shape[1] != 1:
        return vector  # A range query has no order to show.
    rows = sorted(np.flatnonzero(vector.present[:, 0]).tolist(), key=vector.labels.__getitem__)
    values = vector.values[rows, 0]
    numbers = values[~np.isnan(values)]
    if np.unique(numbers).shape[0] == numbers.shape[0] and values.shape[0] - numbers.shape[0] <= 1:
        # No ties: every correct sort gives this order.
        by_value = np.argsort(-values if descending else values, kind="stable")
        order = np.array(rows, dtype=I64)[by_value] if rows else np.zeros(0, dtype=I64)
        return vector._replace(order=order)
    if descending:
        less = lambda a, b: math.isnan(b) or b < a  # noqa: E731 - sort.Reverse(vectorByValueHeap)
    else:
        less = lambda a, b: math.isnan(b) or b > a  # noqa: E731 - sort.Reverse(vectorByReverseValueHeap)
    items = list(zip(values.tolist(), rows))
    sort_sort(items, less)
    return vector._replace(order=np.array([row for _, row in items], dtype=I64))


def _sort(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _sorted(args[0], descending=False)


def _sort_desc(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return _sorted(args[0], descending=True)


def _sort_by_label(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return sort_by_labels(_sorted(args[0], descending=False), args[1:], descending=False)


def _sort_by_label_desc(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    return sort_by_labels(_sorted(args[0], descending=True), args[1:], descending=True)


def _counter_function(fn: FunctionImpl) -> FunctionImpl:
    """``rate``/``increase`` with Prometheus 2.53's info for a selected metric whose name does not look
    like a counter's (a series with a sample in some window; not for a subquery's series)."""

    def impl(ctx: EvalContext, args: Sequence, exprs: Sequence) -> Value:
        out = fn(ctx, args, exprs)
        note_non_counters(ctx, args[0], exprs[0])
        return out

    return impl


def note_non_counters(ctx: EvalContext, rv: RangeVector, expr: promql_parser.Expr) -> None:
    """Add :func:`~shardmon.model.promql.annotations.possible_non_counter` for each metric of ``rv`` (read by
    the matrix selector ``expr``) that needs it."""
    while isinstance(expr, promql_parser.ParenExpr):
        expr = expr.expr
    if not isinstance(expr, promql_parser.MatrixSelector):
        return
    rows_of: dict[str, list[int]] = {}
    if rv.one_name and rv.labels:
        rows_of[rv.labels[0].name] = list(range(len(rv.labels)))
    else:
        for i, lbls in enumerate(rv.labels):
            rows_of.setdefault(lbls.name, []).append(i)
    bounds = rv.offsets.tolist()
    starts = rv.window_ends - rv.range_ms
    for name, rows in rows_of.items():
        if looks_like_counter(name) or possible_non_counter(name) in ctx.infos:
            continue
        # Once per name: the first of its series with a sample in some step's window.
        for i in rows:
            t = rv.timestamps[bounds[i]:bounds[i + 1]]
            if t.shape[0] and (np.searchsorted(t, rv.window_ends, "right") > np.searchsorted(t, starts, "left")).any():
                ctx.info(possible_non_counter(name))
                break


def note_pushed_non_counter(ctx: EvalContext, call, result: InstantVector) -> None:
    """:func:`note_non_counters` for ``rate``/``increase`` of a selector the shards evaluated (push-down):
    from the selector's metric name (an equality matcher; a regex one gives no info), when the result
    has a series. (A series whose windows hold a single sample has no rate: then Prometheus adds the
    info where this cannot.)"""
    if not isinstance(call, promql_parser.Call) or call.func.name not in ("rate", "increase") or not call.args:
        return
    arg = call.args[0]
    while isinstance(arg, promql_parser.ParenExpr):
        arg = arg.expr
    if not isinstance(arg, promql_parser.MatrixSelector):
        return
    vs = arg.vector_selector
    name = vs.name or next((m.value for m in vs.matchers.matchers
                            if m.name == METRIC_NAME and str(m.op) == "MatchOp.Equal"), "")
    if not looks_like_counter(name) and result.present.any():
        ctx.info(possible_non_counter(name))


def absent_labels(expr: promql_parser.Expr) -> Labels:
    """The labels ``absent`` gives: those its selector argument matches by one equality only.

    A label matched by equality once, and by no other matcher, keeps that value; ``__name__`` and
    anything but a selector (even in parentheses) give no labels, as in Prometheus.
    """
    if isinstance(expr, promql_parser.MatrixSelector):
        expr = expr.vector_selector
    if not isinstance(expr, promql_parser.VectorSelector):
        return EMPTY_LABELS
    values: dict[str, str] = {}
    dropped: set[str] = set()
    for m in expr.matchers.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.op == promql_parser.MatchOp.Equal and m.name not in values:
            values[m.name] = m.value
        else:
            dropped.add(m.name)
    return Labels.from_pairs((n, v) for n, v in values.items() if n not in dropped)


def _absent(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    missing = ~args[0].present.any(axis=0)
    return InstantVector([absent_labels(exprs[0])], np.ones((1, ctx.n_steps), dtype=F64), missing[None, :])


def _absent_over_time(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    rv = args[0]
    assert isinstance(rv, RangeVector), type(rv)
    missing = ~(windows_of(ctx, rv).counts > 0).any(axis=0)
    return InstantVector([absent_labels(exprs[0])], np.ones((1, ctx.n_steps), dtype=F64), missing[None, :])


#: The implemented functions, by PromQL name.
FUNCTIONS: dict[str, FunctionImpl] = {
    **{name: _math_function(fn) for name, fn in _MATH.items()},
    **{name: _date_function(fn) for name, fn in _DATE.items()},
    **RANGE_FUNCTIONS,
    **LABEL_FUNCTIONS,
    **HISTOGRAM_FUNCTIONS,
    **NATIVE_FUNCTIONS,
    "absent": _absent,
    "absent_over_time": _absent_over_time,
    "clamp": _clamp,
    "clamp_max": _clamp_max,
    "clamp_min": _clamp_min,
    "pi": _pi,
    "round": _round,
    "scalar": _scalar,
    "sort": _sort,
    "sort_by_label": _sort_by_label,
    "sort_by_label_desc": _sort_by_label_desc,
    "sort_desc": _sort_desc,
    "time": _time,
    "timestamp": _timestamp,
    "vector": _vector,
}
FUNCTIONS["rate"] = _counter_function(RANGE_FUNCTIONS["rate"])
FUNCTIONS["increase"] = _counter_function(RANGE_FUNCTIONS["increase"])
