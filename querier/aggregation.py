"""Aggregation operators (``sum``, ``avg``, ``min``, ``max``, ``count``) over the whole grid.

Series are mapped to groups once (by their labels after ``by``/``without``); each operator then
reduces the series x steps matrix into a groups x steps matrix. The reductions add series in their
input order, as Prometheus folds the samples of a group in vector order, so sums round the same way.

Semantics of Prometheus 2.x: ``by`` keeps only the listed labels; ``without`` drops the listed ones
and ``__name__``; ``sum`` propagates NaN; ``min``/``max`` ignore NaN unless every value is NaN;
``avg`` is Prometheus's incremental mean, which neither overflows on huge values nor turns a mean of
infinities into NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model.labels import METRIC_NAME, Labels
from model.samples import F64
from querier.value import EvalContext, InstantVector

#: An aggregation's reduction: (group id per series, number of groups, values, present) -> values.
Reduction = Callable[[np.ndarray, int, np.ndarray, np.ndarray], np.ndarray]


def _sum(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    # -0.0 is the exact identity of float addition (0.0 is not: 0.0 + -0.0 is 0.0), so absent cells
    # change nothing and a group's first value comes through bit for bit.
    out = np.full((n_groups, values.shape[1]), -0.0, dtype=F64)
    np.add.at(out, group, np.where(present, values, -0.0))
    return out


def _count(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.zeros((n_groups, values.shape[1]), dtype=F64)
    np.add.at(out, group, present.astype(F64))
    return out


def _min(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    # fmin skips NaN unless both sides are NaN: Prometheus's "replace if greater or if current is NaN".
    out = np.full((n_groups, values.shape[1]), np.nan, dtype=F64)
    np.fmin.at(out, group, np.where(present, values, np.nan))
    return out


def _max(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.full((n_groups, values.shape[1]), np.nan, dtype=F64)
    np.fmax.at(out, group, np.where(present, values, np.nan))
    return out


def _avg(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Prometheus 2.x's incremental mean: ``mean += v/n - mean/n``, one series at a time.

    Dividing both terms by ``n`` keeps sums of huge values from overflowing. A mean that is already
    infinite stays so when the new value is finite or an infinity of the same sign, because the
    update would compute ``Inf - Inf``.
    """
    n_steps = values.shape[1]
    mean = np.zeros((n_groups, n_steps), dtype=F64)
    count = np.zeros((n_groups, n_steps), dtype=F64)
    for row in range(values.shape[0]):
        g = group[row]
        v, p = values[row], present[row]
        m, c = mean[g], count[g]
        first = p & (c == 0)
        c_new = c + p
        m_inf = np.isinf(m)
        v_inf = np.isinf(v)
        keep = m_inf & ((v_inf & ((m > 0) == (v > 0))) | (~v_inf & ~np.isnan(v)))
        update = p & (c > 0) & ~keep
        updated = m + (v / c_new - m / c_new)
        mean[g] = np.where(first, v, np.where(update, updated, m))
        count[g] = c_new
    return mean


#: The implemented aggregation operators, by PromQL name (lower case).
AGGREGATIONS: dict[str, Reduction] = {
    "avg": _avg,
    "count": _count,
    "max": _max,
    "min": _min,
    "sum": _sum,
}


def group_labels(labels: Labels, grouping: Sequence[str], without: bool) -> Labels:
    """The labels of the group a series belongs to (``without`` also drops ``__name__``)."""
    if without:
        return labels.without((*grouping, METRIC_NAME))
    return labels.keep(grouping)


def aggregate(
    ctx: EvalContext, op: str, vector: InstantVector, grouping: Sequence[str], without: bool
) -> InstantVector:
    """Apply the aggregation ``op`` (a key of :data:`AGGREGATIONS`) to ``vector``.

    A group has a value at the steps where at least one of its series has one. Groups come out in
    the order their first series comes in, as Prometheus's do, so that an enclosing aggregation
    adds them in Prometheus's order too.
    """
    reduce = AGGREGATIONS[op]
    ctx.check_deadline()
    index: dict[Labels, int] = {}
    group = np.fromiter(
        (index.setdefault(group_labels(lbls, grouping, without), len(index)) for lbls in vector.labels),
        dtype=np.intp,
        count=len(vector.labels),
    )
    out_labels = list(index)
    n_groups = len(out_labels)
    values = reduce(group, n_groups, vector.values, vector.present)
    present = np.zeros((n_groups, vector.values.shape[1]), dtype=bool)
    np.logical_or.at(present, group, vector.present)
    ctx.check_deadline()
    return InstantVector(out_labels, values, present)
