"""Fuzzing the PromQL front door: random and adversarial query text through the engine's instant and
range entries (guard, parser, evaluator). Whatever comes in, what goes out is an answer or one of
the documented errors (:class:`BadQueryError`, :class:`QueryExecutionError` and their subclasses),
each input within the issue's 5 s bound for hostile input; never a crash, a RecursionError, an
assertion, a numpy error or a Rust panic."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardmon.model.errors import BadQueryError, QueryExecutionError, QueryTimeoutError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import STALE_NAN
from shardmon.querier.promql import Engine

T = 3_600_000  # The evaluation time: an hour of data before it.
BUDGET_S = 5.0


def _storage() -> MemoryStorage:
    st_ = MemoryStorage()
    ts = np.arange(0, T + 1, 15_000)
    for i, job in enumerate(("api", "web", "db")):
        for code in ("200", "500"):
            vals = np.cumsum(np.arange(ts.shape[0]) % 7).astype(float) * (i + 1)
            st_.add_series(Labels.from_dict({"__name__": "http_requests_total", "job": job, "code": code}), ts, vals)
        st_.add_series(Labels.from_dict({"__name__": "up", "job": job, "instance": f"h{i}"}), ts, np.ones(ts.shape[0]))
        for le in ("0.1", "1", "+Inf"):
            st_.add_series(Labels.from_dict({"__name__": "lat_bucket", "job": job, "le": le}), ts,
                           np.arange(ts.shape[0]) * float(le.replace("+Inf", "10")))
    odd = np.array([0.0, np.nan, np.inf, -np.inf, -0.0, 1e308, -1e308, 5e-324, STALE_NAN, 3.0])
    st_.add_series(Labels.from_dict({"__name__": "odd", "k": "v"}), ts[: odd.shape[0]] + T - 150_000, odd)
    return st_


# A budget of a million points bounds what any query may hold in memory, whatever its grid (over it a
# query is refused as QueryLimitError, a QueryExecutionError); its time is bounded by the engine's
# timeout, which every long loop checks: 2 s for each of the two calls, so an input ends within 5 s
# (a query within its budget may still take longer than that, e.g. deriv over a 105,120-point window:
# it ends as QueryTimeoutError, the documented answer).
ENGINE = Engine(_storage(), timeout_ms=2_000, max_samples=1_000_000)


def _front_door(text: str) -> None:
    t0 = time.monotonic()
    for call in (lambda: ENGINE.instant(text, T), lambda: ENGINE.range(text, T - 1_800_000, T, 60_000)):
        try:
            call()
        except (BadQueryError, QueryExecutionError, QueryTimeoutError):
            pass
    elapsed = time.monotonic() - t0
    assert elapsed < BUDGET_S, f"{elapsed:.1f}s for {text[:200]!r}"


_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- arbitrary text ---------------------------------------------------------------------------------


@_FUZZ
@given(st.text(st.characters(codec=None), max_size=300))
def test_arbitrary_unicode_text(text):
    _front_door(text)


_TOKENS = [
    "http_requests_total", "up", "odd", "lat_bucket", "x", "{", "}", "(", ")", "[", "]", ",", ":", "=", "!=", "=~",
    "!~", '"', "'", "`", "\\", '"200"', "'a|b'", '".*"', '"(.*.*)*x"', "+", "-", "*", "/", "%", "^", "==", "!=",
    ">", "<", ">=", "<=", "bool", "and", "or", "unless", "atan2", "on", "ignoring", "group_left", "group_right",
    "by", "without", "sum", "avg", "count", "topk", "bottomk", "quantile", "count_values", "stddev", "group",
    "rate", "irate", "increase", "delta", "deriv", "predict_linear", "holt_winters", "histogram_quantile",
    "label_replace", "label_join", "vector", "scalar", "time", "timestamp", "absent", "absent_over_time",
    "sort", "sort_desc", "clamp", "round", "sum_over_time", "quantile_over_time", "max_over_time", "changes",
    "offset", "@", "start()", "end()", "5m", "1s", "1ms", "0s", "1y", "9999999999y", "1h30m", "-5m", "1",
    "0", "-1", "0.5", "1e308", "-1e308", "1e-308", "Inf", "-Inf", "NaN", "0x7fffffffffffffff",
    "99999999999999999999999", "1e400", "#", "\n", " ", "\t", "\u00e9", "\u2028", "\U0001f600", "\x00",
]


@_FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=40), st.sampled_from(["", " "]))
def test_token_soup(tokens, sep):
    _front_door(sep.join(tokens))


# -- well-formed expressions with adversarial parameters ---------------------------------------------

_numbers = st.sampled_from(["0", "1", "-1", "0.5", "2", "1e308", "-1e308", "5e-324", "Inf", "-Inf", "NaN", "1e20",
                            "0x7fffffffffffffff", "99999999999999999999"])
_durations = st.sampled_from(["1ms", "1s", "15s", "1m", "5m", "1h", "1d", "1w", "1y", "292y", "9999y", "100000y",
                              "1h30m", "3ms", "999999999999ms"])
_at = st.sampled_from(["", " @ 0", " @ 1000", " @ 1e10", " @ -1000", " @ 1e300", " @ start()", " @ end()",
                       " @ 3600"])
_offset = st.one_of(st.just(""), _durations.map(lambda d: f" offset {d}"), _durations.map(lambda d: f" offset -{d}"))
_matchers = st.sampled_from(["", '{job="api"}', '{job=~"a.*|w.*"}', '{job!~"(.*.*)*x"}', '{code!="200"}',
                             '{__name__=~".+"}', '{job=~"[[:alpha:]]+"}', '{job=~"(?i)API"}', '{job=~""}',
                             '{job=~"\\\\"}', '{le="+Inf"}', '{job="\u00e9\U0001f600"}'])
_metric = st.sampled_from(["http_requests_total", "up", "lat_bucket", "odd", "missing"])
_instant_fn = st.sampled_from(["abs", "ceil", "floor", "exp", "ln", "sqrt", "sgn", "sort", "sort_desc", "timestamp",
                               "absent", "scalar", "deg", "asin", "day_of_month", "minute", "year"])
_range_fn = st.sampled_from(["rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes",
                             "avg_over_time", "sum_over_time", "count_over_time", "min_over_time", "max_over_time",
                             "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time",
                             "absent_over_time"])
_agg = st.sampled_from(["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"])
_binop = st.sampled_from(["+", "-", "*", "/", "%", "^", "==", "!=", "> bool", "< bool", ">=", "and", "or", "unless",
                          "atan2", "+ on(job)", "* ignoring(code) group_left", "/ on(job) group_right(code)",
                          "== bool on()"])


def _vector(depth: int) -> st.SearchStrategy[str]:
    selector = st.tuples(_metric, _matchers, _offset, _at).map("".join)
    if depth == 0:
        return st.one_of(selector, _numbers)
    sub = _vector(depth - 1)
    ranged = st.one_of(
        st.tuples(selector, _durations).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(sub, _durations, st.one_of(st.just(""), _durations), _offset).map(
            lambda t: f"({t[0]})[{t[1]}:{t[2]}]{t[3]}"),
    )
    return st.one_of(
        selector,
        _numbers,
        st.tuples(_instant_fn, sub).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(_range_fn, ranged).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(_numbers, ranged).map(lambda t: f"quantile_over_time({t[0]}, {t[1]})"),
        st.tuples(ranged, _numbers).map(lambda t: f"predict_linear({t[0]}, {t[1]})"),
        st.tuples(ranged, _numbers, _numbers).map(lambda t: f"holt_winters({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(_agg, st.sampled_from(["", " by (job)", " without (code)", " by ()", " by (nope)"]), sub).map(
            lambda t: f"{t[0]}{t[1]} ({t[2]})"),
        st.tuples(st.sampled_from(["topk", "bottomk", "quantile"]), _numbers, sub).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(['"v"', '"__name__"', '"le"', '"a b"']), sub).map(
            lambda t: f"count_values({t[0]}, {t[1]})"),
        st.tuples(sub, _binop, sub).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(sub, _numbers).map(lambda t: f"histogram_quantile({t[1]}, {t[0]})"),
        st.tuples(sub, st.sampled_from(['"(.*)"', '"(.*.*)*x"', '"["', '"(?P<x>a)"', '""', '"\\\\d+"']),
                  st.sampled_from(['"$1"', '"${1}x"', '"$x"', '""'])).map(
            lambda t: f'label_replace({t[0]}, "dst", {t[2]}, "job", {t[1]})'),
        st.tuples(sub, st.sampled_from(['"__name__"', '"job"', '"x y"'])).map(
            lambda t: f'label_join({t[0]}, {t[1]}, ",", "job", "code")'),
        st.tuples(sub, _numbers, _numbers).map(lambda t: f"clamp({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(sub, _numbers).map(lambda t: f"round({t[0]}, {t[1]})"),
        _numbers.map(lambda n: f"vector({n})"),
        st.just("time()"),
        sub.map(lambda e: f"-({e})"),
    )


@_FUZZ
@given(_vector(3))
def test_well_formed_queries_with_adversarial_numbers_durations_and_regexes(query):
    _front_door(query)


# -- deep nesting, long chains, unbalanced brackets and quotes ---------------------------------------

_DEEP = [
    lambda n: "(" * n + "up" + ")" * n,
    lambda n: "(" * n + "up",
    lambda n: "up" + ")" * n,
    lambda n: "abs(" * n + "up" + ")" * n,
    lambda n: "sum(" * n + "up" + ")" * n,
    lambda n: "-" * n + "up",
    lambda n: "-(" * n + "1" + ")" * n,
    lambda n: " + ".join(["up"] * n),
    lambda n: " or ".join(["up"] * n),
    lambda n: "max_over_time(" * n + "up" + "[1m:10s])" * n,
    lambda n: "up" + "[1m:10s]" * n,
    lambda n: "{" * n + "}" * n,
    lambda n: "[" * n + "up" + "]" * n,
    lambda n: 'up{job="' + "\\" * n,
    lambda n: '"' * n,
    lambda n: "'" * n + "up",
    lambda n: "up offset " + "1y" * n,
    lambda n: "1" * n,
    lambda n: "up" + " @ start()" * n,
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_DEEP))), st.integers(1, 30_000))
def test_deep_nesting_long_chains_and_unbalanced_text(which, n):
    _front_door(_DEEP[which](n))
