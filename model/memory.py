"""An in-memory storage that is both an :class:`~shardmon.model.storage.Appender` and a
:class:`~shardmon.model.storage.Querier`: for the PromQL engine's tests and the script runner, where the
network is not what is being tested.

It keeps Prometheus's append rules that matter to query results: samples of a series are kept in
time order, and a sample with the timestamp of an existing one replaces nothing (the first wins). Native
histogram samples are kept beside the floats as :class:`~shardmon.model.storage.Series` carries them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.histogram_merge import merge_copies, merged
from shardmon.model.labels import Labels, Matcher, matches_all
from shardmon.model.samples import F64, I64, SampleBatch
from shardmon.model.storage import LabelsResult, QueryBudget, Series, SeriesSet


class MemoryStorage:
    """Series kept in dicts of numpy arrays. Not for production: appends copy arrays."""

    def __init__(self) -> None:
        self._series: dict[Labels, Series] = {}

    def append(self, batch: SampleBatch) -> None:
        labels_of = [Labels.from_canonical(k) for k in batch.series.keys()]
        order = np.lexsort((batch.timestamps_ms, batch.sample_series))
        refs = batch.sample_series[order]
        ts = batch.timestamps_ms[order]
        vals = batch.values[order]
        bounds = np.flatnonzero(np.diff(refs)) + 1
        for chunk_ts, chunk_vals, ref in zip(
            np.split(ts, bounds), np.split(vals, bounds), refs[np.concatenate(([0], bounds))] if refs.size else []
        ):
            self.add_series(labels_of[int(ref)], chunk_ts, chunk_vals)
        h = batch.histograms
        if h is not None and len(h):
            for ref in np.unique(h.sample_series).tolist():
                pos = np.flatnonzero(h.sample_series == ref)
                pos = pos[np.argsort(h.timestamps_ms[pos], kind="stable")]
                ts, vals, objs = merged(np.empty(0, I64), np.empty(0, F64), h.timestamps_ms[pos],
                                        [h.histogram(j) for j in pos.tolist()])
                self.add_series(labels_of[ref], ts, vals, objs)

    def add_series(self, labels: Labels, timestamps_ms: np.ndarray, values: np.ndarray,
                   histograms: np.ndarray | None = None) -> None:
        """Add samples to one series (merged in time order; an existing timestamp keeps its value).
        ``histograms``: as :class:`~shardmon.model.storage.Series` has them (None: all floats)."""
        new = Series(labels, np.asarray(timestamps_ms, dtype=I64), np.asarray(values, dtype=F64), histograms)
        old = self._series.get(labels)
        self._series[labels] = merge_copies(old if old is not None else new._replace(
            timestamps_ms=new.timestamps_ms[:0], values=new.values[:0],
            histograms=None), new)

    def clear(self) -> None:
        self._series.clear()

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
        budget: QueryBudget | None = None, points_per_series: int = 0,
    ) -> SeriesSet:
        if budget is not None:
            budget.check()
            max_series, max_samples = budget.remaining_series(), budget.remaining_samples()
        out = []
        n_samples = 0
        for labels in sorted(self._series):
            if not matches_all(labels, matchers):
                continue
            ts, vals, hists = self._series[labels][1:]
            lo = int(np.searchsorted(ts, start_ms, "left"))
            hi = int(np.searchsorted(ts, end_ms, "right"))
            if hi <= lo:
                continue
            if skip_samples:
                out.append(Series(labels, ts[:0], vals[:0]))
            else:
                hs = None if hists is None else hists[lo:hi]
                out.append(Series(labels, ts[lo:hi], vals[lo:hi], hs if hs is not None and hs.any() else None))
                n_samples += hi - lo
            # As a shard: stop loading as soon as the answer would be over what the budget has left.
            if budget is not None:
                if len(out) > max_series:
                    raise budget.over("max_series")
                if n_samples + len(out) * points_per_series > max_samples:
                    raise budget.over("max_samples")
        return SeriesSet(out, [])

    def label_names(self, matchers, start_ms, end_ms, *, budget=None) -> LabelsResult:
        series = self.select(matchers, start_ms, end_ms, skip_samples=True, budget=budget).series
        return LabelsResult(sorted({n for s in series for n, _ in s.labels}), [])

    def label_values(self, name, matchers, start_ms, end_ms, *, budget=None) -> LabelsResult:
        series = self.select(matchers, start_ms, end_ms, skip_samples=True, budget=budget).series
        return LabelsResult(sorted({s.labels.get(name) for s in series} - {""}), [])
