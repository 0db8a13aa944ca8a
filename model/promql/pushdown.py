"""Aggregation push-down: a shard's partial aggregate of its own series, and the querier's merge of them.

An aggregation (``sum``, ``count``, ``min``, ``max``, ``avg``, ``group``, ``topk``, ``bottomk``,
``count_values``, by/without) of a vector selector or of ``rate``/``increase``/``*_over_time`` of a range
selector is described by an :class:`AggregateSpec` (matchers, read range, the reference times of every step
with ``offset``/``@`` applied, the function, the grouping). A shard evaluates it over the series it holds
with the engine's own functions (:func:`partial_aggregate`: the same selection, the same range functions,
the same reductions as the querier's engine) and answers a :class:`Partial`; the querier merges the
shards' partials (:func:`merge_partials`) into what the engine would have computed from all the series:

- ``sum``: the shards' sums added (absent cells are -0.0, the exact identity); ``count``: counts added;
  ``min``/``max``: ``fmin``/``fmax`` of the shards' (NaN only where every value is NaN); ``group``: 1;
  ``avg``: each shard's incremental mean and count, merged as ``mean_a * (n_a / n) + mean_b * (n_b / n)``
  (no overflow where a sum would overflow; NaN and infinities as Prometheus's running mean);
- groups come out in the order of their first input series (each shard names its group's first
  series), as the engine orders them, so an enclosing aggregation adds them in the same order;
- ``topk``/``bottomk``: each shard's kept series per group and step, with each group's first present
  series (a one-step grid presents groups in that order); the querier ranks those candidates again. Where
  values tie at a shard's cut-off, which series Prometheus keeps depends on the order its heap met all the
  series: that shard sends all its rows instead (``ties``), and when every shard did (as they do where many
  series have equal values), the querier ranks all the rows in label order as the engine does, in the same
  round. Ties on some shards only, or between the candidates of several: the merge answers None and the
  caller takes the exact path;
- ``count_values``: the shards' counts per output series added;
- :data:`ROWS` (not an aggregation): an instant selector's or a range function's value per series, the rows of
  all shards put in label order, for what the querier evaluates outside an aggregation (``x``,
  ``avg_over_time(x[5m])``, ``rate(x[1m]) * 8``): the shards compute it over their own series instead of
  sending the samples.

With replication (RF > 1), the spec carries the placement and each shard aggregates only the series it is
designated for, and answers digests of all the copies it read: :mod:`shardmon.model.promql.pushdown_replicas`.

A group whose series all live on one shard gets bit for bit the value the engine computes. Sums and
means over series of several shards add in another order: their last bits can differ (a relative
difference of the order of n * 2**-53).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import SEP, Labels, Matcher, is_valid_label_name
from shardmon.model.promql.aggregation import REDUCTIONS, aggregate, count_values, group_keys
from shardmon.model.promql.functions_range import RANGE_FUNCTIONS
from shardmon.model.promql.pushdown_replicas import Placement, ReplicaDigest, designated, owners_of, replica_digests
from shardmon.model.promql.ranking import check_k, select_k
from shardmon.model.promql.selection import instant_selection, range_selection
from shardmon.model.promql.value import EvalContext, InstantVector
from shardmon.model.samples import F64
from shardmon.model.storage import QueryBudget

#: The aggregations a shard computes partially.
PUSHDOWN_OPS = frozenset({"sum", "count", "min", "max", "avg", "group", "topk", "bottomk", "count_values"})
#: Not an aggregation: an instant selector's or a range function's value per series (what the engine would compute),
#: the rows of every shard put together in label order by the querier (:func:`merge_partials`).
ROWS = "rows"
#: The largest rows answer a shard sends (values, presence and keys); past it, its answer is empty with ``ties``
#: set, and the querier reads the series instead.
ROWS_MAX_BYTES = 64 << 20
#: Those whose merged rows come in no order an enclosing expression could rely on: pushed down only as the
#: whole query.
WHOLE_QUERY_OPS = frozenset({"topk", "bottomk", "count_values"})
#: The range-vector functions a shard evaluates under a pushed-down aggregation (those without a parameter).
PUSHDOWN_FUNCTIONS = frozenset({
    "rate", "increase", "avg_over_time", "count_over_time", "last_over_time", "max_over_time",
    "min_over_time", "present_over_time", "stddev_over_time", "stdvar_over_time", "sum_over_time",
})


@dataclass(frozen=True)
class AggregateSpec:
    """One pushed-down aggregation, as the engine hands it to the fan-out and a shard receives it.

    ``times_ms``: per step, the time the selector looks at (the step or its ``@`` time, minus the offset);
    ``function``: ``""`` for an instant selector, else the range function over ``[t - range_ms, t]``;
    ``param``: ``topk``/``bottomk``'s k per step (float64, as evaluated); ``label``: ``count_values``'s;
    ``placement``: with replication, where series live and which shards the querier counts on (each shard
    then aggregates only the series it is designated for).
    """

    matchers: tuple[Matcher, ...]
    start_ms: int
    end_ms: int
    times_ms: np.ndarray
    op: str
    grouping: tuple[str, ...] = ()
    without: bool = False
    function: str = ""
    range_ms: int = 0
    lookback_ms: int = 300_000
    one_name: bool = False
    param: np.ndarray | None = None
    label: str = ""
    placement: Placement | None = None

    @property
    def n_steps(self) -> int:
        return int(self.times_ms.shape[0])


@dataclass
class Partial:
    """A shard's partial aggregate: ``keys`` (canonical label bytes) of its rows, ``values`` and
    ``present`` (rows x steps), for ``avg`` the ``counts``, per group its first series' key
    (``first_keys``), whether ``topk``/``bottomk`` met a tie (``ties``), and what it aggregated; with a
    placement, the digests of every copy it read and how many series it holds that are not its own."""

    keys: list[bytes]
    values: np.ndarray
    present: np.ndarray
    first_keys: list[bytes]
    counts: np.ndarray | None = None
    ties: bool = False
    series: int = 0
    samples: int = 0
    digests: list[ReplicaDigest] = field(default_factory=list)
    misplaced: int = 0
    #: A series read had native histogram samples in the range: no partial (it aggregates floats only); the
    #: querier answers by its exact path.
    histograms: bool = False


def evaluate_input(spec: AggregateSpec, ctx: EvalContext, labels: list[Labels], ts: np.ndarray, vals: np.ndarray,
                   offsets: np.ndarray) -> InstantVector:
    """The aggregation's argument over series ``labels`` (samples laid end to end), as the engine evaluates it."""
    if not spec.function:
        return instant_selection(labels, ts, vals, offsets, spec.times_ms, spec.lookback_ms)
    rv = range_selection(labels, ts, vals, offsets, spec.times_ms, spec.range_ms, spec.one_name)
    return RANGE_FUNCTIONS[spec.function](ctx, [rv], [None])


def _groups(vector: InstantVector, spec: AggregateSpec) -> tuple[np.ndarray, list[Labels], list[int]]:
    """Each row's group, the groups' labels in order of their first row, and that first row."""
    index: dict[Labels, int] = {}
    first: list[int] = []
    group = np.empty(len(vector.labels), dtype=np.intp)
    for row, key in enumerate(group_keys(vector.labels, spec.grouping, spec.without)):
        g = index.get(key)
        if g is None:
            g = index[key] = len(first)
            first.append(row)
        group[row] = g
    return group, list(index), first


def partial_aggregate(spec: AggregateSpec, labels: list[Labels], ts: np.ndarray, vals: np.ndarray,
                      offsets: np.ndarray, budget: QueryBudget, keys: Sequence[bytes] | None = None, *,
                      series_ids: np.ndarray | None = None, shard_id: int | None = None) -> Partial:
    """The shard's part: ``spec`` over its series ``labels`` (in label order, samples laid end to end); ``keys``:
    their canonical bytes, if the caller has them (rows are answered with them, rather than made anew). With
    ``spec.placement``, ``series_ids`` and this shard's ``shard_id``: over the series it is designated for only,
    with the digests of all it read."""
    digests: list[ReplicaDigest] = []
    misplaced = 0
    if spec.placement is not None:
        if series_ids is None or shard_id is None:
            raise ValueError("a push-down with a placement needs the series ids and the shard's id")
        owners = owners_of(series_ids, spec.placement)
        counts = np.diff(offsets)
        digests = replica_digests(owners, series_ids, counts, ts, vals)
        mine, misplaced = designated(owners, spec.placement, shard_id)
        if not mine.all():
            labels, keys, ts, vals, offsets = _subset(mine, labels, keys, counts, ts, vals)
    ctx = EvalContext(None, spec.times_ms, spec.lookback_ms, budget)  # type: ignore[arg-type]  # reads nothing
    with np.errstate(all="ignore"):
        vector = evaluate_input(spec, ctx, labels, ts, vals, offsets)
        out = _partial(spec, ctx, vector, _RowKeys(labels, keys))
    out.series, out.samples = len(labels), int(ts.shape[0])
    out.digests, out.misplaced = digests, misplaced
    return out


def _subset(mine: np.ndarray, labels: list[Labels], keys: Sequence[bytes] | None, counts: np.ndarray,
            ts: np.ndarray, vals: np.ndarray):
    """The series ``mine`` selects, their samples still laid end to end."""
    rows = np.flatnonzero(mine).tolist()
    take = np.repeat(mine, counts)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts[mine], out=offsets[1:])
    return ([labels[r] for r in rows], None if keys is None else [keys[r] for r in rows], ts[take], vals[take],
            offsets)


class _RowKeys:
    """The canonical bytes of the rows of the argument's value: each series' own key where its row kept its labels
    (a selector, ``last_over_time``), that key without the name where the function dropped it."""

    def __init__(self, labels: list[Labels], keys: Sequence[bytes] | None) -> None:
        self.labels, self.keys = labels, keys

    def __call__(self, vector: InstantVector, rows: list[int]) -> list[bytes]:
        if self.keys is None:
            return [vector.labels[r].canonical() for r in rows]
        out = []
        for r in rows:
            lbls, key = vector.labels[r], self.keys[r]
            if lbls is not self.labels[r]:
                if key.startswith(_NAME_KEY) and len(lbls) == len(self.labels[r]) - 1:
                    end = key.find(SEP, len(_NAME_KEY))
                    key = b"" if end < 0 else key[end + 1:]
                else:
                    key = lbls.canonical()
            out.append(key)
        return out


_NAME_KEY = b"__name__" + SEP


def _rows(vector: InstantVector, row_keys: _RowKeys) -> Partial:
    """Every row with a value at some step, as it is."""
    rows = np.flatnonzero(vector.present.any(axis=1))
    return Partial(row_keys(vector, rows.tolist()), vector.values[rows], vector.present[rows], [])


def _partial(spec: AggregateSpec, ctx: EvalContext, vector: InstantVector, row_keys: _RowKeys) -> Partial:
    if spec.op == ROWS:
        out = _rows(vector, row_keys)
        if out.values.size * 9 + sum(map(len, out.keys)) > ROWS_MAX_BYTES:
            # Too large for one message (the Series stream sends such answers in frames): the querier reads the
            # series instead.
            return Partial([], np.zeros((0, spec.n_steps), dtype=F64), np.zeros((0, spec.n_steps), dtype=bool), [],
                           ties=True)
        return out
    if spec.op == "count_values":
        counted = count_values(ctx, vector, spec.label, spec.grouping, spec.without)
        return Partial([k.canonical() for k in counted.labels], counted.values, counted.present, [])
    group, keys, first = _groups(vector, spec)
    if spec.op in ("topk", "bottomk"):
        assert spec.param is not None
        keep, _ = select_k(ctx, group, len(keys), vector.values, vector.present, check_k(spec.param),
                           bottom=spec.op == "bottomk")
        if has_ties(group, vector.values, vector.present, keep, ordered=spec.n_steps == 1):
            # Which tied series Prometheus keeps depends on every series: all the rows go, for the querier to
            # rank them as the engine does.
            out = _rows(vector, row_keys)
            out.ties = True
            return out
        rows = keep.any(axis=1)
        if spec.n_steps == 1:  # Each group's first present series: a one-step answer lists groups in that order.
            present_rows = np.flatnonzero(vector.present[:, 0])
            _, firsts = np.unique(group[present_rows], return_index=True)
            rows[present_rows[firsts]] = True
        rows = np.flatnonzero(rows)
        present = vector.present[rows] & (keep[rows] | (spec.n_steps == 1))
        return Partial([vector.labels[r].canonical() for r in rows.tolist()], vector.values[rows], present, [])
    present = np.zeros((len(keys), spec.n_steps), dtype=bool)
    np.logical_or.at(present, group, vector.present)
    first_keys = [vector.labels[r].canonical() for r in first]
    group_labels = [k.canonical() for k in keys]
    if spec.op == "avg":
        mean = REDUCTIONS["avg"](group, len(keys), vector.values, vector.present)
        count = REDUCTIONS["count"](group, len(keys), vector.values, vector.present)
        return Partial(group_labels, mean, present, first_keys, counts=count)
    values = REDUCTIONS[spec.op](group, len(keys), vector.values, vector.present)
    return Partial(group_labels, values, present, first_keys)


def has_ties(group: np.ndarray, values: np.ndarray, present: np.ndarray, keep: np.ndarray, *, ordered: bool) -> bool:
    """Whether a kept cell's value equals a left-out cell's of its group at its step (numbers equal, -0 and
    0 alike, or both NaN), or with ``ordered`` (a one-step answer lists the kept series in Prometheus's
    order) another kept cell's: where the answer then depends on the order Prometheus's heap met all the
    series in."""
    rows, steps = np.nonzero(present)
    if rows.shape[0] < 2:
        return False
    v = values[rows, steps] + 0.0  # -0.0 becomes 0.0
    bits = np.where(np.isnan(v), np.nan, v).view(np.int64)  # one NaN
    g = group[rows]
    order = np.lexsort((bits, g, steps))
    b, g, s = bits[order], g[order], steps[order]
    same = (b[1:] == b[:-1]) & (g[1:] == g[:-1]) & (s[1:] == s[:-1])
    if not same.any():
        return False
    k = keep[rows, steps][order]
    return bool((same & ((k[1:] | k[:-1]) if ordered else (k[1:] != k[:-1]))).any())


def merge_partials(spec: AggregateSpec, ctx: EvalContext, partials: Sequence[Partial],
                   labels_of: Callable[[bytes], Labels] = Labels.from_canonical) -> InstantVector | None:
    """The shards' partials (in shard order) merged into the aggregation's value over the grid, or None
    where only the exact path can tell (``topk``/``bottomk`` ties on some shards only, or between shards).
    ``labels_of`` makes the output rows' labels (the querier's is memoised)."""
    n_steps = spec.n_steps
    if spec.op == ROWS:
        return None if any(p.ties for p in partials) else all_rows(partials, n_steps, labels_of)
    if spec.op == "count_values":
        if not is_valid_label_name(spec.label):
            raise QueryExecutionError(f'invalid label name "{spec.label}"')
        return _merge_rows(ctx, partials, n_steps, add=True)
    if spec.op in ("topk", "bottomk"):
        if any(p.ties for p in partials):
            # Ties: exact only from every row (a shard without any row has sent them all too).
            if not all(p.ties or not p.keys for p in partials):
                return None
            rows = all_rows(partials, n_steps, labels_of)
            return None if rows is None else aggregate(ctx, spec.op, rows, spec.grouping, spec.without, spec.param)
        cands = _merge_rows(ctx, partials, n_steps, add=False)
        order = sorted(range(len(cands.labels)), key=cands.labels.__getitem__)
        cands = InstantVector([cands.labels[i] for i in order], cands.values[order], cands.present[order])
        result = aggregate(ctx, spec.op, cands, spec.grouping, spec.without, spec.param)
        group, _, _ = _groups(cands, spec)
        if has_ties(group, cands.values, cands.present, result.present, ordered=n_steps == 1):
            return None
        return result
    # Groups in the order of their first series over all shards: canonical keys with the separator as NUL sort
    # as their label sets (a key holding a NUL is compared as Labels).
    nul = any(_NUL in k for p in partials for k in p.first_keys)
    order_key = Labels.from_canonical if nul else _sortable
    firsts: dict = {}
    for p in partials:
        for key, first in zip(p.keys, p.first_keys):
            k = order_key(first)
            prev = firsts.get(key)
            if prev is None or k < prev:
                firsts[key] = k
    keys = sorted(firsts, key=firsts.__getitem__)
    row_of = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    present = np.zeros((n, n_steps), dtype=bool)
    op = spec.op
    if op in ("min", "max"):
        values = np.full((n, n_steps), np.nan, dtype=F64)
    elif op == "sum":
        values = np.full((n, n_steps), -0.0, dtype=F64)
    else:
        values = np.zeros((n, n_steps), dtype=F64)
    counts = np.zeros((n, n_steps), dtype=F64) if op == "avg" else None
    partials = [p for p in partials if p.keys]
    if op == "avg":  # The counts first: each shard's mean is weighted by its share of the count.
        for p in partials:
            rows = np.array([row_of[k] for k in p.keys], dtype=np.intp)
            counts[rows] += p.counts
    for p in partials:
        ctx.check_deadline()
        rows = np.array([row_of[k] for k in p.keys], dtype=np.intp)
        if rows.shape[0] == 0:
            continue
        present[rows] |= p.present
        v = p.values
        if op == "sum":
            values[rows] += np.where(p.present, v, -0.0)
        elif op == "count":
            values[rows] += v
        elif op == "min":
            values[rows] = np.fmin(values[rows], np.where(p.present, v, np.nan))
        elif op == "max":
            values[rows] = np.fmax(values[rows], np.where(p.present, v, np.nan))
        elif op == "group":
            values[rows] = 1.0
        else:  # avg
            share = np.where(p.counts > 0, p.counts / np.where(counts[rows] > 0, counts[rows], 1.0), 0.0)
            values[rows] += np.where(p.present, v * share, 0.0)
    if op == "avg":
        # A group present on one shard only keeps that shard's mean as it is (the weighted sum would turn a
        # -0.0 into 0.0).
        single = np.zeros((n, n_steps), dtype=np.int64)
        last = np.zeros((n, n_steps), dtype=F64)
        for p in partials:
            rows = np.array([row_of[k] for k in p.keys], dtype=np.intp)
            if rows.shape[0]:
                single[rows] += p.present
                last[rows] = np.where(p.present, p.values, last[rows])
        values = np.where(single == 1, last, values)
    return InstantVector([Labels.from_canonical(k) for k in keys], values, present)


_NUL = b"\x00"


def all_rows(partials: Sequence[Partial], n_steps: int, labels_of: Callable[[bytes], Labels]) -> InstantVector | None:
    """The rows of every shard in label order, as the engine's selector orders them; None when two shards
    sent the same series."""
    keys = [k for p in partials for k in p.keys]
    if not keys:
        return InstantVector([], np.zeros((0, n_steps), dtype=F64), np.zeros((0, n_steps), dtype=bool))
    values = np.concatenate([p.values for p in partials])
    present = np.concatenate([p.present for p in partials])
    if sum(1 for p in partials if p.keys) > 1:
        if any(_NUL in k for k in keys):
            sort_keys = [Labels.from_canonical(k) for k in keys]
            order = np.array(sorted(range(len(keys)), key=sort_keys.__getitem__), dtype=np.intp)
        else:  # One C sort of the keys with the separator as NUL, which sort as the label sets do.
            table = np.array(keys, dtype=bytes)
            chars = table.view(np.uint8)
            chars[chars == SEP[0]] = 0
            order = np.argsort(table, kind="stable")
        keys = [keys[i] for i in order.tolist()]
        if any(a == b for a, b in zip(keys, keys[1:])):
            return None  # A series on several shards: only the exact path merges its samples.
        values, present = values[order], present[order]
    return InstantVector([labels_of(k) for k in keys], values, present)


def _sortable(key: bytes) -> bytes:
    """A canonical label key that sorts as its label set (when it holds no NUL)."""
    return key.replace(SEP, _NUL)


def _merge_rows(ctx: EvalContext, partials: Sequence[Partial], n_steps: int, *, add: bool) -> InstantVector:
    """Rows of every shard: with ``add``, rows of the same labels as one, their counts added (charged as
    ``count_values``' output series); else the shards' rows one after the other."""
    if not add:
        keys = [k for p in partials for k in p.keys]
        values = np.concatenate([p.values for p in partials]) if partials else np.zeros((0, n_steps), dtype=F64)
        present = np.concatenate([p.present for p in partials]) if partials else np.zeros((0, n_steps), dtype=bool)
        return InstantVector([Labels.from_canonical(k) for k in keys], values, present)
    row_of: dict[bytes, int] = {}
    for p in partials:
        for k in p.keys:
            row_of.setdefault(k, len(row_of))
    n = len(row_of)
    ctx.charge_points(n * n_steps)
    values = np.zeros((n, n_steps), dtype=F64)
    for p in partials:
        rows = np.array([row_of[k] for k in p.keys], dtype=np.intp)
        if rows.shape[0]:
            np.add.at(values, rows, np.where(p.present, p.values, 0.0))
    return InstantVector([Labels.from_canonical(k) for k in row_of], values, values > 0)


__all__ = ["AggregateSpec", "PUSHDOWN_FUNCTIONS", "PUSHDOWN_OPS", "Partial", "ROWS", "WHOLE_QUERY_OPS", "all_rows",
           "evaluate_input", "has_ties", "merge_partials", "partial_aggregate"]
