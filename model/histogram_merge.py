"""A series' float and native histogram samples merged into one time-ordered :class:`~shardmon.model.storage.Series`
(``values`` NaN where a histogram is, ``histograms`` the object array beside it), and two copies of one series
(replicas) merged by timestamp, histograms included.

Where a timestamp holds both a float and a histogram (only overlapping backfills can make that: writes refuse
the second as a duplicate timestamp), the histogram is kept.
"""

from __future__ import annotations

import numpy as np

from shardmon.model.histogram import HistogramColumns
from shardmon.model.storage import Series


def merged(ts: np.ndarray, vals: np.ndarray, hts: np.ndarray, hists: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floats ``ts, vals`` and histograms ``hts, hists`` (each in time order) as one time-ordered sequence:
    ``(timestamps, values, histograms)``, values NaN where a histogram is and histograms None where a float."""
    if ts.shape[0] and hts.shape[0]:
        clash = np.isin(ts, hts)
        if clash.any():
            ts, vals = ts[~clash], vals[~clash]
    all_ts = np.concatenate((np.asarray(ts, np.int64), np.asarray(hts, np.int64)))
    order = np.argsort(all_ts, kind="stable")
    values = np.concatenate((np.asarray(vals, np.float64), np.full(hts.shape[0], np.nan)))[order]
    objs = np.empty(all_ts.shape[0], dtype=object)
    objs[ts.shape[0]:] = hists if hists else None
    return all_ts[order], values, objs[order]


def with_histograms(series: list[Series], cols: HistogramColumns) -> list[Series]:
    """``series`` (row i of a batch's table is ``series[i]``) with the histogram samples of ``cols`` merged in."""
    out = list(series)
    refs = cols.sample_series.astype(np.int64)
    order = np.argsort(refs, kind="stable")
    bounds = np.searchsorted(refs[order], np.arange(len(series) + 1))
    for i in np.flatnonzero(np.diff(bounds)).tolist():
        pos = order[bounds[i]:bounds[i + 1]]
        pos = pos[np.argsort(cols.timestamps_ms[pos], kind="stable")]
        s = series[i]
        ts, vals, objs = merged(s.timestamps_ms, s.values, cols.timestamps_ms[pos],
                                [cols.histogram(j) for j in pos.tolist()])
        out[i] = Series(s.labels, ts, vals, objs)
    return out


def merge_copies(a: Series, b: Series) -> Series:
    """Two copies of one series merged by timestamp, the first copy's sample kept where both have one."""
    ts = np.concatenate((a.timestamps_ms, b.timestamps_ms))
    vals = np.concatenate((a.values, b.values))
    ts, first = np.unique(ts, return_index=True)
    if a.histograms is None and b.histograms is None:
        return Series(a.labels, ts, vals[first])
    objs = np.concatenate((_objects(a), _objects(b)))[first]
    return Series(a.labels, ts, vals[first], objs if any(h is not None for h in objs) else None)


def _objects(s: Series) -> np.ndarray:
    if s.histograms is not None:
        return s.histograms
    return np.full(s.values.shape[0], None, dtype=object)
