"""The series one target exposes, as the scrape loop sends them: the target's labels attached, metric
relabeling applied and the label limits checked, once per new series and never per sample.

:func:`attach_target_labels` is Prometheus's ``mutateSampleLabels`` (on a conflict the exposed label is
renamed ``exported_<name>``, or ``exported_exported_<name>``..., unless ``honor_labels``);
``metric_relabel_configs`` may then rename or drop the series; :func:`check_series` is the check
Prometheus makes of each new series (a metric name, ``label_limit``, ``label_name_length_limit``,
``label_value_length_limit``). :class:`TargetSeries` keeps the outcome for every entry of the parser's
series cache, numbered into one :class:`~shardmon.model.samples.SeriesTable` that starts with the
:data:`SYNTHETIC` series.
"""

from __future__ import annotations

import numpy as np

from shardmon.ingest.exposition import SeriesCache
from shardmon.ingest.relabel import Relabeler
from shardmon.ingest.target import Target
from shardmon.model.label_limits import LabelLimits
from shardmon.model.labels import METRIC_NAME, Labels, series_id_of
from shardmon.model.samples import U64, SeriesTable

#: The synthetic series of every scrape, at table positions 0..4, in this order.
SYNTHETIC = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
             "scrape_series_added")
N_SYNTHETIC = len(SYNTHETIC)
#: The table position of a cache entry that metric relabeling dropped, or that fails the scrape.
DROPPED, INVALID = -1, -2


def attach_target_labels(exposed: Labels, target: Target) -> Labels:
    """The labels of an exposed series once the target's are attached, as Prometheus's
    ``mutateSampleLabels`` does before metric relabeling.

    With ``honor_labels`` an exposed label wins (even an empty one, which then vanishes). Otherwise the
    target's label wins and a non-empty exposed one is kept as ``exported_<name>``, prefixed again while
    that name is taken by an exposed label, a target label or an earlier renamed one.
    """
    d = dict(exposed)
    if target.honor_labels:
        for name, value in target.labels:
            d.setdefault(name, value)
        return Labels.from_dict(d)
    conflicts = [(name, d[name]) for name, _ in target.labels if d.get(name)]
    d.update(target.labels)
    if conflicts:
        conflicts.sort(key=lambda c: len(c[0]))  # As Prometheus: shorter names pick their new names first.
        taken = {name for name, _ in exposed} | {name for name, _ in target.labels}
        for name, value in conflicts:
            new = "exported_" + name
            while new in taken:
                new = "exported_" + new
            taken.add(new)
            d[new] = value
    return Labels.from_dict(d)


def check_series(labels: Labels, target: Target) -> str:
    """Why a series (final labels) fails the scrape, as Prometheus checks each new series; "" if it does not."""
    if not labels.get(METRIC_NAME):
        return f"missing metric name ({METRIC_NAME} label)"
    o = target.options
    over = LabelLimits(o.label_limit, o.label_name_length_limit, o.label_value_length_limit).check(labels)
    return over[1] if over else ""


class TargetSeries:
    """The series a target exposes, as one :class:`SeriesTable`: the synthetic series at positions
    0..4, then every distinct final series in the order the parser cache met it.

    ``pos_of[i]`` is the table position of cache entry ``i``, or ``DROPPED`` (metric relabeling dropped
    it) or ``INVALID`` (``errors[i]`` says why it fails the scrape). Rebuilt only when the cache gains
    series or renumbers them; between those, every scrape sends the same table object, so the forwarder's
    split by shard is computed once. A dropped or invalid series never enters the table.
    """

    def __init__(self, target: Target, relabeler: Relabeler | None) -> None:
        self.target, self.relabeler = target, relabeler
        self.generation = -1
        self._reset()

    def _reset(self) -> None:
        keys = [self.target.labels.with_(**{METRIC_NAME: name}).canonical() for name in SYNTHETIC]
        self.ids = np.array([series_id_of(k) for k in keys], U64)
        self.pos_of = np.empty(0, np.int64)
        self.errors: dict[int, str] = {}
        # The final keys live only in the table's blob (a scraper holds one table per target); a new
        # series' key is matched by id, then compared byte for byte with the key at that id's position.
        self.table = SeriesTable.from_keys(self.ids, keys)

    def sync(self, cache: SeriesCache) -> bool:
        """Follow the cache; returns True when the table was rebuilt with a new numbering."""
        renumbered = self.generation != cache.generation
        if renumbered:
            self.generation = cache.generation
            self._reset()
        start, labels = self.pos_of.shape[0], cache.labels
        if start == len(labels):
            return renumbered
        new_pos = np.empty(len(labels) - start, np.int64)
        table = self.table
        order = np.argsort(self.ids, kind="stable")
        ranked = self.ids[order]
        added: dict[int, list[int]] = {}  # id -> positions given by this call
        new_keys: list[bytes] = []
        for j, exposed in enumerate(labels[start:]):
            final: Labels | None = attach_target_labels(exposed, self.target)
            if self.relabeler is not None:
                final = self.relabeler(final)  # metric_relabel_configs: once per new series, never per sample
            if final is None:
                new_pos[j] = DROPPED
                continue
            problem = check_series(final, self.target)
            if problem:
                new_pos[j] = INVALID
                self.errors[start + j] = problem
                continue
            key = final.canonical()
            sid = series_id_of(key)
            pos = None
            lo = int(np.searchsorted(ranked, np.uint64(sid)))
            while pos is None and lo < ranked.shape[0] and int(ranked[lo]) == sid:
                if table.key(int(order[lo])) == key:
                    pos = int(order[lo])
                lo += 1
            for p in added.get(sid, ()):
                if pos is None and new_keys[p - len(table)] == key:
                    pos = p
            if pos is None:
                pos = len(table) + len(new_keys)
                new_keys.append(key)
                added.setdefault(sid, []).append(pos)
            new_pos[j] = pos
        self.pos_of = np.concatenate((self.pos_of, new_pos))
        if new_keys:
            self.ids = np.concatenate((self.ids, np.fromiter(map(series_id_of, new_keys), U64, len(new_keys))))
            lengths = np.fromiter(map(len, new_keys), np.int64, len(new_keys))
            ends = np.concatenate((table.ends.astype(np.int64), len(table.blob) + np.cumsum(lengths)))
            self.table = SeriesTable(self.ids, table.blob + b"".join(new_keys), ends.astype(table.ends.dtype))
        return renumbered
