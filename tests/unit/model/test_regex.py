"""User regexes on RE2 (model/regex.py): linear time on hostile patterns, Prometheus 2.42's anchoring and
flags, Go's syntax errors and Go's ``Expand``, and the batch paths the label index uses agreeing with
one-value matching. (tests/integration/test_regex_vs_prometheus.py and test_relabel_vs_prometheus.py
compare the same with a real Prometheus.)"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmon.ingest.relabel import process
from shardmon.model.errors import BadQueryError, QueryExecutionError, RegexError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.regex import compile_matcher_regex, compile_regex, sorted_range
from shardmon.model.relabel_config import RelabelConfig
from shardmon.querier.promql import Engine

# Catastrophic for a backtracking engine (Python's re needs minutes to hours on these inputs).
HOSTILE = [
    ("(.*.*)*x", "y" * 100_000),
    ("(a+)+b", "a" * 100_000),
    ("(a|a)*b", "a" * 100_000),
    ("(a|aa)+c", "a" * 100_000),
    ("((a*)*)*b", "a" * 100_000),
    ("(x+x+)+y", "x" * 100_000),
    ("(.*a){20}", "a" * 5_000 + "b"),
    ("(\\w+\\s?)+$x", "word " * 20_000),
]


@pytest.mark.parametrize("pattern, text", HOSTILE, ids=[p for p, _ in HOSTILE])
def test_hostile_patterns_match_in_linear_time(pattern, text):
    t0 = time.monotonic()
    rx = compile_regex(pattern)
    assert not rx.fullmatch(text)
    assert rx.match(text) is None
    assert rx.select([text] * 10) == []
    assert not Matcher(MatchType.RE, "a", pattern).matches(text)
    assert time.monotonic() - t0 < 5


def test_the_issues_label_replace_query_answers_promptly():
    engine = Engine(MemoryStorage())
    q = 'label_replace(label_replace(vector(1),"b","' + "y" * 40 + '","",""),"a","$1","b","(.*.*)*x")'
    t0 = time.monotonic()
    result = engine.instant(q, 0)
    assert time.monotonic() - t0 < 5
    assert [(s.labels, float(s.values[0])) for s in result.series] == [(Labels.from_dict({"b": "y" * 40}), 1.0)]


def test_a_hostile_matcher_over_many_series_answers_promptly():
    storage = MemoryStorage()
    for i in range(2_000):
        storage.add_series(Labels.from_dict({"__name__": "m", "v": "y" * 40 + str(i)}), np.array([0]), np.array([1.0]))
    t0 = time.monotonic()
    assert Engine(storage).instant('m{v=~"(.*.*)*x"}', 0).series == []
    assert len(Engine(storage).instant('m{v!~"(.*.*)*x"}', 0).series) == 2_000
    assert time.monotonic() - t0 < 5


def test_hostile_relabel_regex_is_prompt():
    cfg = RelabelConfig(action="keep", source_labels=["a"], regex="(.*.*)*x")
    t0 = time.monotonic()
    assert process({"a": "y" * 100_000}, [cfg]) is None
    assert time.monotonic() - t0 < 5


# --- anchoring and flags, as Prometheus 2.42 (^(?:p)$, no flags) -----------------------------------

@pytest.mark.parametrize("pattern, value, want", [
    ("api|web", "api", True), ("api|web", "xweb", False), ("api|web", "api-2", False),
    ("a.*", "ba", False), (".*a", "ba", True), ("", "", True), ("", "x", False),
    # "." does not match a newline without (?s): Prometheus 2.42 compiles matchers without flags.
    ("x.y", "x\ny", False), ("(?s)x.y", "x\ny", True), (".*", "a\nb", False), ("(?s:.*)", "a\nb", True),
    ("[^a]", "\n", True),  # a negated class does match a newline (Go's ClassNL)
    # $ is the end of the text, (?m)$ the end of a line.
    ("a$\n", "a\n", False), ("(?m)a$\n", "a\n", True),
    # Case folding, Unicode-aware.
    ("(?i)api", "API", True), ("a(?i)p", "AP", False), ("a(?i)p", "aP", True), ("(?i)k", "\u212a", True),
    ("(?i)straße", "STRAẞE", True),
    # Unicode classes and Perl classes (ASCII in Go: \d is [0-9]).
    ("\\pL+", "Ωmega", True), ("\\p{Greek}+", "Ωμ", True), ("\\p{Greek}+", "Ωm", False), ("\\PL", "1", True),
    ("\\d", "٣", False), ("\\pN", "٣", True), ("\\w+", "é", False), ("[[:^alpha:]]+", "1-2", True),
    ("\\x{1F600}", "😀", True), ("\\Qa.b\\E", "a.b", True), ("\\Qa.b\\E", "axb", False), ("a{,2}", "a{,2}", True),
    ("\\101", "A", True), ("\\bfoo\\b", "foo", True),
    # The ungreedy flag changes submatches, not whether it matches.
    ("(?U)a+", "aaa", True),
])
def test_prometheus_semantics(pattern, value, want):
    assert compile_regex(pattern).fullmatch(value) is want
    assert Matcher(MatchType.RE, "l", pattern).matches(value) is want
    assert Matcher(MatchType.NRE, "l", pattern).matches(value) is not want


def test_submatches_are_go_leftmost_first():
    m = compile_regex("(a|ab)(c|bcd)(d*)").match("abcd")
    assert [m.group(i) for i in range(4)] == ["abcd", "a", "bcd", ""]
    m = compile_regex("(?U)(a+)(a*)").match("aaa")
    assert (m.group(1), m.group(2)) == ("a", "aa")
    assert compile_regex("(a*)+").match("a").group(1) == "a"  # as Go; Python's re gave ""
    m = compile_regex("(x)?y").match("y")
    assert m.group(1) is None and m.group(0) == "y"
    assert compile_regex("(é+)(.)").match("ééx").group(1) == "éé"  # spans are bytes; groups are text


def test_go_expand():
    rx = compile_regex("(?P<first>a)(b)?(c)")
    m = rx.match("ac")
    table = {
        "$0": "ac", "$1": "a", "${1}": "a", "$2": "", "$3": "c", "$first": "a", "${first}": "a",
        "$1x": "", "${1}x": "ax", "$01": "", "$$": "$", "$$1": "$1", "$": "$", "${": "${", "${}": "${}",
        "$-": "$-", "${first": "${first", "$first.x": "a.x", "a$3b$1": "aa", "a${3}b$1": "acba",
        "$9999999999": "", "$nope": "", "${1}${3}": "ac", "x$": "x$",
        "$1²": "a²", "${1}²": "a²",  # ² is a number (No), not a decimal digit (Nd): it ends a name in Go
        "$1é": "", "$é": "",  # letters are name characters
    }
    for template, want in table.items():
        assert rx.expand(template, m) == want, template
        assert m.expand(template) == want, template
    # Duplicate names: Go takes the first group of that name that took part in the match.
    rx = compile_regex("(?P<n>a)|(?P<n>b)")
    assert rx.match("b").expand("<$n>") == "<b>" and rx.match("a").expand("<$n>") == "<a>"
    assert rx.group_names == ("", "n", "n")


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, reason", [
    ("(", "missing closing )"),
    ("a(b", "missing closing )"),
    ("[a", "missing closing ]"),
    ("x\\", "trailing backslash at end of expression"),
    ("*a", "missing argument to repetition operator: `*`"),
    ("a++", "invalid nested repetition operator: `++`"),
    ("a**", "invalid nested repetition operator: `**`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    ("(a{100}){11}", "invalid repeat count"),
    ("(a)\\1", "invalid escape sequence: `\\1`"),  # back-references
    ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),  # look-arounds
    ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<!`"),
    ("(?>a)", "invalid or unsupported Perl syntax"),  # atomic groups
    ("(?x)a", "invalid or unsupported Perl syntax"),
    ("a\\Z", "invalid escape sequence: `\\Z`"),
    ("\\C", "invalid escape sequence: `\\C`"),  # RE2 has it; Go does not
    ("(?<n>a)", "invalid or unsupported Perl syntax: `(?<`"),  # Go 1.22+, not the Go of Prometheus 2.42
    ("(?P<é>a)", "invalid named capture: `(?P<é>`"),
    ("(?P<>a)", "invalid named capture"),
    ("[z-a]", "invalid character class range: `z-a`"),
    ("\\pZz", None), ("\\p{Nope}", "invalid character class range"),
    ("\ud800", "invalid UTF-8"),
])
def test_rejected_expressions_are_clear_errors(pattern, reason):
    if reason is None:  # \pZ followed by z: valid
        compile_regex(pattern)
        return
    with pytest.raises(RegexError) as exc:
        compile_regex(pattern)
    assert exc.value.pattern == pattern
    assert reason in exc.value.reason
    assert str(exc.value).startswith(f"error parsing regexp {pattern!r}: ")
    assert isinstance(exc.value, ValueError)
    with pytest.raises(RegexError):
        Matcher.parse_op("=~", "job", pattern)


def test_matcher_regex_must_parse_alone_as_in_prometheus():
    assert compile_regex("a)|(b").fullmatch("axx")  # ^(?:a)|(b)$: Prometheus's relabel/label_replace behaviour
    with pytest.raises(RegexError, match="unexpected \\)"):
        compile_matcher_regex("a)|(b")


def test_query_errors_are_bad_data_for_matchers_and_execution_for_label_replace():
    engine = Engine(MemoryStorage())
    with pytest.raises(BadQueryError):
        engine.instant('up{job=~"a)|(b"}', 0)
    with pytest.raises(BadQueryError):
        engine.instant('up{job=~"(a)\\\\1"}', 0)
    with pytest.raises(QueryExecutionError, match=r"invalid regular expression in label_replace\(\): a\+\+: "
                                                  r"invalid nested repetition operator"):
        engine.instant('label_replace(vector(1), "a", "$1", "b", "a++")', 0)


def test_re2_does_not_log_to_stderr(capfd):
    with pytest.raises(RegexError):
        compile_regex("(?=nope)")
    assert capfd.readouterr().err == ""


# --- the batch paths agree with one-value matching --------------------------------------------------

ATOMS = ["a", "b", "é", ".", "\\.", "[ab]", "[^a]", "\\d", "\\pL", "(?i:a)", "x"]
PATTERNS = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map("|".join),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "*?"])).map(lambda t: f"(?:{t[0]}){t[1]}"),
        inner.map(lambda p: f"({p})"),
        inner.map(lambda p: f".*{p}.*"), inner.map(lambda p: f"{p}.*"), inner.map(lambda p: f".*{p}"),
    ),
    max_leaves=6,
)
VALUES = st.lists(st.text(alphabet="ab.éxA1\nΩ", max_size=6), max_size=40)
SHAPES = st.sampled_from([".*", ".+", "ab.*", ".*ab", ".*a.*", "a\\..*", ".*é.*", "", "a", "a|b|", "x.*", "(a|b)", "(?:a|)", "(a)|(b)"])


@settings(max_examples=300, deadline=None)
@given(pattern=st.one_of(PATTERNS, SHAPES), values=VALUES)
def test_select_partition_and_range_agree_with_fullmatch(pattern, values):
    rx = compile_regex(pattern)
    want = [v for v in values if rx.fullmatch(v)]
    assert rx.select(values) == want
    hits, misses = rx.partition(values)
    assert hits == want and misses == [v for v in values if not rx.fullmatch(v)]
    if rx.literals is not None:
        assert set(want) <= rx.literals and all(rx.fullmatch(v) for v in rx.literals)
    ordered = sorted(set(values))
    lo, hi = sorted_range(ordered, rx)
    assert [v for v in ordered if rx.fullmatch(v)] == [v for v in ordered[lo:hi] if rx.fullmatch(v)]
