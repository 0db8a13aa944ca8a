"""``shardmon test rules`` with native histograms, as promtool 2.53: ``{{...}}`` values in ``input_series``,
``histogram`` in ``exp_samples``, alerts over histogram results (tests/rules/native_histograms/)."""

from __future__ import annotations

import shutil

from shardmon.querier.rules.unittest import run_test_file
from tests.reference import ROOT

FOLDER = ROOT / "tests" / "rules" / "native_histograms"


def test_the_histogram_rule_tests_pass():
    errors, outcome = run_test_file(str(FOLDER / "histograms_test.yml"))
    assert errors == [] and (outcome.passed, outcome.failed) == (10, 0)


def test_a_wrong_expected_histogram_fails_showing_both_in_the_notation(tmp_path):
    for f in FOLDER.iterdir():
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "histograms_test.yml"
    text = path.read_text()
    path.write_text(text.replace("{{sum:16 count:13 buckets:[4 6 3]}}", "{{sum:16 count:13 buckets:[4 6 4]}}")
                    .replace("summary: \"25 requests\"", "summary: \"26 requests\""))
    errors, outcome = run_test_file(str(path))
    assert (outcome.passed, outcome.failed) == (8, 2)
    assert errors[1] == ('    expr: "job:req:sum", time: 2m,\n'
                         '        exp: {__name__="job:req:sum", job="a"} {{count:13 sum:16 buckets:[4 6 4]}}\n'
                         '        got: {__name__="job:req:sum", job="a"} {{count:13 sum:16 buckets:[4 6 3]}}')
    assert "alertname: ManyRequests, time: 5m" in errors[0] and 'summary="25 requests"' in errors[0]


def test_an_expected_histogram_is_compared_with_its_value_as_promtool_does(tmp_path):
    """promtool compares (labels, value, histogram): a histogram result's value is 0, so an expected histogram
    that also gives a value other than 0 does not match."""
    for f in FOLDER.iterdir():
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "histograms_test.yml"
    path.write_text(path.read_text().replace("histogram: '{{count:1 sum:1 buckets:[1]}}'\n      - expr: mixed",
                                             "histogram: '{{count:1 sum:1 buckets:[1]}}'\n            value: 1\n"
                                             "      - expr: mixed", 1))
    errors, outcome = run_test_file(str(path))
    assert outcome.failed == 1 and 'expr: "req{i="2"}", time: 5m' in errors[0]
