"""What a write may bring into a shard: the series limits and the time guard.

Series limits (``shards.max_active_series`` per shard, ``shards.max_series_per_metric`` per metric
name): a write's series new to the head beyond a limit are taken out of the batch before anything is
made durable, so their samples never reach the WAL (replay needs no limits and gives the same head);
the rest of the batch is appended, and the write then fails with :class:`SeriesLimitError`
(non-retryable, gRPC INVALID_ARGUMENT). The per-metric limit is checked first, so a series refused by
its metric takes no room under the shard's limit.

Time guard (``shards.max_future_time``): samples more than that ahead of the shard's clock are
refused (``too_far_in_future``) by writes and backfill before anything is made durable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from shardmon.model.errors import InvalidWriteError
from shardmon.model.samples import SampleBatch
from shardmon.shards import metrics

if TYPE_CHECKING:
    from shardmon.shards.series import ShardSeries

_ADMITTED, _SERIES_LIMIT, _METRIC_SERIES_LIMIT = 0, 1, 2


class WriteOutcome(NamedTuple):
    """What a write did: samples appended, samples refused by reason, and whether the batch was a repeat."""

    appended: int
    rejected: dict[str, int]
    duplicate_batch: bool
LIMIT_REASONS = {_SERIES_LIMIT: "series_limit", _METRIC_SERIES_LIMIT: "metric_series_limit"}


class SeriesLimitError(InvalidWriteError):
    """A write brought series new to the head beyond ``shards.max_active_series`` or
    ``shards.max_series_per_metric``. The samples of the other series were appended (durably) and the
    batch id is remembered when any were; the refused series' samples are not in the WAL. Not
    retryable: retrying cannot succeed until series leave the head or the limit is raised."""

    def __init__(self, message: str, outcome: WriteOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


def admit_series(
    metric: np.ndarray, metric_active: np.ndarray | None, active: int, max_active: int, max_per_metric: int
) -> np.ndarray:
    """Which series new to the head a write may add, in the order they come.

    ``metric`` is each candidate's metric code, ``metric_active`` the series already in the head per
    code (codes past its end have none), ``active`` the series in the head. Returns a reason per
    candidate: 0 admitted, 1 ``series_limit``, 2 ``metric_series_limit`` (checked first, so a series
    refused by its metric takes no room under the shard's limit). A limit of 0 is no limit.
    """
    n = metric.shape[0]
    reasons = np.zeros(n, np.int8)
    if not n:
        return reasons
    if max_per_metric > 0:
        order = np.argsort(metric, kind="stable")
        m_sorted = metric[order]
        first = np.ones(n, bool)
        first[1:] = m_sorted[1:] != m_sorted[:-1]
        starts = np.flatnonzero(first)
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        rank = np.empty(n, np.int64)
        rank[order] = rank_sorted
        before = np.zeros(n, np.int64)
        if metric_active is not None and metric_active.shape[0]:
            known = metric < metric_active.shape[0]
            before[known] = metric_active[metric[known]]
        reasons[before + rank >= max_per_metric] = _METRIC_SERIES_LIMIT
    if max_active > 0:
        ok = reasons == _ADMITTED
        position = np.cumsum(ok) - 1  # among the series still admitted
        reasons[ok & (active + position >= max_active)] = _SERIES_LIMIT
    return reasons


class Limited(NamedTuple):
    """A batch after the series limits: what is left of it, its series new to the shard, ``{reason:
    (series, samples)}`` refused, and the metric names refused by ``max_series_per_metric``."""

    batch: SampleBatch
    new_ids: list[int]
    new_keys: list[bytes]
    refused: dict[str, tuple[int, int]]
    refused_metrics: list[str]


def apply_limits(batch: SampleBatch, new_ids: list[int], new_keys: list[bytes], new_names: list[str],
                 series: ShardSeries, in_head: np.ndarray, max_active: int, max_per_metric: int) -> Limited:
    """Drop from ``batch`` the series new to the head beyond the series limits. ``new_*``: the batch's
    series new to the shard; ``in_head``: per registered series, whether it is in the head."""
    idx = series.registry.lookup(batch.series_ids)
    batch_in_head = np.zeros(idx.shape[0], bool)
    known = idx >= 0
    batch_in_head[known] = in_head[idx[known]]
    rows = np.flatnonzero(~batch_in_head)
    if not rows.shape[0]:
        return Limited(batch, new_ids, new_keys, {}, [])
    # The candidates: each series new to the head once, in the order the batch lists them.
    _, first = np.unique(batch.series_ids[rows], return_index=True)
    cand = rows[np.sort(first)]
    cand_ids = batch.series_ids[cand]
    name_of_new = dict(zip(new_ids, new_names))
    local_codes = dict(series.metric_codes)
    metric = np.empty(cand.shape[0], np.int64)
    for k, (row, sid) in enumerate(zip(cand.tolist(), cand_ids.tolist())):
        i = int(idx[row])
        if i >= 0:
            metric[k] = series.metric_of[i]
        else:
            metric[k] = local_codes.setdefault(name_of_new[sid], len(local_codes))
    metric_active = None
    if max_per_metric:
        metric_active = np.bincount(series.metric_of[in_head], minlength=len(series.metric_codes))
    reasons = admit_series(metric, metric_active, int(in_head.sum()), max_active, max_per_metric)
    if not reasons.any():
        return Limited(batch, new_ids, new_keys, {}, [])
    names_by_code = {c: n for n, c in local_codes.items()}
    refused_metrics = sorted({names_by_code[int(c)] for c in metric[reasons == _METRIC_SERIES_LIMIT].tolist()})
    refused_ids = cand_ids[reasons > 0]
    reason_of = dict(zip(refused_ids.tolist(), reasons[reasons > 0].tolist()))
    row_reason = np.zeros(batch.num_series, np.int8)
    drop = np.isin(batch.series_ids, refused_ids)
    row_reason[drop] = [reason_of[int(sid)] for sid in batch.series_ids[drop].tolist()]
    sample_reason = row_reason[batch.sample_series]
    if batch.num_histograms:  # histogram samples count as samples
        sample_reason = np.concatenate((sample_reason, row_reason[batch.histograms.sample_series]))
    refused = {}
    for code, reason in LIMIT_REASONS.items():
        n_series = int((reasons == code).sum())
        if n_series:
            refused[reason] = (n_series, int((sample_reason == code).sum()))
    kept = [(i, k) for i, k in zip(new_ids, new_keys) if i not in reason_of]
    return Limited(batch.select_series(~drop), [i for i, _ in kept], [k for _, k in kept], refused, refused_metrics)


def limit_message(refused: dict[str, tuple[int, int]], refused_metrics: list[str], out: WriteOutcome,
                  max_active: int, max_per_metric: int) -> str:
    """The :class:`SeriesLimitError` message: the limit, what it refused, and what else happened."""
    parts = []
    if "series_limit" in refused:
        n_series, n_samples = refused["series_limit"]
        parts.append(f"{n_series} new series ({n_samples} samples) over shards.max_active_series = "
                     f"{max_active} series in the head")
    if "metric_series_limit" in refused:
        n_series, n_samples = refused["metric_series_limit"]
        names = ", ".join(refused_metrics[:5]) + (", ..." if len(refused_metrics) > 5 else "")
        parts.append(f"{n_series} new series ({n_samples} samples) over shards.max_series_per_metric = "
                     f"{max_per_metric} series in the head for metric {names}")
    other = {r: n for r, n in out.rejected.items() if r not in LIMIT_REASONS.values()}
    tail = f"; {out.appended} samples of other series appended"
    if other:
        tail += ", refused otherwise: " + ", ".join(f"{n} {r}" for r, n in sorted(other.items()))
    return "series limit reached: refused " + "; ".join(parts) + tail


def split_future(ts: np.ndarray, now_ms: int, max_future_ms: int) -> np.ndarray | None:
    """A mask of the timestamps more than ``max_future_ms`` ahead of ``now_ms`` (None when there are
    none, or when ``max_future_ms`` is 0: no limit)."""
    if max_future_ms <= 0 or not ts.shape[0]:
        return None
    far = ts > now_ms + max_future_ms
    return far if far.any() else None


def drop_future(batch: SampleBatch, now_ms: int, max_future_ms: int) -> tuple[SampleBatch, int]:
    """``batch`` without its samples (floats and histograms) more than ``max_future_ms`` ahead of ``now_ms``
    (and without the series left with none), and how many went; they are counted as ``too_far_in_future``."""
    far = split_future(batch.timestamps_ms, now_ms, max_future_ms)
    h = batch.histograms
    h_far = split_future(h.timestamps_ms, now_ms, max_future_ms) if h is not None else None
    if far is None and h_far is None:
        return batch, 0
    n = (0 if far is None else int(far.sum())) + (0 if h_far is None else int(h_far.sum()))
    metrics.SAMPLES_REJECTED.labels("too_far_in_future").inc(n)
    keep = np.ones(batch.timestamps_ms.shape[0], bool) if far is None else ~far
    had = _has_samples(batch)
    if h_far is not None:
        h = h.take(np.flatnonzero(~h_far))
    left = SampleBatch(batch.series, batch.sample_series[keep], batch.timestamps_ms[keep], batch.values[keep], h)
    return left.select_series(_has_samples(left) | ~had), n


def _has_samples(batch: SampleBatch) -> np.ndarray:
    """Per series of the batch's table: whether it has a float or histogram sample."""
    has = np.bincount(batch.sample_series, minlength=batch.num_series) > 0
    if batch.num_histograms:
        has |= np.bincount(batch.histograms.sample_series, minlength=batch.num_series) > 0
    return has
