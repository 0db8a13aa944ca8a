"""The query text guard: length and nesting limits checked before promql-parser sees a query."""

from __future__ import annotations

import numpy as np
import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.model.config import QuerierConfig
from shardmon.model.errors import BadQueryError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.querier import lookup
from shardmon.querier.promql import Engine
from shardmon.querier.promql.guard import (
    DEFAULT_MAX_QUERY_DEPTH,
    MAX_QUERY_DEPTH_CEILING,
    QueryGuard,
    depth_bound,
    tree_depth,
)

# Each construct that deepens the parser's and the evaluator's recursion, nested n levels (about).
NESTED = {
    "parentheses": lambda n: "(" * n + "x" + ")" * n,
    "calls": lambda n: "abs(" * n + "x" + ")" * n,
    "aggregations": lambda n: "sum(" * n + "x" + ")" * n,
    "unary minus": lambda n: "-" * n + "x",
    "minus and parentheses": lambda n: "-(" * n + "x" + ")" * n,
    "binary chain": lambda n: " + ".join(["x"] * n),
    "power chain": lambda n: " ^ ".join(["x"] * n),
    "set operators": lambda n: " or ".join(["x"] * n),
    "subqueries": lambda n: "max_over_time(" * n + "x" + "[1m:10s])" * n,
    "label_replace": lambda n: "label_replace(" * n + "x" + ', "a", "b", "c", "d")' * n,
}


def _engine(**options) -> Engine:
    st_ = MemoryStorage()
    ts = np.arange(0, 3_600_000, 15_000)
    for i in range(3):
        st_.add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), ts, ts / 1000.0)
    return Engine(st_, **options)


def _deepest(make, limit: int) -> str:
    """The most deeply nested query of this construct that the bound lets through at ``limit``."""
    n = 1
    while depth_bound(make(n + 1)) <= limit:
        n += 1
    return make(n)


def test_the_measured_attack_a_20000_deep_query_is_refused_naming_the_limit():
    query = "(" * 20_000 + "1" + ")" * 20_000  # 40 KB: it killed the querier (the parser's stack overflowed).
    with pytest.raises(BadQueryError, match=r"more than 100 levels deep \(querier.max_query_depth\)"):
        _engine().instant(query, 0)


@pytest.mark.parametrize("construct", sorted(NESTED))
def test_every_deepening_construct_is_refused_past_the_limit_and_evaluates_up_to_it(construct):
    make = NESTED[construct]
    engine = _engine()
    deepest = _deepest(make, DEFAULT_MAX_QUERY_DEPTH)
    assert tree_depth(promql_parser.parse(deepest)) <= DEFAULT_MAX_QUERY_DEPTH
    engine.instant(deepest, 3_000_000)  # Within the limit: evaluated, no RecursionError.
    for n in (DEFAULT_MAX_QUERY_DEPTH + 1, 3_000, 20_000):
        with pytest.raises(BadQueryError, match=r"querier\.max_query_(depth|length)\)"):
            engine.instant(make(n), 3_000_000)


@pytest.mark.parametrize("construct", sorted(NESTED))
def test_at_the_highest_depth_allowed_every_construct_still_evaluates(construct):
    deepest = _deepest(NESTED[construct], MAX_QUERY_DEPTH_CEILING)
    _engine(max_query_depth=MAX_QUERY_DEPTH_CEILING).instant(deepest, 3_000_000)


def test_the_config_allows_no_depth_above_what_the_evaluator_takes():
    assert QuerierConfig(max_query_depth=MAX_QUERY_DEPTH_CEILING).max_query_depth == MAX_QUERY_DEPTH_CEILING
    with pytest.raises(ValueError, match="max_query_depth"):
        QuerierConfig(max_query_depth=MAX_QUERY_DEPTH_CEILING + 1)


def test_evaluation_too_deep_for_python_is_a_bad_query_never_a_crash():
    # Only reachable with a guard above the ceiling, as a library user could build one.
    engine = _engine(max_query_depth=2_000)
    with pytest.raises(BadQueryError, match="too deeply to evaluate"):
        engine.instant(NESTED["calls"](1_500), 3_000_000)


def test_length_is_refused_in_bytes_naming_the_limit_and_the_field():
    guard = QueryGuard(max_length=100)
    guard.check("x" * 100)
    with pytest.raises(BadQueryError, match=r"101 bytes long, more than the limit of 100 \(querier.max_query_length\)"):
        guard.check("x" * 101)
    with pytest.raises(BadQueryError, match="101 bytes"):
        guard.check("x" * 99 + "é")  # 100 characters, 101 bytes of UTF-8.
    with pytest.raises(BadQueryError, match="querier.max_query_length"):
        _engine(max_query_length=1000).range('x{a="' + "a" * 1000 + '"}', 0, 60_000, 15_000)


def test_brackets_in_strings_and_comments_do_not_count():
    assert depth_bound('x{a="' + "(" * 500 + '"}') == 2
    assert depth_bound("x{a='" + "[" * 500 + "'}") == 2
    assert depth_bound('label_replace(x, "a", "' + ")" * 50 + '(" , "b", `((((`)') == 2
    assert depth_bound("# " + "(" * 500 + "\nx") == 1
    assert depth_bound('x{a="\\"((("}') == 2  # An escaped quote does not end the string.
    assert depth_bound("1e-5 + 2") == 2  # The exponent's sign is no operator.
    QueryGuard().check('x{a=~"' + "(" * 5_000 + '"}')


def test_unbalanced_text_is_measured_safely_and_left_to_the_parser():
    assert depth_bound("(" * 5) == 6
    assert depth_bound(")" * 5 + "x") == 1
    with pytest.raises(BadQueryError):
        QueryGuard().parse("(" * 99 + "x")
    with pytest.raises(BadQueryError, match="max_query_depth"):
        QueryGuard().parse("(" * 5_000)
    with pytest.raises(BadQueryError):
        QueryGuard().parse('sum(x{a="' + "(" * 5_000)


def test_series_selectors_pass_the_same_guard():
    guard = QueryGuard(max_length=50, max_depth=10)
    assert lookup.parse_matchers('up{job="a"}', guard)
    with pytest.raises(BadQueryError, match=r'invalid parameter "match\[\]": the match\[\] selector is .*max_query_length'):
        lookup.parse_matchers('up{job="' + "a" * 60 + '"}', guard)
    with pytest.raises(BadQueryError, match="max_query_depth"):
        lookup.parse_matchers("(" * 20 + "up" + ")" * 20, guard)


# -- the bound is a bound: never below the depth of the tree the parser builds ---------------------

_selector = st.sampled_from(["x", "up", 'x{a="(["}', "y{b=~'a|b'}", "z offset 5m", "x @ 100", "1", "2.5e-3", "-3"])
_fn_range = st.sampled_from(["rate", "max_over_time", "sum_over_time", "changes"])


def _expr(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _selector
    sub = _expr(depth - 1)
    return st.one_of(
        _selector,
        sub.map(lambda e: f"({e})"),
        sub.map(lambda e: f"-{e}"),
        sub.map(lambda e: f"abs({e})"),
        sub.map(lambda e: f"sum by (a) ({e})"),
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "^", "and", "or", "unless", "==", "> bool", "atan2"]),
                  sub).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(_fn_range, sub).map(lambda t: f"{t[0]}(({t[1]})[5m:1m])"),
        st.tuples(_fn_range, st.sampled_from(["x", "y"])).map(lambda t: f"{t[0]}({t[1]}[5m])"),
        st.tuples(sub, sub).map(lambda t: f"topk(scalar({t[0]}), {t[1]})"),
    )


@settings(max_examples=300, deadline=None)
@given(_expr(5))
def test_the_text_bound_is_never_below_the_parsed_depth(query):
    try:
        expr = promql_parser.parse(query)
    except ValueError:
        return  # Type errors of random combinations: nothing to compare.
    assert depth_bound(query) >= tree_depth(expr), query
