"""One read of the shards per group evaluation: the selectors of a group's rules fetched together first.

A group's rules mostly select the same few series over similar windows, and each select is a round trip
to every shard. :class:`EngineQuery` (what ``engine_query_func`` returns) is a rule's query on the
engine; before a group evaluates, :meth:`EngineQuery.for_group` reads every selector of its rules once
(each distinct matcher set over the union of the windows its rules need at that time, in one fan-out
round when the querier has ``select_many_columns``, answers laid end to end) and gives a query function whose engine reads from that
snapshot (:class:`PrefetchQuerier`): a select whose matchers were fetched and whose window lies within
what was fetched is answered from it, cut to its window, exactly as the shards would have answered;
any other select (a subquery's, an ``@`` selector's, a template's ``query``) goes to the shards.

What a rule of the group writes must be visible to the rules after it, so a selector that might select
the group's own output is never fetched ahead: only selectors with a ``__name__`` equality naming none of
the group's outputs (its ``record`` names, and ``ALERTS``/``ALERTS_FOR_STATE`` for a group with alerts)
are. A prefetch that fails (a shard down with ``abort``, over a limit) is dropped: each rule then queries
on its own and gets its own error, as without prefetching.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import promql_parser

from shardmon.model.errors import QueryExecutionError, ShardmonError
from shardmon.model.labels import EMPTY_LABELS, METRIC_NAME, Matcher, MatchType
from shardmon.model.storage import ColumnsSet, LabelsResult, Querier, QueryBudget, Series, SeriesColumns, SeriesSet
from shardmon.querier.promql import Engine, instant_selects, operands
from shardmon.querier.rules.recording import QueryFunc, Sample

#: A select the prefetch answers: its matchers, and the window (inclusive ms) fetched for them.
Window = tuple[int, int]


def group_selects(exprs: Sequence[promql_parser.Expr], lookback_ms: int, ts_ms: int,
                  outputs: set[str]) -> dict[tuple[Matcher, ...], Window]:
    """Per distinct matcher set of ``exprs`` that may be fetched ahead (a ``__name__`` equality not in
    ``outputs``), the union of the windows the rules need at ``ts_ms``."""
    selects: dict[tuple[Matcher, ...], Window] = {}
    for expr in exprs:
        try:
            found = list(instant_selects(expr, lookback_ms, ts_ms))
        except ShardmonError:
            continue  # A selector the engine refuses: the rule's own query reports it.
        for matchers, start, end in found:
            names = [m.value for m in matchers if m.name == METRIC_NAME and m.type is MatchType.EQ]
            if not names or any(n in outputs for n in names):
                continue
            if matchers in selects:
                lo, hi = selects[matchers]
                selects[matchers] = (min(lo, start), max(hi, end))
            else:
                selects[matchers] = (start, end)
    return selects


def names_read(expr: str) -> set[str] | None:
    """The metric names ``expr``'s selectors name by ``__name__`` equality, or None when it may read any
    series (a selector without one, or a text that does not parse)."""
    try:
        todo = [promql_parser.parse(expr)]
    except BaseException:  # noqa: BLE001 - pyo3's PanicException too; the rule's own query reports it
        return None
    names: set[str] = set()
    while todo:
        node = todo.pop()
        if isinstance(node, promql_parser.MatrixSelector):
            node = node.vector_selector
        if isinstance(node, promql_parser.VectorSelector):
            if node.matchers.or_matchers:
                return None
            eq = [m.value for m in node.matchers.matchers if m.name == METRIC_NAME and m.op == promql_parser.MatchOp.Equal]
            if node.name:
                eq.append(node.name)
            if not eq:
                return None
            names.update(eq)
        else:
            todo += operands(node)
    return names


class _Fetched:
    """One prefetched select: its window and answer, its samples laid end to end and keyed so that one
    search cuts every series to a narrower window (``row * span`` plus the time within the window)."""

    def __init__(self, window: Window, found: ColumnsSet) -> None:
        self.window, self.found = window, found
        cols = found.columns
        self.labels, self.timestamps, self.values, self.offsets, self.histograms = cols
        n = len(cols.labels)
        self.span = window[1] - window[0] + 3
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.offsets))
        # A sample outside the window (none, by the Querier's contract) keys before or after every cut.
        self.keys = rows * self.span + np.clip(self.timestamps - window[0] + 1, 0, self.span - 1)
        self.row_base = np.arange(n, dtype=np.int64) * self.span

    def cut_columns(self, start_ms: int, end_ms: int) -> SeriesColumns:
        """The series with their samples in ``[start_ms, end_ms]`` (within the window), those without any
        left out (the Querier's contract), laid end to end: one gather, no array per series."""
        lo = np.searchsorted(self.keys, self.row_base + (start_ms - self.window[0] + 1), "left")
        hi = np.searchsorted(self.keys, self.row_base + (end_ms - self.window[0] + 1), "right")
        rows = np.flatnonzero(hi > lo)
        counts = (hi - lo)[rows]
        offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # Sample j of the answer is sample j - offsets[row] + lo[row] of the flat arrays.
        take = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(lo[rows] - offsets[:-1], counts)
        labels = self.labels if rows.shape[0] == len(self.labels) else [self.labels[r] for r in rows.tolist()]
        hists = None if self.histograms is None else self.histograms[take]
        return SeriesColumns(labels, self.timestamps[take], self.values[take], offsets, hists)

    def cut(self, start_ms: int, end_ms: int) -> list[Series]:
        """:meth:`cut_columns` as :class:`Series` (for a caller of ``select``)."""
        labels, ts, vals, offsets, hists = self.cut_columns(start_ms, end_ms)
        bounds = offsets.tolist()
        out = []
        for i, lbls in enumerate(labels):
            lo, hi = bounds[i], bounds[i + 1]
            h = None if hists is None else hists[lo:hi]
            out.append(Series(lbls, ts[lo:hi], vals[lo:hi], None if h is None or not (h != None).any() else h))  # noqa: E711
        return out


class PrefetchQuerier:
    """A Querier answering the selects fetched ahead from memory, and anything else from ``inner``."""

    def __init__(self, inner: Querier, fetched: dict[tuple[Matcher, ...], tuple[Window, ColumnsSet]]) -> None:
        self.inner = inner
        self.fetched = {k: _Fetched(window, found) for k, (window, found) in fetched.items()}
        #: Selects answered from the prefetch, and sent on to ``inner`` (for tests and the bench).
        self.hits = self.misses = 0

    @classmethod
    def fetch(cls, inner: Querier, selects: dict[tuple[Matcher, ...], Window],
              budget: QueryBudget | None) -> PrefetchQuerier:
        """Fetch ``selects`` from ``inner`` (in one round with ``select_many_columns``); raises as a select does."""
        keys = list(selects)
        many = getattr(inner, "select_many_columns", None)
        if many is not None:
            answers = many([(list(k), *selects[k]) for k in keys], budget=budget, points_per_series=1)
        else:
            answers = []
            for k in keys:
                found = inner.select(list(k), *selects[k], budget=budget, points_per_series=1)
                answers.append(ColumnsSet(SeriesColumns.of(found.series), found.warnings, found.partial))
        return cls(inner, {k: (selects[k], a) for k, a in zip(keys, answers)})

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
               budget: QueryBudget | None = None, points_per_series: int = 0) -> SeriesSet:
        hit = self.fetched.get(tuple(matchers))
        if hit is not None and not skip_samples and hit.window[0] <= start_ms <= end_ms <= hit.window[1]:
            self.hits += 1
            if budget is not None:
                budget.check()
            return SeriesSet(hit.cut(start_ms, end_ms), list(hit.found.warnings), hit.found.partial)
        self.misses += 1
        return self.inner.select(matchers, start_ms, end_ms, skip_samples=skip_samples, budget=budget,
                                 points_per_series=points_per_series)

    def select_columns(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                       budget: QueryBudget | None = None, points_per_series: int = 0) -> ColumnsSet:
        """:meth:`select`, laid end to end (see :class:`~shardmon.model.storage.Querier`)."""
        hit = self.fetched.get(tuple(matchers))
        if hit is not None and hit.window[0] <= start_ms <= end_ms <= hit.window[1]:
            self.hits += 1
            if budget is not None:
                budget.check()
            return ColumnsSet(hit.cut_columns(start_ms, end_ms), list(hit.found.warnings), hit.found.partial)
        found = self.select(matchers, start_ms, end_ms, budget=budget, points_per_series=points_per_series)
        return ColumnsSet(SeriesColumns.of(found.series), found.warnings, found.partial)

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                    budget: QueryBudget | None = None) -> LabelsResult:
        return self.inner.label_names(matchers, start_ms, end_ms, budget=budget)

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                     budget: QueryBudget | None = None) -> LabelsResult:
        return self.inner.label_values(name, matchers, start_ms, end_ms, budget=budget)


def vector_of(engine: Engine, expr: str, ts_ms: int) -> list[Sample]:
    """Prometheus's ``EngineQueryFunc``: an instant query's vector (a native histogram sample's value its
    :class:`~shardmon.model.histogram.Histogram`), a scalar as one unlabelled sample."""
    result = engine.instant(expr, ts_ms)
    if result.result_type == "vector":
        return [(s.labels, float(s.values[0]) if s.histograms is None or s.histograms[0] is None else s.histograms[0])
                for s in result.series]
    if result.result_type == "scalar":
        return [(EMPTY_LABELS, float(result.scalar))]
    raise QueryExecutionError("rule result is not a vector or scalar")


class EngineQuery:
    """A rule's query on ``engine`` (a :data:`QueryFunc`), and :meth:`for_group` to prefetch a group's data."""

    def __init__(self, engine: Engine, prefetch: bool = True, prefetched: PrefetchQuerier | None = None) -> None:
        self.engine = engine
        self.prefetch = prefetch
        #: The snapshot this query reads from (a query returned by :meth:`for_group`), else None.
        self.prefetched = prefetched

    def __call__(self, expr: str, ts_ms: int) -> list[Sample]:
        return vector_of(self.engine, expr, ts_ms)

    def for_group(self, exprs: Sequence[str], ts_ms: int, outputs: set[str]) -> QueryFunc:
        """The query function for one evaluation of a group at ``ts_ms`` whose rules are ``exprs`` and write
        ``outputs`` (metric names): its selectors read once, now (see the module docstring)."""
        if not self.prefetch:
            return self
        parsed = []
        for text in exprs:
            try:
                parsed.append(self.engine.parse(text))
            except ShardmonError:
                continue  # The rule's own query reports it.
        selects = group_selects(parsed, self.engine.lookback_delta_ms, ts_ms, outputs)
        if not selects:
            return self
        try:
            querier = PrefetchQuerier.fetch(self.engine.querier, selects, self.engine.new_budget())
        except ShardmonError:
            return self  # Each rule queries on its own and reports its own error.
        return EngineQuery(self.engine.with_querier(querier), prefetch=False, prefetched=querier)


__all__ = ["EngineQuery", "PrefetchQuerier", "group_selects", "names_read", "vector_of"]
