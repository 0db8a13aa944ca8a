"""Aggregation operators over the whole grid: ``sum``, ``min``, ``max``, ``avg``, ``group``, ``stddev``,
``stdvar``, ``count``, ``count_values``, ``topk``, ``bottomk`` and ``quantile``.

Series are mapped to groups once (by their labels after ``by``/``without``); each operator then
reduces the series x steps matrix into a groups x steps matrix. The reductions take the series of a
group in their input order, as Prometheus folds the samples of a group in vector order, so sums and
means round the same way. The order-dependent folds (``avg``, ``stddev``, ``stdvar``) run one
"layer" at a time: the first series of every group, then the second of every group, and so on, each
layer a numpy operation across groups and steps. ``topk``, ``bottomk`` and ``quantile`` rank the
series of each group: see :mod:`shardmon.model.promql.ranking`.

Semantics of Prometheus 2.42: ``by`` keeps only the listed labels; ``without`` drops the listed ones
and ``__name__``; ``topk``/``bottomk`` keep each series' own labels; ``sum`` propagates NaN;
``min``/``max`` ignore NaN unless every value is NaN; ``avg`` is Prometheus's incremental mean,
which neither overflows on huge values nor turns a mean of infinities into NaN; ``stddev`` and
``stdvar`` are Welford's running variance over the population; ``count_values`` counts the series
per value, the value written into a label as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import EMPTY_LABELS, METRIC_NAME, Labels, is_valid_label_name
from shardmon.model.promql.ranking import check_k, quantile, select_k
from shardmon.model.promql.value import EvalContext, InstantVector
from shardmon.model.samples import F64

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


def _group(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.ones((n_groups, values.shape[1]), dtype=F64)


def _min(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    # fmin skips NaN unless both sides are NaN: Prometheus's "replace if greater or if current is NaN".
    out = np.full((n_groups, values.shape[1]), np.nan, dtype=F64)
    np.fmin.at(out, group, np.where(present, values, np.nan))
    return out


def _max(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.full((n_groups, values.shape[1]), np.nan, dtype=F64)
    np.fmax.at(out, group, np.where(present, values, np.nan))
    return out


def _layers(group: np.ndarray) -> list[np.ndarray]:
    """The rows in layers: layer j holds the j-th row (in row order) of every group that has one.

    A fold over each group's rows in order is then a loop over layers, vectorised across groups:
    the rows of one layer belong to different groups, so their updates do not interfere.
    """
    if group.shape[0] == 0:
        return []
    by_group = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.cumsum(sizes) - sizes
    rank = np.empty_like(by_group)
    rank[by_group] = np.arange(group.shape[0]) - starts[group[by_group]]
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(sizes.max()) + 1))
    return [by_rank[bounds[j] : bounds[j + 1]] for j in range(bounds.shape[0] - 1)]


def _avg(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Prometheus 2.x's incremental mean: ``mean += v/n - mean/n``, one series at a time.

    Dividing both terms by ``n`` keeps sums of huge values from overflowing. A mean that is already
    infinite stays so when the new value is finite or an infinity of the same sign, because the
    update would compute ``Inf - Inf``.
    """
    n_steps = values.shape[1]
    mean = np.zeros((n_groups, n_steps), dtype=F64)
    count = np.zeros((n_groups, n_steps), dtype=F64)
    for rows in _layers(group):
        g = group[rows]
        v, p = values[rows], present[rows]
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


def _variance(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The population variance by Welford's algorithm, in Prometheus's exact operation order.

    A group's first value sets the mean (and a sum of squares of 0); each later one does
    ``delta = v - mean; mean += delta/n; m2 += delta * (v - mean)``; the variance is ``m2/n``.
    """
    n_steps = values.shape[1]
    mean = np.zeros((n_groups, n_steps), dtype=F64)
    m2 = np.zeros((n_groups, n_steps), dtype=F64)
    count = np.zeros((n_groups, n_steps), dtype=F64)
    for rows in _layers(group):
        g = group[rows]
        v, p = values[rows], present[rows]
        m, s, c = mean[g], m2[g], count[g]
        first = p & (c == 0)
        later = p & (c > 0)
        c_new = c + p
        delta = v - m
        m_new = m + delta / c_new
        s_new = s + delta * (v - m_new)
        mean[g] = np.where(first, v, np.where(later, m_new, m))
        m2[g] = np.where(first, 0.0, np.where(later, s_new, s))
        count[g] = c_new
    return m2 / count


def _stdvar(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    return _variance(group, n_groups, values, present)


def _stddev(group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.sqrt(_variance(group, n_groups, values, present))


#: The aggregations that reduce each group to one value with no parameter, by PromQL name.
REDUCTIONS: dict[str, Reduction] = {
    "avg": _avg,
    "count": _count,
    "group": _group,
    "max": _max,
    "min": _min,
    "stddev": _stddev,
    "stdvar": _stdvar,
    "sum": _sum,
}

#: Every aggregation operator, by PromQL name (lower case).
AGGREGATIONS: frozenset[str] = frozenset({*REDUCTIONS, "bottomk", "count_values", "quantile", "topk"})

#: The operators whose parameter is a scalar expression (evaluated per step).
SCALAR_PARAMETER: frozenset[str] = frozenset({"bottomk", "quantile", "topk"})


def _group_labels(labels: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    """The labels of the group a series belongs to (``without`` also drops ``__name__``)."""
    if without:
        return labels.without((*grouping, METRIC_NAME))
    return labels.keep(grouping)


#: Per (grouping, without): series labels -> group labels, memoised (rules aggregate the same series at
#: every evaluation); a map is emptied when it holds _GROUP_KEYS_MAX label sets, all of them when there
#: are _GROUP_SPECS_MAX groupings.
_GROUP_KEYS: dict[tuple[tuple[str, ...], bool], dict[Labels, Labels]] = {}
_GROUP_KEYS_MAX = 1 << 18
_GROUP_SPECS_MAX = 64


def group_keys(labels: Sequence[Labels], grouping: Sequence[str], without: bool) -> list[Labels]:
    """The labels of the group each of ``labels`` belongs to (``without`` also drops ``__name__``)."""
    if not grouping and not without:
        return [EMPTY_LABELS] * len(labels)
    spec = (tuple(grouping), without)
    memo = _GROUP_KEYS.get(spec)
    if memo is None or len(memo) > _GROUP_KEYS_MAX:
        if memo is None and len(_GROUP_KEYS) >= _GROUP_SPECS_MAX:
            _GROUP_KEYS.clear()
        memo = _GROUP_KEYS[spec] = {}
    get = memo.get
    out = [get(lbls) for lbls in labels]
    if None in out:
        for i, key in enumerate(out):
            if key is None:
                out[i] = memo[labels[i]] = _group_labels(labels[i], spec[0], without)
    return out


def aggregate(
    ctx: EvalContext,
    op: str,
    vector: InstantVector,
    grouping: Sequence[str],
    without: bool,
    param: np.ndarray | str | None = None,
) -> InstantVector:
    """Apply the aggregation ``op`` (one of :data:`AGGREGATIONS`) to ``vector``.

    ``param`` is the operator's parameter: per step (float64) for ``topk``, ``bottomk`` and
    ``quantile``, the label name for ``count_values``, None for the others. A group has a value at
    the steps where at least one of its series has one. Groups come out in the order their first
    series comes in, as Prometheus's do, so that an enclosing aggregation adds them in Prometheus's
    order too.
    """
    ctx.check_deadline()
    if op == "count_values":
        assert isinstance(param, str), type(param)
        return count_values(ctx, vector, param, grouping, without)
    index: dict[Labels, int] = {}
    group = np.fromiter(
        (index.setdefault(key, len(index)) for key in group_keys(vector.labels, grouping, without)),
        dtype=np.intp,
        count=len(vector.labels),
    )
    n_groups = len(index)
    if op in ("topk", "bottomk"):
        assert isinstance(param, np.ndarray), type(param)
        k = check_k(param)
        keep, order = select_k(ctx, group, n_groups, vector.values, vector.present, k, bottom=op == "bottomk")
        return InstantVector(vector.labels, vector.values, keep, order)
    present = np.zeros((n_groups, vector.values.shape[1]), dtype=bool)
    np.logical_or.at(present, group, vector.present)
    if op == "quantile":
        assert isinstance(param, np.ndarray), type(param)
        values = quantile(group, n_groups, vector.values, vector.present, param)
    else:
        values = REDUCTIONS[op](group, n_groups, vector.values, vector.present)
    ctx.check_deadline()
    return InstantVector(list(index), values, present)


def count_values(
    ctx: EvalContext, vector: InstantVector, label: str, grouping: Sequence[str], without: bool
) -> InstantVector:
    """``count_values(label, vector)``: per group and value, the number of series with that value.

    As Prometheus, the value is written into ``label`` first and the grouping applied after: with
    ``by`` the label is always kept; with ``without`` it is dropped if listed (and then the values of
    a group are counted together). The output series come in no particular order: unlike sums,
    counts come out the same whichever order an enclosing aggregation adds them in.
    """
    if not is_valid_label_name(label):
        raise QueryExecutionError(f'invalid label name "{label}"')
    rows, steps = np.nonzero(vector.present)
    values = vector.values[rows, steps]
    # Distinct float bit patterns first (cheap), then their texts: every NaN is "NaN".
    bits, inverse = np.unique(values.view(np.int64), return_inverse=True)
    text_ids: dict[str, int] = {}
    ids = np.array([text_ids.setdefault(format_value(v), len(text_ids)) for v in bits.view(F64).tolist()],
                   dtype=np.int64)
    texts = list(text_ids)
    value_id = ids[inverse.reshape(-1)] if values.shape[0] else np.zeros(0, dtype=np.int64)
    if without:
        dropped = label in grouping or label == METRIC_NAME
        strip: tuple[str, ...] = (*grouping, METRIC_NAME, label)
    else:
        dropped = False
        strip = ()
    base_index: dict[Labels, int] = {}
    bases = []
    for lbls in vector.labels:
        base = lbls.without(strip) if without else lbls.keep(name for name in grouping if name != label)
        bases.append(base_index.setdefault(base, len(base_index)))
    base_of_row = np.array(bases, dtype=np.int64)
    if dropped:
        value_id = np.zeros_like(value_id)
    n_texts = max(len(texts), 1)
    pair = base_of_row[rows] * n_texts + value_id
    domain = len(base_index) * n_texts
    if domain <= 8 * pair.shape[0] + 4096:
        # Few possible (group, value) pairs: number the ones that occur without sorting.
        used = np.bincount(pair, minlength=domain) > 0
        uniq = np.flatnonzero(used)
        out_id = (np.cumsum(used) - 1)[pair]
    else:
        uniq, out_id = np.unique(pair, return_inverse=True)
        out_id = out_id.reshape(-1)
    n_steps = vector.values.shape[1]
    # Each (group, value) pair is a series over the whole grid: charged before it is built (a value
    # that changes at every step makes as many series as steps).
    ctx.charge_points(uniq.shape[0] * n_steps)
    base_labels = list(base_index)
    out_labels = []
    for key in uniq.tolist():
        base = base_labels[key // n_texts]
        out_labels.append(base if dropped else base.with_(**{label: texts[key % n_texts]}))
    counts = np.bincount(out_id * n_steps + steps, minlength=len(out_labels) * n_steps)
    counts = counts.reshape(len(out_labels), n_steps).astype(F64)
    ctx.check_deadline()
    return InstantVector(out_labels, counts, counts > 0)


def format_value(value: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (np.inf, -np.inf):
        return "+Inf" if value > 0 else "-Inf"
    # repr gives the shortest digits that read back as the same float, as Go's -1 precision does.
    return format(Decimal(repr(value)).normalize(), "f")


__all__ = ["AGGREGATIONS", "REDUCTIONS", "SCALAR_PARAMETER", "aggregate", "count_values", "format_value",
           "group_keys"]
