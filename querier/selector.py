"""Vector selectors: from the parser's selector to matchers, one fetch, and values over the grid.

An instant selector takes, at each step, a series' latest sample in ``[t - lookback, t]`` (both ends
inclusive, ``t`` the step time minus the offset), unless that sample is a staleness marker, which
ends the series. A range selector keeps every sample of ``[t - range, t]`` (both ends inclusive, as
Prometheus 2.x) except staleness markers. Each selector fetches once, for the whole grid.
"""

from __future__ import annotations

import numpy as np
import promql_parser

from model.errors import BadQueryError
from model.labels import METRIC_NAME, Matcher, MatchType
from model.samples import F64, I64, is_stale
from querier.value import EvalContext, InstantVector, RangeVector, duration_ms, not_supported

_MATCH_TYPES = (
    (promql_parser.MatchOp.Equal, MatchType.EQ),
    (promql_parser.MatchOp.NotEqual, MatchType.NEQ),
    (promql_parser.MatchOp.Re, MatchType.RE),
    (promql_parser.MatchOp.NotRe, MatchType.NRE),
)

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


def _check_selector(vs: promql_parser.VectorSelector) -> None:
    if vs.at is not None:
        raise not_supported("the @ modifier")


def eval_vector_selector(ctx: EvalContext, vs: promql_parser.VectorSelector) -> InstantVector:
    """Evaluate an instant vector selector at every step of the grid."""
    _check_selector(vs)
    matchers = selector_matchers(vs)
    refs = ctx.steps - duration_ms(vs.offset)
    lookback = ctx.lookback_delta_ms
    series = ctx.select(matchers, int(refs[0]) - lookback, int(refs[-1]))
    n_steps = ctx.n_steps
    values = np.zeros((len(series), n_steps), dtype=F64)
    present = np.zeros((len(series), n_steps), dtype=bool)
    oldest = refs - lookback
    for row, s in enumerate(series):
        if row % 256 == 0:
            ctx.check_deadline()
        ts = np.asarray(s.timestamps_ms, dtype=I64)
        if ts.shape[0] == 0:
            continue
        vals = np.asarray(s.values, dtype=F64)
        # The latest sample at or before each step; -1 where there is none.
        idx = np.searchsorted(ts, refs, side="right") - 1
        ok = idx >= 0
        idx = np.maximum(idx, 0)
        picked = vals[idx]
        ok &= ts[idx] >= oldest
        ok &= ~is_stale(picked)
        values[row] = picked
        present[row] = ok
    return InstantVector([s.labels for s in series], values, present)


def eval_matrix_selector(ctx: EvalContext, ms: promql_parser.MatrixSelector) -> RangeVector:
    """Fetch the samples of a range vector selector for the whole grid (staleness markers dropped)."""
    vs = ms.vector_selector
    _check_selector(vs)
    matchers = selector_matchers(vs)
    range_ms = duration_ms(ms.range)
    ends = ctx.steps - duration_ms(vs.offset)
    series = ctx.select(matchers, int(ends[0]) - range_ms, int(ends[-1]))
    timestamps, values = [], []
    for s in series:
        ts = np.asarray(s.timestamps_ms, dtype=I64)
        vals = np.asarray(s.values, dtype=F64)
        keep = ~is_stale(vals)
        if not keep.all():
            ts, vals = ts[keep], vals[keep]
        timestamps.append(ts)
        values.append(vals)
    return RangeVector([s.labels for s in series], timestamps, values, ends, range_ms)
