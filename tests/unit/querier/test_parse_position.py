"""Parse errors carry their position as Prometheus words it (``1:5: parse error: ...``): the cases below
are placed where Prometheus 2.42's parser places them (promtool / the API answer), but for the one noted."""

from __future__ import annotations

import pytest

from shardmon.model.errors import BadQueryError
from shardmon.querier.promql.guard import QueryGuard
from shardmon.querier.promql.position import MAX_SEARCH_CHARS, error_offset, line_column, with_position


@pytest.mark.parametrize("text, where", [
    ("foo bar", "1:5"),            # Prometheus: 1:5: parse error: unexpected identifier "bar"
    ("up{", "1:4"),                # unexpected end of input inside braces
    ("sum(up", "1:7"),             # unclosed left parenthesis
    ("up +", "1:5"),               # unexpected end of input
    ("up{a=b}", "1:6"),            # unexpected identifier "b" in label matching
    ("rate(up)", "1:6"),           # expected type range vector in call to function "rate"
    ("up)", "1:3"),                # unexpected right parenthesis ')'
    ("sum(up) by (job) x", "1:18"),
    ("up\n  + on(job) foo bar", "2:17"),
    ("# a comment\nfoo bar", "2:5"),
    ('"abc', "1:5"),               # unterminated quoted string
])
def test_a_bad_query_names_its_line_and_column(text, where):
    with pytest.raises(BadQueryError) as err:
        QueryGuard().parse(text)
    assert str(err.value).startswith(f"{where}: parse error: "), str(err.value)


def test_a_heuristic_place_differs_from_prometheus_only_where_documented():
    # Prometheus points at "job" (1:8); the bisection stops at "by", the first token no filler continues.
    assert with_position("sum by job (up)", "invalid promql query").startswith("1:5: ")


def test_columns_count_from_the_start_of_the_line():
    assert line_column("ab\ncd", 4) == (2, 2)
    assert line_column("abc", 0) == (1, 1)


def test_a_long_text_is_not_searched_but_end_of_input_still_placed():
    text = "x + " * (MAX_SEARCH_CHARS // 4) + "foo bar"
    assert error_offset(text, "invalid promql query") is None
    assert with_position(text, "invalid promql query") == "invalid promql query"
    assert error_offset("sum(" + text, "unclosed left parenthesis") == len(text) + 4
