"""Tests of the PromQL test-script runner, and the run of Prometheus's reference scripts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from shardmon.model.storage import Series
from shardmon.querier.promqltest import ScriptError, ScriptReport, almost_equal, parse_duration_ms, run_file, run_script
from tests.reference import promqltest_dir


def test_prometheus_reference_scripts_pass_where_supported() -> None:
    scripts = promqltest_dir()  # skips here without them (fails when CI is set)
    paths = sorted(scripts.glob("*.test"))
    assert paths, f"no *.test files in {scripts}"
    total = ScriptReport()
    for path in paths:
        report = run_file(path)
        print(f"{path.name}: {report.summary()}")
        total.add(report)
    print(f"total: {total.summary()}")
    assert total.failed == 0, "\n".join(total.failures)
    # A runner that skipped everything would pass vacuously.
    # Every case: nothing left "not supported yet" (v2.42's scripts have no native histograms).
    assert total.unsupported == 0, "\n".join(total.unsupported_cases)
    assert total.passed >= 500


def run(text: str) -> tuple[ScriptReport, list[MemoryStorage]]:
    """Run a script on fresh MemoryStorages, returning the report and every storage made."""
    made: list[MemoryStorage] = []

    def make() -> tuple[MemoryStorage, MemoryStorage]:
        made.append(MemoryStorage())
        return made[-1], made[-1]

    return run_script(text, make, name="t.test"), made


def only_series(storage: MemoryStorage, name: str) -> Series:
    [series] = storage.select([Matcher(MatchType.EQ, "__name__", name)], -(10**15), 10**15).series
    return series


def samples(storage: MemoryStorage, name: str) -> tuple[list[int], np.ndarray]:
    series = only_series(storage, name)
    return series.timestamps_ms.tolist(), series.values


def test_load_expands_the_series_notation() -> None:
    _, [storage] = run(
        """
load 10s
    up{job="a"} 1+2x3 _ 5 _x2 stale 1-1x2 7x1
"""
    )
    ts, vals = samples(storage, "up")
    assert ts == [0, 10_000, 20_000, 30_000, 50_000, 80_000, 90_000, 100_000, 110_000, 120_000, 130_000]
    assert vals[:5].tolist() == [1, 3, 5, 7, 5]
    assert is_stale(vals[5:6]).all()
    assert vals[6:].tolist() == [1, 0, -1, 7, 7]


def test_a_series_defined_twice_in_one_load_keeps_its_last_definition() -> None:
    _, [storage] = run('load 1m\n  x{a="1"} 1 2\n  x{a="1"} 5\n')
    ts, vals = samples(storage, "x")
    assert (ts, vals.tolist()) == ([0], [5.0])


def test_passing_and_failing_cases_are_counted_with_file_and_line() -> None:
    report, _ = run(
        """
load 5m
  x{a="1"} 0+10x10
  x{a="2"} 0+20x10

eval instant at 50m sum(x)
  {} 300

eval instant at 50m x
  x{a="1"} 100
  x{a="2"} 999
"""
    )
    assert (report.passed, report.failed) == (1, 1)
    [failure] = report.failures
    assert failure.startswith("t.test:9: x (at 3000s): expected 999.0")


def test_missing_and_unexpected_series_are_failures() -> None:
    report, _ = run(
        """
load 5m
  x{a="1"} 1

eval instant at 0m x
  x{a="1"} 1
  x{a="2"} 1

eval instant at 0m x
"""
    )
    assert report.failed == 2
    assert "expected series not in result" in report.failures[0]
    assert "unexpected series" in report.failures[1]


def test_scalar_results_and_eval_fail() -> None:
    report, _ = run(
        """
eval instant at 0m -(2.5)
  -2.5

eval instant at 0m 1
  2

eval_fail instant at 0m rate({__name__=~"a|b"}[5m])

eval_fail instant at 0m 1
"""
    )
    # The rate case fails as expected only once data makes the labels clash; here it gives nothing.
    assert (report.passed, report.failed) == (1, 3)


def test_eval_fail_passes_on_an_execution_error() -> None:
    report, _ = run(
        """
load 1m
  a{j="x"} 0 1
  b{j="x"} 0 1

eval_fail instant at 1m rate({j="x"}[5m])
"""
    )
    assert (report.passed, report.failed) == (1, 0)


def test_eval_ordered_checks_positions() -> None:
    report, _ = run(
        """
load 1m
  x{a="1"} 1
  x{a="2"} 2

eval_ordered instant at 0m x
  x{a="1"} 1
  x{a="2"} 2

eval_ordered instant at 0m x
  x{a="2"} 2
  x{a="1"} 1
"""
    )
    assert (report.passed, report.failed) == (1, 1)


def test_clear_starts_a_new_storage() -> None:
    report, made = run(
        """
load 1m
  x 1

clear

eval instant at 0m x
"""
    )
    assert len(made) == 2
    assert (report.passed, report.failed) == (1, 0)


def test_unsupported_cases_are_counted_apart_and_native_histograms_are_loaded() -> None:
    report, _ = run(
        """
load 1m
  x 1
  h {{schema:0 sum:1 count:1}}

eval_fail instant at 0m x{a="1" or a="2"}

eval instant at 0m h
  {} 1
"""
    )
    # The histogram series is loaded and evaluated (no longer skipped): h is a histogram, not the float 1.
    assert (report.passed, report.failed, report.unsupported) == (0, 1, 1)
    assert "'or' between matchers in a selector not supported yet" in report.unsupported_cases[0]


def test_range_mode_is_checked_too() -> None:
    class InstantOnlyEngine:
        """An engine whose range queries disagree with its instant ones."""

        def __init__(self, querier) -> None:
            from shardmon.querier.promql import Engine

            self.engine = Engine(querier)

        def instant(self, query, time_ms):
            return self.engine.instant(query, time_ms)

        def range(self, query, start_ms, end_ms, step_ms):
            result = self.engine.range(query, start_ms, end_ms, step_ms)
            return result._replace(series=[s._replace(values=s.values + 1) for s in result.series])

    storage = MemoryStorage()
    report = run_script("load 1m\n  x 1\n\neval instant at 0m x\n  x 1\n", lambda: (storage, storage),
                        make_engine=InstantOnlyEngine)
    assert report.failed == 1 and "in range mode" in report.failures[0]


def test_malformed_script_raises_with_the_line() -> None:
    with pytest.raises(ScriptError, match="t.test:2"):
        run("\nfrobnicate 5m\n")
    with pytest.raises(ScriptError, match="invalid series value"):
        run("load 5m\n  x 1 two\n")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("0", 0), ("0s", 0), ("50m", 3_000_000), ("8000s", 8_000_000), ("1h30m", 5_400_000), ("1d", 86_400_000),
     ("100ms", 100)],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_almost_equal_as_prometheus() -> None:
    assert almost_equal(math.nan, math.nan)
    assert almost_equal(math.inf, math.inf)
    assert not almost_equal(math.inf, -math.inf)
    assert almost_equal(1.0, 1.0 + 1e-9)
    assert not almost_equal(1.0, 1.0 + 1e-5)
    assert almost_equal(0.0, -0.0)
    assert not almost_equal(0.0, 1e-300)
    assert not almost_equal(1.0, math.nan)


def test_labels_and_values_parse_like_go() -> None:
    _, [storage] = run(
        """
load 1m
  m{a="x\\"y", b='q', c=`r\\n`} 0x10 Inf -Inf NaN .5 1e3
"""
    )
    series = only_series(storage, "m")
    assert series.labels == Labels.from_dict({"__name__": "m", "a": 'x"y', "b": "q", "c": "r\\n"})
    vals = series.values
    # As Prometheus's lexer, no hexadecimal in series values: 0x10 is 0 repeated 10 times more.
    assert vals[:13].tolist() == [0.0] * 11 + [math.inf, -math.inf]
    assert np.isnan(vals[13]) and vals[14:].tolist() == [0.5, 1000.0]
