"""What the querier's unit tests share: hand-made data in a memory storage, an engine over it, the
results read back, and the one comparison of an answer with the expected value (:func:`same`).

Test modules import these (``from tests.unit.querier.conftest import ...``): they are plain helpers,
used inside Hypothesis tests too, not fixtures.
"""

from __future__ import annotations

import math

import numpy as np

from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import STALE_NAN_BITS
from shardmon.querier.promql import Engine, QueryResult

S = 1000  # One second in ms.
M = 60 * S

#: A series as the tests write it: labels, timestamps in ms and values.
SeriesData = tuple[Labels, list[int], list[float]]


def lbl(**kv: str) -> Labels:
    return Labels.from_dict(kv)


def storage_with(*series: SeriesData) -> MemoryStorage:
    storage = MemoryStorage()
    for labels, ts, vals in series:
        storage.add_series(labels, np.array(ts, dtype=np.int64), np.array(vals, dtype=np.float64))
    return storage


def engine_with(*series: SeriesData, **options) -> Engine:
    """An engine (``options`` as :class:`Engine` takes them) over a memory storage of ``series``."""
    return Engine(storage_with(*series), **options)


def as_dict(result: QueryResult) -> dict[Labels, float]:
    """An instant vector result as {labels: value}; a label set twice in it is a failure."""
    assert result.result_type == "vector", result.result_type
    out = {s.labels: float(s.values[0]) for s in result.series}
    assert len(out) == len(result.series), "duplicate label sets in the result"
    return out


def single(result: QueryResult) -> float:
    """The value of an instant vector result of exactly one series."""
    [value] = as_dict(result).values()
    return value


def matrix(result: QueryResult) -> dict[Labels, list[tuple[int, float]]]:
    """A range result as {labels: [(timestamp, value), ...]}, in the order the engine gives."""
    assert result.result_type == "matrix", result.result_type
    return {s.labels: list(zip(s.timestamps_ms.tolist(), s.values.tolist())) for s in result.series}


def points(result: QueryResult) -> dict[Labels, dict[int, float]]:
    """A range result as {labels: {timestamp: value}}; each series' timestamps must increase."""
    out = {}
    for labels, pts in matrix(result).items():
        ts = [t for t, _ in pts]
        assert all(a < b for a, b in zip(ts, ts[1:])), (labels, ts)
        out[labels] = dict(pts)
    return out


def _is_stale(x: float) -> bool:
    return int(np.float64(x).view(np.uint64)) == STALE_NAN_BITS


def same(
    got: float | None, want: float | None, *, rel_tol: float = 0.0, abs_tol: float = 0.0, signed_zero: bool = True
) -> bool:
    """Whether ``got`` (the engine's answer) is ``want`` as a user of the API would see it.

    ``None`` (no value at that step) matches only ``None``. A NaN matches only a NaN, and a staleness
    marker only a staleness marker (one in an answer is a bug: markers never leave a selector). An
    infinity matches only the same infinity, and a zero only a zero of the same sign (Prometheus
    prints ``-0``), unless ``signed_zero`` is false where the engine is known to differ. Other numbers
    must be equal, or within ``rel_tol`` of ``want`` (relative to ``want``, as ``pytest.approx``) or
    ``abs_tol`` where a caller allows for rounding.
    """
    if got is None or want is None:
        return got is want
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want) and _is_stale(got) == _is_stale(want)
    if got == want:
        return not signed_zero or math.copysign(1.0, got) == math.copysign(1.0, want)
    if math.isinf(got) or math.isinf(want):
        return False
    return abs(got - want) <= max(rel_tol * abs(want), abs_tol)
