"""The native histogram parts of the PromQL script runner (querier/promqltest.py): series values that hold
``{{...}}`` histograms (``shardmon.model.histogram_notation``) loaded through ``SampleBatch.histograms``, an
instant evaluation's expected histogram, and the comparison of a result point with it (2.53's runner:
equal after compaction)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shardmon.model.histogram import Histogram, HistogramColumns
from shardmon.model.histogram_notation import NotationError, expand_item, format_histogram, same_histogram, split_items
from shardmon.model.labels import Labels
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch


def histogram_values(text: str, interval: int, parse_floats: Callable[[str], list], error: Callable[[str], Exception]
                     ) -> tuple:
    """A series' values mixing histograms with float items (``parse_floats`` expands one float item):
    (float timestamps, float values, histogram timestamps, histograms)."""
    fts, fvals, hts, hs = [], [], [], []
    n = 0
    try:
        for _, item in split_items(text):
            if item.startswith("{{"):
                for h in expand_item(item):
                    hts.append(n * interval)
                    hs.append(h)
                    n += 1
                continue
            for v in parse_floats(item):
                if v is not None:
                    fts.append(n * interval)
                    fvals.append(v)
                n += 1
    except NotationError as exc:
        raise error(f"invalid histogram: {exc}") from None
    return np.array(fts, dtype=I64), np.array(fvals, dtype=F64), hts, hs


def expected_histogram(text: str, error: Callable[[str], Exception]) -> Histogram:
    """An instant evaluation's expected histogram (exactly one)."""
    try:
        items = split_items(text)
        values = expand_item(items[0][1]) if len(items) == 1 else []
    except NotationError as exc:
        raise error(f"invalid histogram: {exc}") from None
    if len(values) != 1:
        raise error("expected exactly one value per series in an instant evaluation")
    return values[0]


def compare_histogram_point(labels: Labels, expected, got: Histogram | None, value: float, fmt) -> str | None:
    """Where a histogram is expected or returned: "" if they agree, the difference if not; None when both are
    floats (the float comparison decides)."""
    if isinstance(expected, Histogram):
        if got is None:
            return f"expected histogram {format_histogram(expected)} for {labels}, got float {fmt(value)}"
        if not same_histogram(expected, got):
            return f"expected {format_histogram(expected)} for {labels}, got {format_histogram(got)}"
        return ""
    if got is not None:
        return f"expected float {fmt(expected)} for {labels}, got histogram {format_histogram(got)}"
    return None


def batch_with_histograms(defs: dict, hdefs: dict) -> SampleBatch:
    """A batch of float series (``defs``) and series holding histograms (``hdefs``: timestamps and values of
    their float samples, then their histograms' timestamps and histograms)."""
    all_labels = list(defs) + [lbls for lbls in hdefs if lbls not in defs]
    floats = dict(defs)
    for lbls, (fts, fvals, _hts, _hs) in hdefs.items():
        floats[lbls] = (fts, fvals)
    keys = [lbls.canonical() for lbls in all_labels]
    ids = np.array([lbls.series_id() for lbls in all_labels], dtype=U64)
    refs = np.concatenate([np.full(floats[lb][0].shape[0], n, dtype=U32) for n, lb in enumerate(all_labels)])
    ts = np.concatenate([floats[lb][0] for lb in all_labels]).astype(I64)
    vals = np.concatenate([floats[lb][1] for lb in all_labels]).astype(F64)
    batch = SampleBatch.of(ids, keys, refs, ts, vals)
    index = {lb: n for n, lb in enumerate(all_labels)}
    h_refs = [index[lb] for lb, (_, _, hts, _) in hdefs.items() for _ in hts]
    h_ts = [t for _, (_, _, hts, _) in hdefs.items() for t in hts]
    hists = [h for _, (_, _, _, hs) in hdefs.items() for h in hs]
    return batch._replace(histograms=HistogramColumns.of(h_refs, h_ts, hists))


__all__ = ["batch_with_histograms", "compare_histogram_point", "expected_histogram", "histogram_values"]
