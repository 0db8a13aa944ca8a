"""A query result as the ``data`` of Prometheus's JSON answer, rendered in bulk, not point by point.

Values are strings written as Prometheus's ``jsonutil.MarshalFloat``: Go's ``strconv.FormatFloat(v, 'f', -1,
64)`` (``"1.5"``, ``"2"``, ``"NaN"``, ``"+Inf"``) but with an exponent below 1e-6 and from 1e21 on (``"1.5e-07"``,
``"1e+21"``); a scalar result's value is always without exponent (``"0.00000015"``), as Prometheus writes it.
Timestamps are seconds with the millisecond digits, as Prometheus's ``marshalTimestamp`` (``1435781451.781``,
``1.050``, ``2``).

Native histogram samples are written as Prometheus 2.53's ``json_codec.go``: a vector sample has
``"histogram": [ts, {...}]`` instead of ``"value"``, a matrix series ``"histograms": [[ts, {...}], ...]`` after
its ``"values"`` (each only when it has such points), the object being ``{"count", "sum", "buckets"}`` with
the non-empty buckets as ``[boundary rule, lower, upper, count]`` (:func:`histogram_json`). Series with
histograms are rendered point by point (a histogram is an object anyway); float-only series as above.

A result's points are rendered without a Python object per point: orjson writes every value of the
result at once (the shortest digits that read back as the value, as Go and Python's ``repr`` choose them),
and numpy cuts that text at the commas, drops the ``.0`` of whole numbers and lays the pieces out: each
point is three pieces (``[<time>,"`` of its step, formatted once per distinct time; its value's digits;
``"],`` or the series' closing), each series a header (``{"metric":{...},"values":[``), and the answer is
one gather of bytes from those pieces. Values orjson writes otherwise (with an exponent, or ``null`` for NaN
and the infinities) are formatted one by one by :func:`format_value`, as are all values of tiny answers.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import orjson

from shardmon.model.histogram import Histogram, iter_buckets
from shardmon.model.labels import Labels

#: Points rendered per gather: its index arrays stay within the CPU's caches.
_CHUNK_POINTS = 1 << 15
_COMMA, _DOT, _ZERO, _E, _N = (ord(c) for c in ",.0en")


def format_value(v: float) -> str:
    """A sample value as Prometheus writes it (``jsonutil.MarshalFloat``: Go's ``FormatFloat(v, 'f', -1, 64)``,
    or ``'e'`` when ``0 < |v| < 1e-6`` or ``|v| >= 1e21``; Python's ``repr`` writes that form as Go does)."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    a = abs(v)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        return repr(v)
    return format_scalar(v)


def format_scalar(v: float) -> str:
    """A scalar result's value as Prometheus writes it (Go's ``FormatFloat(v, 'f', -1, 64)``, no exponent)."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(v)
    if "e" in r:
        return np.format_float_positional(v, unique=True, trim="-")
    return r[:-2] if r.endswith(".0") else r


def histogram_json(h: Histogram) -> str:
    """A native histogram as Prometheus's ``jsonutil.MarshalHistogram`` writes it: ``count``, ``sum`` and the
    non-empty buckets in :func:`~shardmon.model.histogram.iter_buckets` order (no ``buckets`` key when none)."""
    buckets = [f'[{b.boundary_rule},"{format_value(b.lower)}","{format_value(b.upper)}","{format_value(b.count)}"]'
               for b in iter_buckets(h) if b.count != 0]
    head = f'{{"count":"{format_value(h.count)}","sum":"{format_value(h.sum)}"'
    return head + (',"buckets":[' + ",".join(buckets) + "]}" if buckets else "}")


def _histogram_series_json(s, matrix: bool) -> str:
    """One result series that holds histogram points (see the module docstring)."""
    hists = s.histograms
    ts = [format_ts(t) for t in s.timestamps_ms.tolist()]
    head = '{"metric":' + labels_json(s.labels)
    if not matrix:
        h = hists[0] if len(hists) else None
        if h is None:
            return head + f',"value":[{ts[0]},"{format_value(float(s.values[0]))}"]}}'
        return head + f',"histogram":[{ts[0]},{histogram_json(h)}]}}'
    floats = [f'[{t},"{format_value(v)}"]' for t, v, h in zip(ts, s.values.tolist(), hists) if h is None]
    points = [f"[{t},{histogram_json(h)}]" for t, h in zip(ts, hists) if h is not None]
    out = head
    if floats:
        out += ',"values":[' + ",".join(floats) + "]"
    if points:
        out += ',"histograms":[' + ",".join(points) + "]"
    return out + "}"


def format_ts(ms: int) -> str:
    """A timestamp in seconds with the millisecond digits, as Prometheus's MarshalTimestamp."""
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    frac = ms % 1000
    return f"{sign}{ms // 1000}.{frac:03d}" if frac else f"{sign}{ms // 1000}"


@functools.lru_cache(maxsize=1 << 20)
def labels_json(labels: Labels) -> str:
    """A series' labels as the API's ``metric`` object, memoised (dashboards ask for the same series)."""
    return json.dumps(labels.to_dict())


def value_texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every value of a float64 array as :func:`format_value` writes it: ``(text, starts, lengths)``, value i
    being the bytes ``text[starts[i]:starts[i] + lengths[i]]`` (``text`` a uint8 array)."""
    vals = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    n = vals.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    text = np.frombuffer(orjson.dumps(vals, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
    commas = np.flatnonzero(text == _COMMA)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 1
    starts[1:] = commas + 1
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = commas
    ends[-1] = text.shape[0] - 1
    # Whole numbers lose their ".0" (every value orjson writes has a '.' or an 'e', so two bytes at least).
    ends -= ((text[ends - 1] == _ZERO) & (text[ends - 2] == _DOT)) * 2
    # An exponent or a null (NaN, +-Inf): formatted one by one, appended after orjson's text.
    odd_at = np.flatnonzero((text == _E) | (text == _N))
    if odd_at.shape[0]:
        odd = np.unique(np.searchsorted(starts, odd_at, "right") - 1)
        extra = [format_value(v).encode() for v in vals[odd].tolist()]
        lens = np.fromiter(map(len, extra), np.int64, len(extra))
        starts[odd] = text.shape[0] + np.cumsum(lens) - lens
        ends[odd] = starts[odd] + lens
        text = np.concatenate((text, np.frombuffer(b"".join(extra), dtype=np.uint8)))
    return text, starts, ends - starts


def format_values(values: np.ndarray) -> list[str]:
    """:func:`format_value` of every value of a float64 array."""
    text, starts, lens = value_texts(values)
    raw = text.tobytes()
    return [raw[a:a + n].decode() for a, n in zip(starts.tolist(), lens.tolist())]


def format_timestamps(ms: np.ndarray) -> list[str]:
    """:func:`format_ts` of every timestamp, each distinct one formatted once (a range query's steps)."""
    ms = np.asarray(ms, dtype=np.int64)
    uniq, inverse = np.unique(ms, return_inverse=True)
    texts = [format_ts(t) for t in uniq.tolist()]
    return [texts[i] for i in inverse.reshape(-1).tolist()]


def _pieces(parts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASCII strings laid end to end: the text (bytes), and each one's start and length."""
    lens = np.fromiter(map(len, parts), np.int64, len(parts))
    return np.frombuffer("".join(parts).encode("ascii"), dtype=np.uint8), np.cumsum(lens) - lens, lens


def _gather(source: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> bytes:
    """The pieces ``source[starts[i]:starts[i] + lens[i]]``, one after the other, as bytes."""
    total = int(lens.sum())
    dtype = np.int32 if source.shape[0] + total < 2**31 else np.int64
    idx = np.repeat((starts - (np.cumsum(lens) - lens)).astype(dtype), lens)
    idx += np.arange(total, dtype=dtype)
    return source[idx].tobytes()


def _series_json(series: list, matrix: bool) -> bytes:
    """The ``result`` array's items of a vector or a matrix, comma-separated (see the module docstring)."""
    counts = np.fromiter((s.timestamps_ms.shape[0] for s in series), np.int64, len(series))
    # The steps: each distinct array once (rows present at every step share the grid's), each time once.
    grids = {id(s.timestamps_ms): s.timestamps_ms for s in series}
    times = np.unique(np.concatenate(list(grids.values())).astype(np.int64, copy=False))
    point_times = _pieces([f'[{format_ts(t)},"' for t in times.tolist()])
    closing = b'"]]}' if matrix else b'"]}'
    # Each series' head (json.dumps writes ASCII): '{"metric":{...},"values":[' (matrix) or '"value":' (vector),
    # after a comma but the first; then its points, the last one closing the series (a matrix series without
    # points is closed at once).
    opening = ',"values":[' if matrix else ',"value":'
    out = []
    ends = np.cumsum(counts)
    first = 0
    while first < len(series):
        base = int(ends[first - 1]) if first else 0
        last = min(len(series), max(first + 1, int(np.searchsorted(ends, base + _CHUNK_POINTS, "right"))))
        text, cut = _points(series[first:last], counts[first:last], times, point_times, closing)
        for i, a, b in zip(range(first, last), cut[:-1].tolist(), cut[1:].tolist()):
            out.append(',{"metric":' + labels_json(series[i].labels) + opening)
            out.append(text[a:b] if a < b or not matrix else "]}")
        first = last
    out[0] = out[0][1:]
    return "".join(out).encode("ascii")


def _points(series: list, counts: np.ndarray, times: np.ndarray, point_times: tuple[np.ndarray, np.ndarray, np.ndarray],
            closing: bytes) -> tuple[str, np.ndarray]:
    """The points of ``series`` (``counts`` each) as one text, and where each series' points begin and end in it."""
    n_series, n_points = len(series), int(counts.sum())
    if n_points == 0:
        return "", np.zeros(n_series + 1, dtype=np.int64)
    ts = np.concatenate([s.timestamps_ms for s in series]).astype(np.int64, copy=False)
    vals = np.concatenate([s.values for s in series])
    vtext, vstart, vlen = value_texts(vals)
    ttext, tstart, tlen = point_times
    ctext = np.frombuffer(b'"],' + closing, dtype=np.uint8)
    # One source: values, times, then the two endings of a point.
    t0 = vtext.shape[0]
    c0 = t0 + ttext.shape[0]
    source = np.concatenate((vtext, ttext, ctext))
    step = np.searchsorted(times, ts)
    offsets = np.zeros(n_series + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    last = np.zeros(n_points, dtype=bool)
    last[offsets[1:][counts > 0] - 1] = True
    # Each point's three pieces: its time, its value, its ending.
    starts = np.empty((n_points, 3), dtype=np.int64)
    lens = np.empty((n_points, 3), dtype=np.int64)
    starts[:, 0] = t0 + tstart[step]
    lens[:, 0] = tlen[step]
    starts[:, 1] = vstart
    lens[:, 1] = vlen
    starts[:, 2] = np.where(last, c0 + 3, c0)
    lens[:, 2] = np.where(last, len(closing), 3)
    per_point = lens.sum(axis=1)
    cut = np.zeros(n_series + 1, dtype=np.int64)
    np.cumsum(np.add.reduceat(per_point, np.minimum(offsets[:-1], n_points - 1)) * (counts > 0), out=cut[1:])
    return _gather(source, starts.reshape(-1), lens.reshape(-1)).decode("ascii"), cut


def render_result(res) -> bytes:
    """The ``data`` object of the answer to a query (a :class:`~shardmon.querier.promql.QueryResult`)."""
    if res.result_type == "scalar":
        return f'{{"resultType":"scalar","result":[{format_ts(res.time_ms)},"{format_scalar(res.scalar)}"]}}'.encode()
    if res.result_type == "string":
        return f'{{"resultType":"string","result":[{format_ts(res.time_ms)},{json.dumps(res.scalar)}]}}'.encode()
    matrix = res.result_type == "matrix"
    if any(getattr(s, "histograms", None) is not None for s in res.series):
        body = _mixed_series_json(res.series, matrix)
    else:
        body = _series_json(res.series, matrix) if res.series else b""
    return b'{"resultType":"' + res.result_type.encode() + b'","result":[' + body + b"]}"


def _mixed_series_json(series: list, matrix: bool) -> bytes:
    """The ``result`` items when some series hold histograms: runs of float-only series in bulk, the others
    one by one, in the result's order."""
    parts: list[bytes] = []
    run: list = []
    for s in series:
        if getattr(s, "histograms", None) is None:
            run.append(s)
            continue
        if run:
            parts.append(_series_json(run, matrix))
            run = []
        parts.append(_histogram_series_json(s, matrix).encode("ascii"))
    if run:
        parts.append(_series_json(run, matrix))
    return b",".join(parts)


def result_json(res) -> str:
    """:func:`render_result` as a str."""
    return render_result(res).decode()


__all__ = ["format_scalar", "format_timestamps", "format_ts", "format_value", "format_values", "histogram_json",
           "labels_json", "render_result",
           "result_json", "value_texts"]
