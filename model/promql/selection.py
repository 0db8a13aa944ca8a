"""A selector's value over the step grid, from the samples of its series laid end to end.

- :func:`instant_selection`: an instant selector at every step: a series' latest sample in
  ``[t - lookback, t]`` (both ends inclusive, ``t`` the step's reference time: the step or its ``@`` time,
  minus the offset), unless that sample is a staleness marker, which ends the series.
- :func:`range_selection`: a range selector's samples, staleness markers dropped.

The querier's engine (``shardmon.querier.promql.selector``) fetches and calls these; a shard calls them on
its own series for the aggregation push-down (:mod:`shardmon.model.promql.pushdown`).
"""

from __future__ import annotations

import numpy as np

from shardmon.model.labels import Labels
from shardmon.model.promql.value import InstantVector, RangeVector
from shardmon.model.promql.window import searchsorted_rows
from shardmon.model.samples import F64, I64, is_stale


def instant_selection(labels: list[Labels], ts: np.ndarray, vals: np.ndarray, offsets: np.ndarray,
                      refs: np.ndarray, lookback_ms: int, *, sample_times: bool = False,
                      hists: np.ndarray | None = None) -> InstantVector:
    """The instant vector of series ``labels`` (samples ``ts``/``vals`` cut at ``offsets``) at the reference
    times ``refs`` (one per step). With ``sample_times``, also the timestamp of each sample picked
    (``sample_ms``), for ``timestamp()``. ``hists``: the samples' native histograms (object array parallel to
    ``vals``, None where a float), picked as the floats (a histogram sample is never a staleness marker)."""
    n_steps = refs.shape[0]
    if ts.shape[0] == 0:
        shape = (len(labels), n_steps)
        return InstantVector(labels, np.zeros(shape, dtype=F64), np.zeros(shape, dtype=bool),
                             sample_ms=np.zeros(shape, dtype=I64) if sample_times else None)
    # The latest sample at or before each step, if it is of this series, recent enough and not a marker.
    idx = searchsorted_rows(ts, offsets, refs, "right") - 1
    present = idx >= offsets[:-1, None]
    idx = np.maximum(idx, 0)
    values = vals[idx]
    present &= ts[idx] >= (refs - lookback_ms)[None, :]
    picked = None
    if hists is not None:
        picked = hists[idx]
        is_hist = picked != None  # noqa: E711 - elementwise
        present &= ~is_stale(values) | is_hist
        picked = np.where(present & is_hist, picked, None)
        if not (picked != None).any():  # noqa: E711
            picked = None
    else:
        present &= ~is_stale(values)
    sample_ms = ts[idx] if sample_times else None
    return InstantVector(labels, values, present, sample_ms=sample_ms, histograms=picked)


def range_selection(labels: list[Labels], ts: np.ndarray, vals: np.ndarray, offsets: np.ndarray,
                    ends: np.ndarray, range_ms: int, one_name: bool, hists: np.ndarray | None = None) -> RangeVector:
    """The range vector of series ``labels`` with windows ``[end - range_ms, end]`` for each of ``ends``,
    staleness markers dropped. ``one_name``: every series has the same metric name. ``hists``: the samples'
    native histograms (as :func:`instant_selection`'s), kept parallel to the values."""
    stale = is_stale(vals)
    if hists is not None:
        stale &= hists == None  # noqa: E711 - a histogram's NaN placeholder is no marker
    if stale.any():  # Drop the markers: re-cut the series at their new offsets.
        kept = np.concatenate(([0], np.cumsum(~stale)))
        offsets = kept[offsets]
        ts, vals = ts[~stale], vals[~stale]
        if hists is not None:
            hists = hists[~stale]
    if hists is not None and not (hists != None).any():  # noqa: E711
        hists = None
    return RangeVector(labels, ts, vals, offsets, ends, range_ms, one_name, hists)


__all__ = ["instant_selection", "range_selection"]
