"""The Prometheus 2.53 parts of the test-script format, for :mod:`shardmon.querier.promqltest`.

- ``eval range from <t> to <t> step <d> <expr>`` (and ``eval_fail range ...``): a range query; each
  expected series lists its values over the steps in the expanding notation (``_`` where the series has
  no point), and the result must hold exactly those points, within the usual tolerance (2.53's
  ``compareResult`` of a matrix).
- ``eval_warn`` / ``eval_info`` (instant or range): the query must give at least one warning / info
  annotation. Prometheus 2.53's runner has neither (they came with later releases, which also make a
  plain ``eval`` fail on an unexpected annotation); here a plain ``eval`` ignores annotations, as 2.53's
  runner does, so 2.53's own scripts run unchanged.

2.53 has no ``expect`` lines, no ``expected_fail_message``/``expected_fail_regexp`` and no
``load_with_nhcb``: those are Prometheus 3's, and a script using them is refused as invalid here.
"""

from __future__ import annotations

import math
import re

import numpy as np

from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels
from shardmon.querier.promql import QueryResult
from shardmon.querier.promqltest_histograms import compare_histogram_point

#: ``eval[_fail|_ordered|_warn|_info] instant [at <t>] <expr>``.
EVAL_INSTANT = re.compile(r"^eval(?:_(fail|ordered|warn|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
#: ``eval[_fail|_warn|_info] range from <t> to <t> step <d> <expr>`` (2.53 reads ``eval[_fail] range``).
EVAL_RANGE = re.compile(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")

_EPSILON = 1e-6  # Relative error allowed between values, as Prometheus's test.
_MIN_NORMAL = 2.2250738585072014e-308  # The smallest positive normal float64.


def almost_equal(a: float, b: float) -> bool:
    """Prometheus's test comparison: NaN equals NaN, else a relative difference below 1e-6."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    if a == 0 or b == 0 or diff < _MIN_NORMAL:
        return diff < _EPSILON * _MIN_NORMAL
    return diff / (abs(a) + abs(b)) < _EPSILON


def compare_matrix(expected: dict[Labels, list], start_ms: int, end_ms: int, step_ms: int,
                   result: QueryResult) -> str | None:
    """None if the range query's ``result`` has exactly the ``expected`` points, else what differs."""
    if result.result_type != "matrix":
        return f"expected a matrix, got a {result.result_type}"
    seen = set()
    for s in result.series:
        values = expected.get(s.labels)
        if values is None:
            return f"unexpected series {s.labels} in result, has {_points(s.timestamps_ms, s.values)}"
        seen.add(s.labels)
        if start_ms + (len(values) - 1) * step_ms > end_ms:
            return (f"expected {len(values)} points for {s.labels}, but the query time range cannot return "
                    "this many points")
        want = [(start_ms + i * step_ms, v) for i, v in enumerate(values) if v is not None]
        if len(want) != s.timestamps_ms.shape[0]:
            return (f"expected {len(want)} points for {s.labels}, but got "
                    f"{_points(s.timestamps_ms, s.values)}")
        for i, (t, v) in enumerate(want):
            got_t, got_v = int(s.timestamps_ms[i]), float(s.values[i])
            if got_t != t:
                return f"expected point {i} of {s.labels} at t={t}, got t={got_t}"
            got_h = None if s.histograms is None else s.histograms[i]
            if isinstance(v, Histogram) or got_h is not None:
                problem = compare_histogram_point(s.labels, v, got_h, got_v, repr)
                if problem:
                    return f"at t={t}: {problem}"
                continue
            if not almost_equal(v, got_v):
                return f"expected {v!r} at t={t} for {s.labels}, got {got_v!r}"
    missing = [str(lbls) for lbls in expected if lbls not in seen]
    if missing:
        return f"expected series not in result: {'; '.join(missing)}"
    return None


def check_annotations(mode: str | None, result: QueryResult) -> str | None:
    """For ``eval_warn`` / ``eval_info``: None if ``result`` has the annotation the mode asks for."""
    if mode == "warn" and not result.warnings:
        return "expected warnings, got none"
    if mode == "info" and not result.infos:
        return "expected info annotations, got none"
    return None


def _points(ts: np.ndarray, values: np.ndarray) -> str:
    body = " ".join(f"{v!r}@{t}" for t, v in zip(ts.tolist()[:10], values.tolist()[:10]))
    return f"{ts.shape[0]} points [{body}{' ...' if ts.shape[0] > 10 else ''}]"


__all__ = ["EVAL_INSTANT", "EVAL_RANGE", "check_annotations", "compare_matrix"]
