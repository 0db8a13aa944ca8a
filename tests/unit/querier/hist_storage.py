"""A small in-test Querier whose series hold native histograms (independent of MemoryStorage, so the engine's
tests do not rest on it): ``select_columns`` answers :class:`SeriesColumns` with ``histograms``, floats and histograms merged in
time order as the contract says."""

from __future__ import annotations

import numpy as np

from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels, matches_all
from shardmon.model.storage import SeriesColumns


class HistStorage:
    """Series of ``(labels, [(t_ms, float | Histogram), ...])``."""

    def __init__(self) -> None:
        self._series: dict[Labels, list[tuple[int, float | Histogram]]] = {}

    def add(self, labels: Labels, samples) -> None:
        self._series.setdefault(labels, []).extend(samples)
        self._series[labels].sort(key=lambda s: s[0])

    def select_columns(self, matchers, start_ms, end_ms, *, budget=None, points_per_series=0):
        labels, ts, vals, hists = [], [], [], []
        for lbls in sorted(self._series):
            if not matches_all(lbls, matchers):
                continue
            picked = [(t, v) for t, v in self._series[lbls] if start_ms <= t <= end_ms]
            if not picked:
                continue
            labels.append(lbls)
            ts.append(np.array([t for t, _ in picked], dtype=np.int64))
            vals.append(np.array([np.nan if isinstance(v, Histogram) else v for _, v in picked], dtype=np.float64))
            hists.append(np.array([v if isinstance(v, Histogram) else None for _, v in picked] + [0], dtype=object)[:-1])
        cols = SeriesColumns.of_arrays(labels, ts, vals)
        h = np.concatenate(hists) if hists else None
        if h is not None and not (h != None).any():  # noqa: E711
            h = None
        return cols._replace(histograms=h), [], False

    def select(self, *args, **kwargs):
        raise NotImplementedError("select_columns only")
