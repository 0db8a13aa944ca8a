"""The aggregations that rank the series of a group: ``topk``, ``bottomk`` and ``quantile``.

Each sorts, at every step at once, the series of every group by value (one ``np.lexsort`` over the
steps x series matrix, the group as the first key), then reads the answer off the ranks.

Prometheus 2.42's semantics, from its ``aggregation`` in ``promql/engine.go``:

- ``topk``/``bottomk`` keep a series' own labels (``__name__`` too). ``k`` is the parameter at each
  step, truncated to an integer; below 1 nothing is selected; a value that does not fit an int64
  (NaN, infinities) is an error. NaN ranks below every number, for both: it is selected only when a
  group has fewer than ``k`` numbers. For an instant query the result comes in Prometheus's order:
  groups in the order their first series comes in, then by value (descending for ``topk``,
  ascending for ``bottomk``), NaN last.
- Prometheus picks the ``k`` values with a heap (``container/heap``) and orders them with the
  unstable ``sort.Sort``, so when values tie across the cut-off (or, in an instant query, inside the
  selection), the series chosen and their order depend on those algorithms' swaps. Such a group, at
  such a step, is replayed with :mod:`shardmon.model.promql.gosort`, one Python loop over its series; every other
  group and step is settled by the sort alone.
- ``quantile(φ, ...)`` interpolates linearly between the two closest ranks of the sorted values, NaN
  sorted first; φ < 0 gives -Inf, φ > 1 +Inf and NaN gives NaN.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from shardmon.model.errors import QueryExecutionError
from shardmon.model.promql.gosort import heap_pop, heap_push, sort_sort
from shardmon.model.promql.value import EvalContext
from shardmon.model.samples import F64

# The largest and smallest float64 values that convert to an int64 without overflow (Go's limits).
_MAX_INT64 = 9223372036854774784.0
_MIN_INT64 = -9223372036854775808.0

# Classes of a cell, the second sort key after the group: where the cell goes within its group.
_NUMBER, _NAN, _ABSENT = 0, 1, 2


class _GroupSort:
    """Every step's sort of the series within each group, and the group bounds in the sorted order.

    ``idx[k, p]`` is the row at sorted position p at step k. Rows are sorted by group first, so the
    group at position p (``group_at[p]``) and its first position (``start[g]``) are the same at
    every step; within a group the cells come in the order of ``cls`` (0, 1 or 2 per cell, steps x
    series; 2, ``_ABSENT``, for absent cells, which so come last), then of ``key``, ties in row
    order.
    """

    def __init__(self, group: np.ndarray, n_groups: int, key: np.ndarray, cls: np.ndarray) -> None:
        # Group and class make one integer key, so the sort takes two passes rather than three.
        group_class = group.astype(np.int64)[None, :] * 3 + cls
        self.idx = np.lexsort((key, group_class), axis=-1)
        sizes = np.bincount(group, minlength=n_groups)
        self.start = np.cumsum(sizes) - sizes
        self.group_at = np.sort(group, kind="stable")
        self.rank = np.arange(group.shape[0]) - self.start[self.group_at]  # Position within the group.

    def take(self, matrix_t: np.ndarray) -> np.ndarray:
        """A steps x series matrix in sorted order."""
        return np.take_along_axis(matrix_t, self.idx, axis=1)


def _present_counts(group: np.ndarray, n_groups: int, present_t: np.ndarray) -> np.ndarray:
    """The number of present series per step and group (steps x groups)."""
    n_steps = present_t.shape[0]
    steps_at, rows_at = np.nonzero(present_t)
    flat = np.bincount(steps_at * n_groups + group[rows_at], minlength=n_steps * n_groups)
    return flat.reshape(n_steps, n_groups)


def check_k(param: np.ndarray) -> np.ndarray:
    """``topk``/``bottomk``'s parameter per step as an int64 ``k``, or Prometheus's overflow error."""
    ok = (param <= _MAX_INT64) & (param >= _MIN_INT64)
    if not ok.all():
        bad = float(param[np.flatnonzero(~ok)[0]])
        raise QueryExecutionError(f"Scalar value {go_float(bad)} overflows int64")
    return param.astype(np.int64)  # Truncates toward zero, as Go's int64(f).


def select_k(
    ctx: EvalContext,
    group: np.ndarray,
    n_groups: int,
    values: np.ndarray,
    present: np.ndarray,
    k: np.ndarray,
    *,
    bottom: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The cells ``topk`` (``bottomk`` if ``bottom``) keeps, and for a one-step grid their order.

    ``k`` is an int64 per step (see :func:`check_k`). Returns the series x steps mask of kept cells
    and, when the grid has a single step, the kept rows in Prometheus's presentation order.
    """
    n_rows, n_steps = values.shape
    if n_rows == 0:
        return np.zeros_like(present), np.zeros(0, dtype=np.intp)
    values_t, present_t = values.T, present.T
    nan_t = np.isnan(values_t)
    cls = np.where(present_t, np.where(nan_t, _NAN, _NUMBER), _ABSENT).astype(np.int8)
    key = np.where(cls == _NUMBER, values_t if bottom else -values_t, 0.0)
    gs = _GroupSort(group, n_groups, key, cls)
    sorted_vals = gs.take(values_t)
    sorted_cls = gs.take(cls)
    kk = k[:, None]
    keep_sorted = (sorted_cls != _ABSENT) & (gs.rank[None, :] < kk)
    keep_t = np.zeros_like(present_t)
    np.put_along_axis(keep_t, gs.idx, keep_sorted, axis=1)
    ordered = n_steps == 1

    # Cells the sort alone cannot settle: the last kept value ties with the first one left out, or
    # (for a presented order) two kept values tie. Ties are equal numbers or two NaNs.
    same_next = np.zeros((n_steps, n_rows), dtype=bool)
    if n_rows > 1:
        a, b = sorted_vals[:, :-1], sorted_vals[:, 1:]
        ca, cb = sorted_cls[:, :-1], sorted_cls[:, 1:]
        tie = ((ca == _NUMBER) & (cb == _NUMBER) & (a == b)) | ((ca == _NAN) & (cb == _NAN))
        same_next[:, :-1] = tie & (gs.group_at[:-1] == gs.group_at[1:])[None, :]
    rank = gs.rank[None, :]
    cut = same_next & (rank == kk - 1)
    if ordered:
        cut |= same_next & (rank < kk - 1)
    tied = np.zeros((n_steps, n_groups), dtype=bool)
    steps_at, pos_at = np.nonzero(cut)
    tied[steps_at, gs.group_at[pos_at]] = True

    replayed: dict[int, list[int]] = {}
    members: dict[int, np.ndarray] = {}
    for step, g in zip(*np.nonzero(tied)):
        ctx.check_deadline()
        rows = members.get(g)
        if rows is None:
            rows = members[g] = np.flatnonzero(group == g)
        rows = rows[present[rows, step]]
        chosen = _replay_heap(values[rows, step].tolist(), rows.tolist(), int(k[step]), bottom, ordered)
        keep_t[step, rows] = False
        keep_t[step, chosen] = True
        if ordered:
            replayed[int(g)] = chosen
    keep = np.ascontiguousarray(keep_t.T)
    if not ordered:
        return keep, None
    return keep, _presentation_order(gs, group, present[:, 0], keep[:, 0], replayed)


def _presentation_order(
    gs: _GroupSort, group: np.ndarray, present: np.ndarray, keep: np.ndarray, replayed: dict[int, list[int]]
) -> np.ndarray:
    """Kept rows of a one-step grid: groups by their first present row, each group's rows sorted."""
    present_rows = np.flatnonzero(present)
    _, first = np.unique(group[present_rows], return_index=True)
    groups_in_order = group[present_rows[np.sort(first)]]
    sorted_rows = gs.idx[0]
    out: list[int] = []
    for g in groups_in_order.tolist():
        chosen = replayed.get(g)
        if chosen is None:
            segment = sorted_rows[gs.start[g] : gs.start[g] + np.count_nonzero(group == g)]
            chosen = segment[keep[segment]].tolist()
        out.extend(chosen)
    return np.array(out, dtype=np.intp)


def _replay_heap(values: list[float], rows: list[int], k: int, bottom: bool, ordered: bool) -> list[int]:
    """Prometheus's heap selection over one group at one step (rows in input order), replayed exactly.

    Returns the rows kept, in Prometheus's final order if ``ordered``.
    """
    if k < 1:
        return []
    # vectorByValueHeap (topk) and vectorByReverseValueHeap (bottomk): NaN is less than anything.
    less = _nan_or_greater if bottom else _nan_or_less
    heap = [(values[0], rows[0])]
    for v, r in zip(values[1:], rows[1:]):
        root = heap[0][0]
        beaten = root > v if bottom else root < v
        if len(heap) < k or beaten or root != root:
            if len(heap) == k:
                if k == 1:  # Replaced in place.
                    heap[0] = (v, r)
                    continue
                heap_pop(heap, less)
            heap_push(heap, (v, r), less)
    if ordered and len(heap) > 1:
        sort_sort(heap, lambda x, y: less(y, x))  # sort.Reverse(heap)
    return [r for _, r in heap]


def _nan_or_less(x: float, y: float) -> bool:
    return x != x or x < y


def _nan_or_greater(x: float, y: float) -> bool:
    return x != x or x > y


def quantile(
    group: np.ndarray, n_groups: int, values: np.ndarray, present: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """``quantile(phi, ...)`` per group and step (groups x steps; cells of absent groups unspecified)."""
    n_rows, n_steps = values.shape
    out = np.full((n_groups, n_steps), np.nan, dtype=F64)
    if n_rows == 0:
        return out
    values_t, present_t = values.T, present.T
    nan_t = np.isnan(values_t)
    # Prometheus sorts with NaN first, then ascending: NaN cells take class 0, numbers class 1.
    cls = np.where(present_t, np.where(nan_t, 0, 1), _ABSENT).astype(np.int8)
    key = np.where(present_t & ~nan_t, values_t, 0.0)
    gs = _GroupSort(group, n_groups, key, cls)
    sorted_vals = gs.take(values_t)
    counts = _present_counts(group, n_groups, present_t).astype(F64)
    q = phi[:, None]
    rank = q * (counts - 1)
    floor = np.floor(rank)
    lower = np.maximum(0.0, floor)
    upper = np.minimum(counts - 1, lower + 1)
    weight = rank - floor
    ok = (counts > 0) & ~np.isnan(rank) & (q >= 0) & (q <= 1)
    base = gs.start[None, :]
    lo_pos = base + np.where(ok, lower, 0).astype(np.int64)
    hi_pos = base + np.where(ok, upper, 0).astype(np.int64)
    lo_val = np.take_along_axis(sorted_vals, lo_pos, axis=1)
    hi_val = np.take_along_axis(sorted_vals, hi_pos, axis=1)
    result = lo_val * (1 - weight) + hi_val * weight
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    result = np.where(np.isnan(q), np.nan, result)
    out[:] = result.T
    return out


def go_float(value: float) -> str:
    """A float as Go's ``%v`` prints it: shortest digits, exponent form below 1e-4 and from 1e6."""
    if value != value:
        return "NaN"
    if value in (np.inf, -np.inf):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if np.signbit(value) else ""
    d = Decimal(repr(abs(value))).normalize()
    exponent = d.adjusted()
    if -4 <= exponent < 6:
        return sign + format(d, "f")
    digits = "".join(map(str, d.as_tuple().digits))
    rest = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{rest}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


__all__ = ["check_k", "go_float", "quantile", "select_k"]
