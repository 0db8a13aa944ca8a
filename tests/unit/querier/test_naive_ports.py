"""The vectorised evaluator against naive, step-by-step ports of Prometheus 2.x's Go code, on random
data (Hypothesis): selectors, ``rate`` and ``increase`` and aggregations, the range-vector functions,
and the binary operators with vector matching. Each port computes one step (one window, one pair of
samples) at a time, as Prometheus does; the engine computes the whole grid at once with numpy. Their
answers must agree bit for bit (see :func:`~tests.unit.querier.conftest.same`), but where a test says
why not."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import Labels
from shardmon.model.samples import STALE_NAN, is_stale
from shardmon.querier.promql import QueryResult
from tests.unit.querier.conftest import M, S, SeriesData, as_dict, engine_with, lbl, points, same


def series_of(data: list[list[tuple[int, float]]], labels_of: Callable[[int], Labels]) -> list[SeriesData]:
    """Drawn series (each a list of (ms since the previous sample, value)) as series to store, the
    k-th labelled ``labels_of(k)``; empty ones are left out."""
    out = []
    for k, samples in enumerate(data):
        if samples:
            ts = np.cumsum([gap for gap, _ in samples]).tolist()
            out.append((labels_of(k), ts, [v for _, v in samples]))
    return out


def drawn_series(values: st.SearchStrategy[float], max_size: int) -> st.SearchStrategy[list[tuple[int, float]]]:
    """A series as Hypothesis draws it: up to ``max_size`` (ms since the previous sample, value)."""
    return st.lists(st.tuples(st.integers(1, 40_000), values), min_size=0, max_size=max_size)


#: A range query's grid, drawn: its start, step (ms) and number of steps.
_START, _STEP, _N_STEPS = st.integers(-20_000, 300_000), st.integers(1_000, 60_000), st.integers(1, 12)


def cells(result: QueryResult) -> dict[tuple[Labels, int], float]:
    """A range query's result as {(labels, timestamp): value}."""
    return {(s.labels, t): v for s in result.series for t, v in zip(s.timestamps_ms.tolist(), s.values.tolist())}


# -- selectors, rate and increase, aggregations (Prometheus's promql/engine.go and functions.go) -------


def ref_instant(ts: list[int], vals: list[float], t: int, lookback: int) -> float | None:
    """Prometheus's vectorSelectorSingle: the latest sample in [t - lookback, t], unless stale."""
    before = [i for i, x in enumerate(ts) if x <= t]
    if not before or ts[before[-1]] < t - lookback or is_stale(np.array([vals[before[-1]]]))[0]:
        return None
    return vals[before[-1]]


def ref_extrapolated_rate(ts: list[int], vals: list[float], t: int, range_ms: int, is_rate: bool) -> float | None:
    """Prometheus 2.53's extrapolatedRate for a counter, one window at a time."""
    pts = [
        (x, v) for x, v in zip(ts, vals) if t - range_ms <= x <= t and not is_stale(np.array([v]))[0]
    ]
    if len(pts) < 2:
        return None
    result = pts[-1][1] - pts[0][1]
    prev = pts[0][1]
    for _, cur in pts[1:]:
        if cur < prev:
            result += prev
        prev = cur
    to_start = (pts[0][0] - (t - range_ms)) / 1000
    to_end = (t - pts[-1][0]) / 1000
    sampled = (pts[-1][0] - pts[0][0]) / 1000
    average = sampled / (len(pts) - 1)
    threshold = average * 1.1
    if to_start >= threshold:
        to_start = average / 2
    if result > 0 and pts[0][1] >= 0:
        to_zero = sampled * (pts[0][1] / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = average / 2
    interval = sampled + to_start + to_end
    factor = interval / sampled
    if is_rate:
        factor /= range_ms / 1000
    return result * factor


def ref_aggregate(op: str, values: list[float]) -> float:
    """Prometheus 2.x's aggregation of one group's values, in input order."""
    acc, mean, count = values[0], values[0], 1
    for v in values[1:]:
        count += 1
        if op == "sum":
            acc += v
        elif op == "max" and (acc < v or math.isnan(acc)):
            acc = v
        elif op == "min" and (acc > v or math.isnan(acc)):
            acc = v
        elif op == "avg":
            if math.isinf(mean) and (
                (math.isinf(v) and (mean > 0) == (v > 0)) or (not math.isinf(v) and not math.isnan(v))
            ):
                continue
            mean += v / count - mean / count
    return {"avg": mean, "count": float(count)}.get(op, acc)


_sample_values = st.one_of(
    st.integers(0, 50).map(float),
    st.sampled_from([0.0, math.nan, math.inf, STALE_NAN, -3.0, 1e300]),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(drawn_series(_sample_values, 25), min_size=1, max_size=4),
    range_s=st.integers(1, 120),
    start=_START,
    step=_STEP,
    n_steps=_N_STEPS,
    lookback=st.integers(1_000, 120_000),
)
def test_vectorised_evaluation_matches_a_naive_port_of_prometheus(
    data, range_s: int, start: int, step: int, n_steps: int, lookback: int
) -> None:
    raw = series_of(data, lambda k: lbl(__name__="x", k=str(k), g=str(k % 2)))
    engine = engine_with(*raw, lookback_delta_ms=lookback)
    end = start + step * (n_steps - 1)
    steps = list(range(start, end + 1, step))

    def grid(query: str) -> dict[tuple[Labels, int], float]:
        return cells(engine.range(query, start, end, step))

    for fn, is_rate in (("rate", True), ("increase", False)):
        got = grid(f"{fn}(x[{range_s}s])")
        for labels, ts, vals in raw:
            for t in steps:
                want = ref_extrapolated_rate(ts, vals, t, range_s * 1000, is_rate)
                assert same(got.get((labels.without(["__name__"]), t)), want), (fn, labels, t)

    got = grid("x")
    for labels, ts, vals in raw:
        for t in steps:
            assert same(got.get((labels, t)), ref_instant(ts, vals, t, lookback)), (labels, t)

    for op in ("sum", "avg", "min", "max", "count"):
        got = grid(f"{op} by (g) (x)")
        for g in ("0", "1"):
            for t in steps:
                present = [ref_instant(ts, vals, t, lookback) for labels, ts, vals in raw if labels.get("g") == g]
                present = [v for v in present if v is not None]
                want = ref_aggregate(op, present) if present else None
                assert same(got.get((lbl(g=g), t)), want), (op, g, t)


def test_increase_over_a_window_with_many_resets_matches_prometheus() -> None:
    # A sawtooth of 200 samples has 100 resets in one window: beyond the exact per-reset passes.
    vals = [float(v) for _ in range(100) for v in (7.5, 2.25)]
    vals[150] = math.inf
    ts = list(range(0, 200 * S, S))
    engine = engine_with((lbl(__name__="c", job="j"), ts, vals))
    for window, t in (("250s", 199 * S), ("100s", 199 * S), ("100s", 120 * S)):
        want = ref_extrapolated_rate(ts, vals, t, int(window[:-1]) * S, is_rate=False)
        got = as_dict(engine.instant(f"increase(c[{window}])", t))
        assert list(got) == [lbl(job="j")], got  # increase drops __name__.
        assert same(got[lbl(job="j")], want), window


# -- range-vector functions (Prometheus's promql/functions.go) -------------------------------------------


def kahan_inc(inc: float, total: float, comp: float) -> tuple[float, float]:
    t = total + inc
    if abs(total) >= abs(inc):
        comp += (total - t) + inc
    else:
        comp += (inc - t) + total
    return t, comp


def ref_linear_regression(ts: list[int], vs: list[float], intercept_ms: int) -> tuple[float, float]:
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    const = True
    for i, (t, v) in enumerate(zip(ts, vs)):
        if const and i > 0 and v != vs[0]:
            const = False
        n += 1
        x = (t - intercept_ms) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const:
        return (math.nan, math.nan) if math.isinf(vs[0]) else (0.0, vs[0])
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var if var != 0 else (math.copysign(math.inf, cov) if cov != 0 and not math.isnan(cov) else math.nan)
    return slope, sy / n - slope * sx / n


def ref_holt_winters(vs: list[float], sf: float, tf: float) -> float | None:
    if len(vs) < 2:
        return None
    s0, s1, b = 0.0, vs[0], vs[1] - vs[0]
    for i in range(1, len(vs)):
        x = sf * vs[i]
        if i - 1 != 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return s1


def ref_quantile(q: float, vs: list[float]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = [v for v in vs if math.isnan(v)] + sorted(v for v in vs if not math.isnan(v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def ref_over_time(fn: str, ts: list[int], vs: list[float], t: int) -> float | None:
    """One step of a range-vector function, as Prometheus's per-step code computes it."""
    if not vs:
        return None
    if fn == "sum_over_time":
        s = c = 0.0
        for v in vs:
            s, c = kahan_inc(v, s, c)
        return s if math.isinf(s) else s + c
    if fn == "avg_over_time":
        mean = c = count = 0.0
        for v in vs:
            count += 1
            if math.isinf(mean):
                if math.isinf(v) and (mean > 0) == (v > 0):
                    continue
                if not math.isinf(v) and not math.isnan(v):
                    continue
            mean, c = kahan_inc(v / count - mean / count, mean, c)
        return mean if math.isinf(mean) else mean + c
    if fn in ("min_over_time", "max_over_time"):
        acc = vs[0]
        for v in vs:
            if (v < acc if fn == "min_over_time" else v > acc) or math.isnan(acc):
                acc = v
        return acc
    if fn in ("stddev_over_time", "stdvar_over_time"):
        count = mean = cm = aux = ca = 0.0
        for v in vs:
            count += 1
            delta = v - (mean + cm)
            mean, cm = kahan_inc(delta / count, mean, cm)
            aux, ca = kahan_inc(delta * (v - (mean + cm)), aux, ca)
        var = (aux + ca) / count
        if fn == "stdvar_over_time":
            return var
        return math.nan if var < 0 else math.sqrt(var)
    if fn == "count_over_time":
        return float(len(vs))
    if fn == "last_over_time":
        return vs[-1]
    if fn == "present_over_time":
        return 1.0
    if fn == "changes":
        return float(sum(1 for a, b in zip(vs, vs[1:]) if b != a and not (math.isnan(a) and math.isnan(b))))
    if fn == "resets":
        return float(sum(1 for a, b in zip(vs, vs[1:]) if b < a))
    if fn == "quantile_over_time(0.3, ":
        return ref_quantile(0.3, vs)
    if len(vs) < 2:
        return None
    if fn in ("irate", "idelta"):
        last, prev = vs[-1], vs[-2]
        if fn == "idelta":
            return last - prev
        return (last if last < prev else last - prev) / ((ts[-1] - ts[-2]) / 1000)
    if fn == "deriv":
        return ref_linear_regression(ts, vs, ts[0])[0]
    if fn == "predict_linear(":
        slope, intercept = ref_linear_regression(ts, vs, t)
        return slope * 600 + intercept
    if fn == "holt_winters(":
        return ref_holt_winters(vs, 0.3, 0.6)
    raise AssertionError(fn)


_QUERIES = {
    "sum_over_time": "sum_over_time(x[{r}s])",
    "avg_over_time": "avg_over_time(x[{r}s])",
    "min_over_time": "min_over_time(x[{r}s])",
    "max_over_time": "max_over_time(x[{r}s])",
    "stddev_over_time": "stddev_over_time(x[{r}s])",
    "stdvar_over_time": "stdvar_over_time(x[{r}s])",
    "count_over_time": "count_over_time(x[{r}s])",
    "last_over_time": "last_over_time(x[{r}s])",
    "present_over_time": "present_over_time(x[{r}s])",
    "changes": "changes(x[{r}s])",
    "resets": "resets(x[{r}s])",
    "quantile_over_time(0.3, ": "quantile_over_time(0.3, x[{r}s])",
    "irate": "irate(x[{r}s])",
    "idelta": "idelta(x[{r}s])",
    "deriv": "deriv(x[{r}s])",
    "predict_linear(": "predict_linear(x[{r}s], 600)",
    "holt_winters(": "holt_winters(x[{r}s], 0.3, 0.6)",
}

# Where Prometheus keeps the first of equal values (min, max) or their order after Go's sort
# (quantile), the engine may answer 0 where Prometheus answers -0 (numpy's reductions and sorts
# settle a tie of 0 and -0 their own way): for these the sign of a zero is not compared.
_TIES_OF_ZEROS = {"min_over_time", "max_over_time", "quantile_over_time(0.3, "}

_window_values = st.one_of(
    st.integers(-20, 50).map(float),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e300, -1e300]),
)


@settings(max_examples=120, deadline=None)
@given(
    data=st.lists(drawn_series(_window_values, 30), min_size=1, max_size=3),
    range_s=st.integers(1, 200),
    start=_START,
    step=_STEP,
    n_steps=_N_STEPS,
)
def test_range_functions_match_a_naive_port_of_prometheus(
    data, range_s: int, start: int, step: int, n_steps: int
) -> None:
    raw = series_of(data, lambda k: lbl(__name__="x", k=str(k)))
    engine = engine_with(*raw)
    end = start + step * (n_steps - 1)
    for fn, query in _QUERIES.items():
        got = points(engine.range(query.format(r=range_s), start, end, step))
        for labels, ts, vals in raw:
            out = labels if fn == "last_over_time" else labels.without(["__name__"])
            for t in range(start, end + 1, step):
                window = [(a, v) for a, v in zip(ts, vals) if t - range_s * S <= a <= t]
                want = ref_over_time(fn, [a for a, _ in window], [v for _, v in window], t)
                have = got.get(out, {}).get(t)
                if fn in ("sum_over_time", "avg_over_time") and have is not None and want is not None:
                    # Sums are as accurate as Prometheus's compensated ones, but not bit for bit
                    # where values cancel out: allow for rounding at the scale of the values.
                    scale = max(abs(v) for _, v in window)
                    if math.isfinite(have) and math.isfinite(want) and math.isfinite(scale):
                        assert abs(have - want) <= 1e-12 * scale * len(window), (fn, labels, t, window)
                        continue
                assert same(have, want, signed_zero=fn not in _TIES_OF_ZEROS), (fn, labels, t, window)


# -- binary operators and vector matching (Prometheus's promql/engine.go) ------------------------------


class RefError(Exception):
    pass


def ref_signature(labels: Labels, on: bool, names: tuple[str, ...]) -> tuple:
    if on:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != "__name__")


def ref_elem(op: str, a: float, b: float) -> tuple[float, bool]:
    """Prometheus's vectorElemBinop with Go's float64 rules."""
    if op in ("==", "!=", ">", "<", ">=", "<="):
        holds = {"==": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
        return a, holds
    if op == "+":
        return a + b, True
    if op == "-":
        return a - b, True
    if op == "*":
        return (math.nan if (a == 0 and math.isinf(b)) or (b == 0 and math.isinf(a)) else a * b), True
    if op == "/":
        if b == 0:
            return (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)), True
        return a / b, True
    if op == "%":
        if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
            return math.nan, True
        return math.fmod(a, b), True
    raise AssertionError(op)


def ref_result_metric(lhs: Labels, rhs: Labels, op: str, card: str, on: bool, names, include, return_bool) -> Labels:
    out = dict(lhs)
    if op in ("+", "-", "*", "/", "%", "^"):
        out.pop("__name__", None)
    if card == "one-to-one":
        out = {n: v for n, v in out.items() if (n in names) == on}
    for name in include:
        if rhs.get(name):
            out[name] = rhs.get(name)
        else:
            out.pop(name, None)
    if return_bool:
        out.pop("__name__", None)
    return Labels.from_dict(out)


def go_labels(labels: Labels) -> str:
    return "{" + ", ".join(f'{n}="{v}"' for n, v in labels) + "}"


def ref_binop(op, lhs, rhs, card, on, names, include, return_bool):
    """One step of Prometheus's VectorBinop / VectorAnd / VectorOr / VectorUnless, then the labelset check."""
    out = []
    if op in ("and", "unless"):
        right = {ref_signature(ls, on, names) for ls, _ in rhs}
        out = [(ls, v) for ls, v in lhs if (ref_signature(ls, on, names) in right) == (op == "and")]
    elif op == "or":
        left = {ref_signature(ls, on, names) for ls, _ in lhs}
        out = list(lhs) + [(rs, v) for rs, v in rhs if ref_signature(rs, on, names) not in left]
    elif lhs and rhs:
        if card == "one-to-many":
            lhs, rhs = rhs, lhs
        right = {}
        for rs, rv in rhs:
            sig = ref_signature(rs, on, names)
            if sig in right:
                group = Labels(p for p in rs if p in sig)
                side = "left" if card == "one-to-many" else "right"
                raise RefError(
                    f"found duplicate series for the match group {go_labels(group)} on the {side} hand-side of the "
                    f"operation: [{go_labels(rs)}, {go_labels(right[sig][0])}];many-to-many matching not allowed: "
                    "matching labels must be unique on one side"
                )
            right[sig] = (rs, rv)
        matched: dict = {}
        for ls, lv in lhs:
            sig = ref_signature(ls, on, names)
            if sig not in right:
                continue
            rs, rv = right[sig]
            a, b = (rv, lv) if card == "one-to-many" else (lv, rv)
            value, keep = ref_elem(op, a, b)
            if return_bool:
                value = 1.0 if keep else 0.0
            elif not keep:
                continue
            metric = ref_result_metric(ls, rs, op, card, on, names, include, return_bool)
            if card == "one-to-one":
                if sig in matched:
                    raise RefError(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    )
                matched[sig] = None
            else:
                if metric in matched.setdefault(sig, set()):
                    raise RefError("multiple matches for labels: grouping labels must ensure unique matches")
                matched[sig].add(metric)
            out.append((metric, value))
    if len({ls for ls, _ in out}) != len(out):
        raise RefError("vector cannot contain metrics with the same labelset")
    return out


_OPERANDS = {"a": ("a",), "b": ("b",), '{__name__=~"a|b"}': ("a", "b")}
_MODIFIERS = [
    ("", "one-to-one", False, (), ()),
    ("on(x)", "one-to-one", True, ("x",), ()),
    ("ignoring(y)", "one-to-one", False, ("y",), ()),
    ("on()", "one-to-one", True, (), ()),
    ("on(__name__, x)", "one-to-one", True, ("__name__", "x"), ()),
    ("on(x) group_left", "many-to-one", True, ("x",), ()),
    ("on(x) group_left(y)", "many-to-one", True, ("x",), ("y",)),
    ("ignoring(y) group_left(y)", "many-to-one", False, ("y",), ("y",)),
    ("ignoring(y) group_right", "one-to-many", False, ("y",), ()),
    ("on(x) group_right(y)", "one-to-many", True, ("x",), ("y",)),
]
_label_sets = st.fixed_dictionaries({}, optional={"x": st.sampled_from("01"), "y": st.sampled_from("01")})
_operand_value = st.sampled_from([0.0, 1.0, 2.0, -3.0, 0.5, math.nan, math.inf, -math.inf])
_operand_series = st.tuples(
    st.sampled_from("ab"), _label_sets, st.lists(st.one_of(st.none(), _operand_value), min_size=4, max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(_operand_series, min_size=0, max_size=6),
    lhs=st.sampled_from(sorted(_OPERANDS)),
    rhs=st.sampled_from(sorted(_OPERANDS)),
    op=st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", ">", "<=", "and", "or", "unless"]),
    modifier=st.sampled_from(_MODIFIERS),
    return_bool=st.booleans(),
)
def test_vectorised_operators_match_a_naive_port_of_prometheus(data, lhs, rhs, op, modifier, return_bool) -> None:
    text, card, on, names, include = modifier
    if op in ("and", "or", "unless"):
        if card != "one-to-one":
            return  # The parser refuses grouping for set operators.
        card, return_bool = "many-to-many", False
    if op not in ("==", "!=", ">", "<="):
        return_bool = False
    raw: dict[Labels, list[float | None]] = {}
    for name, labels, values in data:
        raw[Labels.from_dict({"__name__": name, **labels})] = values
    engine = engine_with(
        *(
            (labels, [k * M for k, v in enumerate(vs) if v is not None], [v for v in vs if v is not None])
            for labels, vs in raw.items()
        ),
        lookback_delta_ms=S,
    )
    query = f"{lhs} {op} {'bool ' if return_bool else ''}{text} {rhs}"

    want, error = [], None
    for k in range(4):
        # Each side at step k: its present series, in label order as the selector returns them.
        left, right = (
            [(ls, vs[k]) for ls, vs in sorted(raw.items()) if ls.name in _OPERANDS[side] and vs[k] is not None]
            for side in (lhs, rhs)
        )
        try:
            want.append(ref_binop(op, left, right, card, on, names, include, return_bool))
        except RefError as exc:
            error = str(exc)
            break
    event(f"error: {error[:40]}" if error else "no error")
    if error is not None:
        with pytest.raises(QueryExecutionError) as info:
            engine.range(query, 0, 3 * M, M)
        assert str(info.value) == error, query
        return
    result = engine.range(query, 0, 3 * M, M)
    assert len({s.labels for s in result.series}) == len(result.series), query
    got = cells(result)
    expected = {(ls, k * M): v for k, step in enumerate(want) for ls, v in step}
    event("some result" if expected else "empty result")
    assert got.keys() == expected.keys(), query
    for key, v in expected.items():
        assert same(got[key], v), (query, key)
