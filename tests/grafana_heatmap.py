"""What Grafana's Prometheus data source (Grafana 10.x/11.x, ``pkg/promlib/converter/prom.go``, the backend that
parses ``/api/v1/query_range`` answers) reads from native histogram results, as a strict Python parser for the tests.

Its rules, as the converter applies them (restated here, not copied):

- a ``matrix``/``vector`` item's ``metric`` is an object of strings; ``histogram`` is one point, ``histograms`` an
  array of points; a series with either becomes a frame of type ``heatmap-cells`` (fields ``xMax`` time, ``yMin``,
  ``yMax``, ``count`` float64, ``yLayout`` int8; ``yMin`` carries the labels) instead of a time series;
- a point is an array of exactly two elements: a JSON *number* (seconds, read as float64 and truncated to
  milliseconds) and an object; of the object, ``count`` and ``sum`` are skipped, other keys too, and
  ``buckets`` (which may be absent: no cells) is an array of buckets;
- a bucket is an array of exactly four elements: a JSON integer that fits int8 (the boundary rule, kept as
  ``yLayout``; Prometheus's rules are 0..3), then three *strings* parsed by Go's ``strconv.ParseFloat`` (lower
  bound, upper bound, count: ``"1.5"``, ``"1e-07"``, ``"+Inf"``, ``"NaN"`` are accepted); each bucket is one cell
  at the point's time. A fifth element, a number instead of a string, a string timestamp: the whole answer fails.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: Go's strconv.ParseFloat on what Prometheus writes (decimal, exponent, the infinities, NaN; case-insensitive).
_GO_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)|nan", re.IGNORECASE)


class Cell(NamedTuple):
    x_max_ms: int
    y_min: float
    y_max: float
    count: float
    y_layout: int


class ShapeError(AssertionError):
    """The answer has a shape Grafana's converter refuses."""


def _go_float(s, what: str) -> float:
    if not isinstance(s, str) or not _GO_FLOAT.fullmatch(s):
        raise ShapeError(f"{what}: {s!r} is not a string strconv.ParseFloat reads")
    return float(s.replace("Infinity", "inf").replace("infinity", "inf"))


def _point(p, cells: list[Cell]) -> None:
    if not isinstance(p, list) or len(p) != 2:
        raise ShapeError(f"a histogram point must be [time, object], got {p!r}")
    t, h = p
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ShapeError(f"a histogram point's time must be a JSON number, got {t!r}")
    if not isinstance(h, dict):
        raise ShapeError(f"a histogram point's second element must be an object, got {h!r}")
    ms = int(float(t) * 1000.0)
    for b in h.get("buckets", None) or []:
        if not isinstance(b, list) or len(b) != 4:
            raise ShapeError(f"a bucket must be [rule, lower, upper, count], got {b!r}")
        rule = b[0]
        if isinstance(rule, bool) or not isinstance(rule, int) or not -128 <= rule <= 127:
            raise ShapeError(f"a bucket's boundary rule must be a JSON integer (int8), got {rule!r}")
        cells.append(Cell(ms, _go_float(b[1], "lower bound"), _go_float(b[2], "upper bound"),
                          _go_float(b[3], "count"), rule))


def heatmap_frames(data: dict) -> dict[tuple, list[Cell]]:
    """The ``heatmap-cells`` frames Grafana makes of a query answer's ``data``: per series (its labels as sorted
    pairs), its cells in the answer's order. Float-only series make no such frame and are left out."""
    if data.get("resultType") not in ("matrix", "vector"):
        raise ShapeError(f"no heatmap of a {data.get('resultType')!r} result")
    frames = {}
    for item in data["result"]:
        metric = item.get("metric", {})
        if not all(isinstance(v, str) for v in metric.values()):
            raise ShapeError(f"labels must be strings: {metric!r}")
        if "histogram" not in item and "histograms" not in item:
            continue
        cells: list[Cell] = []
        if "histogram" in item:
            _point(item["histogram"], cells)
        for p in item.get("histograms", []):
            _point(p, cells)
        frames[tuple(sorted(metric.items()))] = cells
    return frames
