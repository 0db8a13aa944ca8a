"""Binary operators and aggregations over vectors that hold native histograms, as Prometheus 2.53.

- :func:`binary_with_histograms`: 2.53's ``vectorElemBinop``: ``h + h`` and ``h - h`` (compacted), ``h * f``,
  ``f * h`` and ``h / f`` give histograms; every other operator reads a histogram as the float 0 (so ``h > 1``
  drops it, ``h + 1`` is 1); ``and``/``or``/``unless`` keep samples whole; a comparison with the scalar on the
  left keeps the vector's sample (its histogram too); ``bool`` gives floats.
- :func:`aggregate_with_histograms`: ``sum``/``avg`` add histograms (a group mixing floats and histograms gives
  nothing and 2.53's warning), ``count``/``group`` count them, ``stddev``/``stdvar`` ignore them, the others
  (``min``, ``max``, ``topk``, ``bottomk``, ``quantile``, ``count_values``) read them as 0, as 2.53 does.

The float results come from the float operators (histogram cells as 0); the same operator run on row numbers
tells which input cell each result cell came from, and the histograms are computed for those cells only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.labels import Labels
from shardmon.model.promql.aggregation import aggregate, group_keys
from shardmon.model.promql.histogram_eval import (
    aggregate_histograms,
    as_floats,
    elementwise,
    empty_hists,
    skip_histograms,
    with_histograms,
)
from shardmon.model.promql.value import EvalContext, InstantVector, Scalar, Value

_HIST_RESULT = frozenset({"+", "-", "*", "/"})
_SET = frozenset({"and", "or", "unless"})


def _numbered(v: Value, sign: float) -> Value:
    """``v`` with each cell's value its row number + 1 (times ``sign``); a scalar as zeros."""
    if isinstance(v, Scalar):
        return Scalar(np.zeros_like(v.values))
    rows = np.arange(1, len(v.labels) + 1, dtype=np.float64)[:, None] * sign
    return v._replace(values=np.ascontiguousarray(np.broadcast_to(rows, v.values.shape)), histograms=None)


def _zeros(v: Value) -> Value:
    if isinstance(v, Scalar):
        return Scalar(np.zeros_like(v.values))
    return v._replace(values=np.zeros_like(v.values), histograms=None)


def _gather(v: Value, src: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Per result cell, the float and the histogram of input ``v``'s row ``src`` (0-based; -1: none)."""
    steps = np.arange(src.shape[1])[None, :]
    if isinstance(v, Scalar):
        return np.broadcast_to(v.values[None, :], src.shape), None
    rows = np.maximum(src, 0)
    floats = v.values[rows, steps] if len(v.labels) else np.zeros(src.shape)
    hists = None
    if v.histograms is not None and len(v.labels):
        hists = np.where(present & (src >= 0), v.histograms[rows, steps], None)
    return floats, hists


def binary_with_histograms(ctx: EvalContext, op: str, lhs: Value, rhs: Value, matching, return_bool: bool,
                           binary_op) -> Value:
    """``lhs op rhs`` where a side holds histograms; ``binary_op`` is the float operator."""
    lf = as_floats(lhs) if isinstance(lhs, InstantVector) else lhs
    rf = as_floats(rhs) if isinstance(rhs, InstantVector) else rhs
    result = binary_op(ctx, op, lf, rf, matching, return_bool)
    if return_bool:
        return result
    if op in _SET:
        where = binary_op(ctx, op, _numbered(lhs, 1.0), _numbered(rhs, -1.0), matching, False).values
        out = empty_hists(result.values.shape)
        for side, mask, src in ((lhs, where > 0, where - 1), (rhs, where < 0, -where - 1)):
            if side.histograms is not None:
                _, h = _gather(side, src.astype(np.int64), result.present & mask)
                out = np.where(mask & (h != None), h, out)  # noqa: E711
        return with_histograms(result, out)
    if op in _HIST_RESULT:
        lsrc = binary_op(ctx, "+", _numbered(lhs, 1.0), _zeros(rhs), matching, False).values.astype(np.int64) - 1
        rsrc = binary_op(ctx, "+", _zeros(lhs), _numbered(rhs, 1.0), matching, False).values.astype(np.int64) - 1
        l_f, l_h = _gather(lhs, lsrc, result.present)
        r_f, r_h = _gather(rhs, rsrc, result.present)
        out, _ = elementwise(op, l_f, l_h, r_f, r_h, result.present)
        return with_histograms(result, out)
    if isinstance(lhs, Scalar) and isinstance(rhs, InstantVector) and rhs.histograms is not None:
        # A comparison with the scalar on the left keeps the vector's own sample, a histogram too.
        src = binary_op(ctx, "+", _zeros(lhs), _numbered(rhs, 1.0), matching, False).values.astype(np.int64) - 1
        _, h = _gather(rhs, src, result.present)
        return with_histograms(result, h)
    return result


def aggregate_with_histograms(ctx: EvalContext, op: str, vector: InstantVector, grouping: Sequence[str],
                              without: bool, param) -> InstantVector:
    """Aggregation ``op`` of a vector that holds histograms (see the module docstring)."""
    if op in ("sum", "avg"):
        floats = aggregate(ctx, op, skip_histograms(vector), grouping, without, param)
        index: dict[Labels, int] = {}
        group = np.fromiter((index.setdefault(k, len(index)) for k in group_keys(vector.labels, grouping, without)),
                            dtype=np.intp, count=len(vector.labels))
        return aggregate_histograms(ctx, op, group, len(index), vector, floats)
    if op in ("stddev", "stdvar"):
        return aggregate(ctx, op, skip_histograms(vector), grouping, without, param)
    return aggregate(ctx, op, as_floats(vector), grouping, without, param)


__all__ = ["aggregate_with_histograms", "binary_with_histograms"]
