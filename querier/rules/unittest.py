"""``shardmon test rules``: promtool's rule unit tests (``cmd/promtool/unittest.go``), in memory.

A test file names ``rule_files`` (globs, relative to the test file), an ``evaluation_interval`` (1m),
a ``group_eval_order`` and ``tests``; each test has an ``interval`` for its ``input_series`` (the
expanding notation of PromQL test scripts, with ``_`` and ``stale``), optional ``external_labels``,
``external_url`` and ``name``, and ``alert_rule_test`` (``eval_time``, ``alertname``, ``exp_alerts`` of
``exp_labels`` and ``exp_annotations``: the firing alerts) and ``promql_expr_test`` (``expr``,
``eval_time``, ``exp_samples``) cases. As promtool, each test loads its input series into a fresh
:class:`~shardmon.model.memory.MemoryStorage` step by step (samples up to each evaluation time), evaluates
every group every ``evaluation_interval`` from 0 up to the last ``eval_time``, checks each alert case
after the evaluation at or just before its time, then the PromQL cases. The output and exit status are
promtool's (``Unit Testing:  FILE``, ``  SUCCESS`` or ``  FAILED:`` and the differences, 0 or 1); a last
line ``N passed, M failed`` counts the cases.

Native histograms as promtool 2.53: ``input_series`` values may hold the ``{{...}}`` notation of the PromQL
test scripts (``{{schema:0 sum:5 count:4 buckets:[1 2 1]}}x3``, ``{{...}}+{{...}}x3``, mixed with floats, ``_``
and ``stale``), and an ``exp_samples`` entry may give a ``histogram`` (one ``{{...}}``). As promtool, a sample
compares as (labels, ``value``, the histogram's ``TestExpression``): a histogram result's value is 0, so an
expected histogram leaves ``value`` out; a mismatch prints the histogram in that notation.
"""

from __future__ import annotations

import glob
import math
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import yaml

from shardmon.model.errors import QueryError, RuleFileError
from shardmon.model.histogram import Histogram
from shardmon.model.histogram_notation import NotationError, expand_item, histogram_test_expression, split_items
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import F64, I64
from shardmon.model.units import format_duration_ms, format_go_duration_ms, parse_duration_ms
from shardmon.querier.promql import Engine
from shardmon.querier.promqltest import ScriptError, parse_series_line
from shardmon.querier.promqltest_histograms import histogram_values
from shardmon.querier.rules.alerting import AlertingRule, AlertState
from shardmon.querier.rules.loader import engine_query_func, load_groups

_FILE_FIELDS = {"rule_files", "evaluation_interval", "group_eval_order", "tests"}
_TEST_FIELDS = {"interval", "input_series", "alert_rule_test", "promql_expr_test", "external_labels", "external_url",
                "name"}
_ALERT_FIELDS = {"eval_time", "alertname", "exp_alerts"}
_EXP_ALERT_FIELDS = {"exp_labels", "exp_annotations"}
_PROMQL_FIELDS = {"expr", "eval_time", "exp_samples"}
_SAMPLE_FIELDS = {"labels", "value", "histogram"}
_SERIES_FIELDS = {"series", "values"}


class TestFileError(ValueError):
    """A test file that cannot be read (promtool's error before any test runs)."""


@dataclass
class Outcome:
    """What running test files found: cases passed and failed, and promtool's error texts."""

    passed: int = 0
    failed: int = 0


def go_float_e(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'E', -1, 64)``: ``6.1E+01``, ``0E+00``, ``NaN``, ``+Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits)) or "0"
    exp = exponent + len(text) - 1 if value != 0 else 0
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}E{'-' if exp < 0 else '+'}{abs(exp):02d}"


def go_labels(labels: Labels) -> str:
    """Go's ``labels.Labels.String``: ``{a="b", c="d"}`` (``__name__`` inside the braces)."""
    import json

    return "{" + ", ".join(f"{n}={json.dumps(v, ensure_ascii=False)}" for n, v in labels) + "}"


def _strict(mapping, fields: set[str], where: str) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise TestFileError(f"yaml: unmarshal errors:\n  {where}: expected a mapping")
    unknown = sorted(set(map(str, mapping)) - fields)
    if unknown:
        raise TestFileError(f"yaml: unmarshal errors:\n  field {unknown[0]} not found in {where}")
    return mapping


def _duration(value, where: str) -> int:
    if value is None:
        return 0
    try:
        return parse_duration_ms(str(value))
    except ValueError:
        raise TestFileError(f'not a valid duration string: "{value}" ({where})') from None


class _TestGroup:
    def __init__(self, raw: dict, eval_interval_ms: int, order: dict[str, int], rule_files: list[str]) -> None:
        self.raw = _strict(raw, _TEST_FIELDS, "type main.testGroup")
        self.interval_ms = _duration(self.raw.get("interval"), "interval")
        self.eval_interval_ms = eval_interval_ms
        self.order = order
        self.rule_files = rule_files
        self.name = str(self.raw.get("name") or "")
        self.alert_tests = [_strict(a, _ALERT_FIELDS, "type main.alertTestCase") for a in self.raw.get("alert_rule_test") or []]
        self.promql_tests = [_strict(p, _PROMQL_FIELDS, "type main.promqlTestCase")
                             for p in self.raw.get("promql_expr_test") or []]

    @property
    def cases(self) -> int:
        return len(self.alert_tests) + len(self.promql_tests)

    def run(self) -> tuple[list[str], int]:
        """promtool's error texts for this test, and how many of its cases failed."""
        storage = MemoryStorage()
        engine = Engine(storage, subquery_step_ms=self.eval_interval_ms)
        pending = self._input_series()
        ext_labels = {str(k): str(v) for k, v in (self.raw.get("external_labels") or {}).items()}
        try:
            groups = load_groups(self.rule_files, self.interval_ms, external_labels=ext_labels,
                                 external_url=str(self.raw.get("external_url") or ""), restored=True,
                                 query=engine_query_func(engine), appender=storage, querier=storage)
        except RuleFileError as exc:
            return exc.errors, max(1, self.cases)
        ordered = sorted(groups.values(), key=lambda g: self.order.get(g.name, 0))
        by_time: dict[int, list[dict]] = {}
        for case in self.alert_tests:
            if not case.get("alertname"):
                group = f" (in TestGroup {self.name})" if self.name else ""
                when = format_duration_ms(_duration(case.get("eval_time"), "eval_time"))
                return [f"an item under alert_rule_test misses required attribute alertname at eval_time "
                        f"{when}{group}"], max(1, self.cases)
            by_time.setdefault(_duration(case.get("eval_time"), "eval_time"), []).append(case)
        alert_times = sorted(by_time)
        max_t = max([*alert_times, *(_duration(p.get("eval_time"), "eval_time") for p in self.promql_tests), 0])
        errors: list[str] = []
        failed = 0
        curr = 0
        ts = 0
        while ts <= max_t:
            pending = self._append_till(storage, pending, ts)
            eval_errors = []
            for g in ordered:
                g.eval(ts)
                for r in g.rules:
                    if r.last_error:
                        eval_errors.append(f"    rule: {r.name}, time: {format_go_duration_ms(ts)}, err: {r.last_error}")
            if eval_errors:
                return errors + eval_errors, max(1, self.cases - 0)
            while curr < len(alert_times) and ts <= alert_times[curr] < ts + self.eval_interval_ms:
                t = alert_times[curr]
                for case in by_time[t]:
                    problem = self._check_alerts(ordered, case, t)
                    if problem:
                        errors.append(problem)
                        failed += 1
                curr += 1
            ts += self.eval_interval_ms
        for case in self.promql_tests:
            problem = self._check_promql(engine, case)
            if problem:
                errors.append(problem)
                failed += 1
        return errors, failed

    def _input_series(self) -> list[tuple[Labels, np.ndarray, np.ndarray, np.ndarray | None]]:
        """Each input series: labels, timestamps, values and (None: all floats) its histograms, as
        :class:`~shardmon.model.storage.Series` holds them."""
        out = []
        for item in self.raw.get("input_series") or []:
            item = _strict(item, _SERIES_FIELDS, "type main.series")
            text = str(item.get("values", "") or "")
            try:
                if "{{" not in text:
                    labels, values = parse_series_line(f"{item.get('series', '')} {text}")
                else:
                    labels = parse_series_line(str(item.get("series", "")))[0]
                    out.append((labels, *self._mixed_values(text)))
                    continue
            except ScriptError as exc:
                raise TestFileError(str(exc).split(": ", 1)[-1]) from None
            ts = np.arange(len(values), dtype=I64) * self.interval_ms
            keep = np.array([v is not None for v in values], dtype=bool)
            vals = np.array([0.0 if v is None else v for v in values], dtype=F64)
            out.append((labels, ts[keep], vals[keep], None))
        return out

    def _mixed_values(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A series' values holding ``{{...}}`` histograms: timestamps, values (NaN at a histogram), histograms."""
        fts, fvals, hts, hs = histogram_values(text, self.interval_ms, lambda item: parse_series_line(f"x {item}")[1],
                                               ScriptError)
        ts = np.concatenate([fts, np.array(hts, dtype=I64)])
        order = np.argsort(ts, kind="stable")
        vals = np.concatenate([fvals, np.full(len(hs), np.nan)])[order]
        hists = np.empty(ts.shape[0], dtype=object)
        hists[fts.shape[0]:] = hs
        return ts[order], vals, hists[order]

    @staticmethod
    def _append_till(storage: MemoryStorage, pending, ts: int):
        rest = []
        for labels, t, v, h in pending:
            n = int(np.searchsorted(t, ts, "right"))
            if n:
                storage.add_series(labels, t[:n], v[:n], None if h is None else h[:n])
            if n < t.shape[0]:
                rest.append((labels, t[n:], v[n:], None if h is None else h[n:]))
        return rest

    def _check_alerts(self, groups, case: dict, t: int) -> str | None:
        name = str(case["alertname"])
        got = []
        for g in groups:
            for r in g.rules:
                if isinstance(r, AlertingRule) and r.name == name:
                    got += [(a.labels, a.annotations) for a in r.active_alerts() if a.state == AlertState.FIRING]
        exp = []
        for a in case.get("exp_alerts") or []:
            a = _strict(a, _EXP_ALERT_FIELDS, "type main.alert")
            lbls = {str(k): str(v) for k, v in (a.get("exp_labels") or {}).items()}
            lbls["alertname"] = name
            exp.append((Labels.from_dict(lbls),
                        Labels.from_dict({str(k): str(v) for k, v in (a.get("exp_annotations") or {}).items()})))
        got.sort()
        exp.sort()
        if got == exp:
            return None
        group = f"    name: {self.name},\n" if self.name else ""
        return (f"{group}    alertname: {name}, time: {format_duration_ms(t)}, \n"
                f"        exp:{_indent(_alerts_text(exp), '            ')}, \n"
                f"        got:{_indent(_alerts_text(got), '            ')}")

    def _check_promql(self, engine: Engine, case: dict) -> str | None:
        expr = str(case.get("expr") or "")
        t = _duration(case.get("eval_time"), "eval_time")
        when = format_duration_ms(t)
        try:
            got = engine_query_func(engine)(expr, t)
        except (QueryError, ValueError) as exc:
            return f'    expr: "{expr}", time: {when}, err: {exc}'
        exp = []
        for s in case.get("exp_samples") or []:
            s = _strict(s, _SAMPLE_FIELDS, "type main.sample")
            text = str(s.get("labels") or "")
            try:
                labels = parse_series_line(text)[0] if text else Labels()
                hist = _expected_histogram(str(s.get("histogram") or ""))
            except ScriptError as exc:
                return f'    expr: "{expr}", time: {when}, err: labels "{text}": {str(exc).split(": ", 1)[-1]}'
            except NotationError as exc:
                return f'    expr: "{expr}", time: {when}, err: labels "{text}": invalid histogram: {exc}'
            exp.append((labels, float(s.get("value") or 0), hist))
        exp.sort(key=lambda s: s[0])
        # As promtool: (labels, the float value, 0 for a histogram, and the histogram's TestExpression).
        got = sorted(((lbls, 0.0, histogram_test_expression(v)) if isinstance(v, Histogram) else (lbls, v, "")
                      for lbls, v in got), key=lambda s: s[0])
        if exp == got:  # exact, as promtool's reflect.DeepEqual (NaN never equals)
            return None
        return (f'    expr: "{expr}", time: {when},\n        exp: {_samples_text(exp)}\n'
                f"        got: {_samples_text(got)}")


def _indent(text: str, indent: str) -> str:
    return ("\n" + indent).join(text.split("\n"))


def _alerts_text(alerts) -> str:
    if not alerts:
        return "[]"
    parts = [f"{i}:" + _indent(f"\nLabels:{go_labels(lbls)}\nAnnotations:{go_labels(a)}", "  ")
             for i, (lbls, a) in enumerate(alerts)]
    return "[\n" + ",\n".join(parts) + "\n]"


def _samples_text(samples) -> str:
    return ", ".join(f"{go_labels(lbls)} {h or go_float_e(v)}" for lbls, v, h in samples) if samples else "nil"


def _expected_histogram(text: str) -> str:
    """An ``exp_samples`` entry's ``histogram`` (one ``{{...}}``) as its TestExpression; ``""`` when none."""
    if not text:
        return ""
    values = [h for _, item in split_items(text) for h in (expand_item(item) if item.startswith("{{") else [None])]
    if len(values) != 1:
        raise ScriptError(f"histogram: expected 1 value, got {len(values)}")
    if values[0] is None:
        raise ScriptError(f"histogram: expected histogram, got {text}")
    return histogram_test_expression(values[0])


def run_test_file(path: str) -> tuple[list[str], Outcome]:
    """Run one test file: promtool's error texts (none when it passes) and the counts of cases."""
    outcome = Outcome()
    try:
        raw = yaml.safe_load(Path(path).read_text())
        raw = _strict(raw, _FILE_FIELDS, "type main.unitTestFile")
        eval_interval = _duration(raw.get("evaluation_interval"), "evaluation_interval") or 60_000
        base = os.path.dirname(path)
        files: list[str] = []
        for pattern in raw.get("rule_files") or []:
            pattern = str(pattern)
            if pattern and not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            matched = sorted(glob.glob(pattern))
            if not matched:
                print(f"  WARNING: no file match pattern {pattern}", file=sys.stderr)
            files += matched
        order: dict[str, int] = {}
        for i, name in enumerate(raw.get("group_eval_order") or []):
            if name in order:
                raise TestFileError(f"group name repeated in evaluation order: {name}")
            order[name] = i
        tests = [_TestGroup(t, eval_interval, order, files) for t in raw.get("tests") or []]
    except (OSError, yaml.YAMLError, TestFileError) as exc:
        outcome.failed += 1
        return [str(exc)], outcome
    errors: list[str] = []
    for test in tests:
        try:
            errs, failed = test.run()
        except TestFileError as exc:
            errs, failed = [str(exc)], max(1, test.cases)
        errors += errs
        outcome.failed += failed
        outcome.passed += test.cases - min(failed, test.cases)
    return errors, outcome


def run_test_files(paths: list[str]) -> int:
    """``promtool test rules`` on ``paths``: prints as promtool, then ``N passed, M failed``; the exit code."""
    total = Outcome()
    any_failed = False
    for path in paths:
        print("Unit Testing: ", path)
        errors, outcome = run_test_file(path)
        total.passed += outcome.passed
        total.failed += outcome.failed
        if errors:
            any_failed = True
            print("  FAILED:", file=sys.stderr)
            for e in errors:
                print(e, file=sys.stderr)
                print()
        else:
            print("  SUCCESS")
        print()
    print(f"{total.passed} passed, {total.failed} failed")
    return 1 if any_failed else 0
