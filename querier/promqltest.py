"""A runner for Prometheus's PromQL test scripts (``promql/testdata/*.test``), against our engine.

The format, as Prometheus 2.x's ``promql/test.go`` reads it (lines are trimmed; ``#`` starts a
comment line; blank lines end a block)::

    load 5m
        http_requests{job="api", instance="0"}  0+10x10  _  stale  1 2 3  _x3  1-1x5
    eval instant at 50m sum by (job) (http_requests)
        {job="api"} 100
    eval_fail instant at 50m <expr>        # the query must fail
    eval_ordered instant at 50m <expr>     # the result must come in the listed order
    eval instant at 50m 1 + 1
        2                                  # a scalar result is a bare number
    clear

Series values in expanding notation: ``a+bxN`` (and ``a-bxN``) is the N+1 values a, a+b, ...;
``axN`` is a repeated N+1 times; ``_`` is a missing sample and ``_xN`` N of them; ``stale`` is a
staleness marker. Samples are ``interval`` apart from time 0. Native histograms are written in
Prometheus's ``{{...}}`` notation (``shardmon.model.histogram_notation``: ``{{...}}xN``, ``{{a}}+{{b}}xN``,
mixed with the other items), loaded through ``SampleBatch.histograms`` and expected as results too
(compared as 2.53's runner does: equal after compaction).

As Prometheus's runner, each case is evaluated as an instant query and again as a range query from
one minute before to one minute after, step one minute, whose middle step must give the same result
(except for ``eval_ordered`` cases, whose order a range query cannot show);
values compare with a relative tolerance of 1e-6 and NaN equals NaN. A case whose query uses a
feature the engine does not implement yet counts as *unsupported*, not as a failure.

Run it from the command line: ``python -m shardmon.querier.promqltest FILE_OR_DIR...``.
"""

from __future__ import annotations

import itertools
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shardmon.model.errors import QueryError
from shardmon.model.hashing import shards_for_series
from shardmon.model.histogram import Histogram
from shardmon.model.histogram_notation import format_histogram
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import F64, I64, STALE_NAN, U32, U64, SampleBatch
from shardmon.model.storage import Appender, Querier
from shardmon.model.units import parse_duration_ms
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promql import Engine, QueryResult, ResultSeries, UnsupportedQueryError
from shardmon.querier.promql_differences import skipped_script_case
from shardmon.querier.promqltest253 import EVAL_INSTANT, EVAL_RANGE, almost_equal, check_annotations, compare_matrix
from shardmon.querier.promqltest_histograms import (
    batch_with_histograms,
    compare_histogram_point,
    expected_histogram,
    histogram_values,
)

#: Builds an empty storage: where ``load`` writes, and what the engine reads. Called again on ``clear``.
StorageFactory = Callable[[], tuple[Appender, Querier]]


_LOAD = re.compile(r"^load\s+(.+?)$")
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF]|[nN][aA][nN])"
# Prometheus's lexer reads no hexadecimal in series values, where it would be ambiguous: ``0x10``
# is 0 repeated, not 16.
_SERIES_NUMBER = r"(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF]|[nN][aA][nN])"
_VALUE_ITEM = re.compile(
    rf"^(?P<base>stale|[+-]?{_SERIES_NUMBER})(?:(?P<delta>[+-]{_SERIES_NUMBER})?x(?P<times>\d+))?$"
)
_BLANK_ITEM = re.compile(r"^_(?:x(?P<times>\d+))?$")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_PAIR = re.compile(
    r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(,|(?=\}))"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}


@dataclass
class ScriptReport:
    """What a script run found: counts per outcome, and one description per failed case.

    ``unsupported`` counts cases whose query the engine rejects as not supported yet (their
    descriptions are in ``unsupported_cases``); ``different`` counts the cases of Prometheus
    2.42's scripts that 2.53 (which Shardmon follows) answers differently, listed in
    :mod:`shardmon.querier.promql_differences` and not run.
    """

    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    failures: list[str] = field(default_factory=list)
    unsupported_cases: list[str] = field(default_factory=list)
    different: int = 0

    def add(self, other: ScriptReport) -> None:
        """Accumulate another report into this one (for a run over several scripts)."""
        self.passed += other.passed
        self.failed += other.failed
        self.unsupported += other.unsupported
        self.different += other.different
        self.failures.extend(other.failures)
        self.unsupported_cases.extend(other.unsupported_cases)

    def summary(self) -> str:
        """The counts on one line."""
        return (
            f"passed {self.passed}, failed {self.failed}, unsupported {self.unsupported}"
        ) + (f", skipped (2.42 differs from 2.53) {self.different}" if self.different else "")


class ScriptError(ValueError):
    """A script that is not valid in the test format; names the file and line."""


def memory_storage() -> tuple[Appender, Querier]:
    """The default storage factory: a fresh :class:`~shardmon.model.memory.MemoryStorage`."""
    storage = MemoryStorage()
    return storage, storage


class ShardAppender:
    """Loads script data into real shards: routes each series by its hash, as the scrapers do."""

    def __init__(self, clients: list, replication_factor: int = 1) -> None:
        self.clients = clients
        self.replication_factor = replication_factor
        self._seq = itertools.count()
        self._run = uuid.uuid4().hex[:8]

    def append(self, batch: SampleBatch) -> None:
        shard_ids = [c.shard_id for c in self.clients]
        owners = shards_for_series(batch.series_ids, shard_ids, self.replication_factor)
        for pos, client in enumerate(self.clients):
            mask = (owners == pos).any(axis=1)
            if mask.any():
                client.write(f"promqltest-{self._run}-{next(self._seq)}", batch.select_series(mask))


def sharded_storage(clients: list, replication_factor: int = 1) -> StorageFactory:
    """A storage factory over real shards: every call (the start, each ``clear``) empties them
    (they must run with ``web.enable_admin_api``, for Reset) and returns an appender and the fan-out querier."""
    querier = FanoutQuerier(clients, partial_response="abort", replication_factor=replication_factor)

    def make() -> tuple[Appender, Querier]:
        for client in clients:
            client.reset()
        return ShardAppender(clients, replication_factor), querier

    return make


def run_script(
    text: str,
    make_storage: StorageFactory = memory_storage,
    *,
    name: str = "<script>",
    make_engine: Callable[[Querier], Engine] | None = None,
) -> ScriptReport:
    """Run a test script and report each ``eval`` case's outcome.

    ``make_storage`` gives the storage to load into and query (called at the start and on each
    ``clear``); if the appender has a ``flush()`` method, it is called after each ``load`` so that
    an asynchronous appender has written everything before the next query. Raises
    :class:`ScriptError` for a malformed script.
    """
    return _Runner(make_storage, make_engine or script_engine, name).run(text)


def script_engine(querier: Querier) -> Engine:
    """The engine scripts run on: Prometheus's experimental functions enabled, as its test runner does."""
    return Engine(querier, experimental_functions=True)


def run_file(path: str | Path, make_storage: StorageFactory = memory_storage) -> ScriptReport:
    """Run the script in the file at ``path``; failures are described as ``file:line``."""
    path = Path(path)
    return run_script(path.read_text(encoding="utf-8"), make_storage, name=path.name)


class _Case:
    """One ``eval`` command: the query, its time, the expected result."""

    def __init__(self, line: int, expr: str, time_ms: int, mode: str | None) -> None:
        self.line = line
        self.expr = expr
        self.time_ms = time_ms
        self.fail = mode == "fail"
        self.ordered = mode == "ordered"
        self.mode = mode
        #: (start, end, step) in ms of an ``eval range`` case, whose expected points are in ``points``.
        self.range: tuple[int, int, int] | None = None
        self.points: dict[Labels, list[float | None]] = {}
        #: The expected lines as written (to recognise the 2.42 cases 2.53 answers differently).
        self.expected_text: list[str] = []
        self.scalar: float | None = None
        self.series: dict[Labels, tuple[int, float]] = {}  # labels -> (position, value)


class _Runner:
    def __init__(self, make_storage: StorageFactory, make_engine: Callable[[Querier], Engine], name: str) -> None:
        self.make_storage = make_storage
        self.make_engine = make_engine
        self.name = name
        self.report = ScriptReport()
        self._reset()

    def _reset(self) -> None:
        self.appender, querier = self.make_storage()
        self.engine = self.make_engine(querier)

    def _error(self, index: int, message: str) -> ScriptError:
        return ScriptError(f"{self.name}:{index + 1}: {message}")

    def run(self, text: str) -> ScriptReport:
        lines = [line.strip() for line in text.split("\n")]
        lines = ["" if line.startswith("#") else line for line in lines]
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line:
                i += 1
                continue
            command = line.split(None, 1)[0].lower()
            if command == "clear":
                self._reset()
                i += 1
            elif command == "load":
                i = self._load(lines, i)
            elif command.startswith("eval"):
                case, i = self._parse_eval(lines, i)
                self._run_case(case)
            else:
                raise self._error(i, f"invalid command {line!r}")
        return self.report

    # -- load ---------------------------------------------------------------------------------

    def _load(self, lines: list[str], i: int) -> int:
        m = _LOAD.match(lines[i])
        if m is None:
            raise self._error(i, "invalid load command (load <step:duration>)")
        interval = self._duration(i, m.group(1))
        # As Prometheus, a series defined twice in one block keeps its last definition.
        defs: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}
        hdefs: dict[Labels, tuple[np.ndarray, np.ndarray, list]] = {}
        i += 1
        while i < len(lines) and lines[i]:
            labels, rest = self._parse_series(i, lines[i])
            if "{{" in rest:
                hdefs[labels] = histogram_values(rest, interval, lambda item, i=i: self._parse_values(i, item),
                                                 lambda msg, i=i: self._error(i, msg))
                defs.pop(labels, None)
            else:
                hdefs.pop(labels, None)
                values = self._parse_values(i, rest)
                ts = np.arange(len(values), dtype=I64) * interval
                # Converting a Python float to float64 copies its bits, so staleness markers survive.
                vals = np.array([np.nan if v is None else v for v in values], dtype=F64)
                keep = np.array([v is not None for v in values], dtype=bool)
                defs[labels] = (ts[keep], vals[keep])
            i += 1
        if defs or hdefs:
            self.appender.append(batch_with_histograms(defs, hdefs) if hdefs else _batch(defs))
            flush = getattr(self.appender, "flush", None)
            if callable(flush):
                flush()
        return i

    def _parse_series(self, i: int, line: str) -> tuple[Labels, str]:
        """Split ``name{labels} rest`` into the label set and the rest of the line."""
        pos = 0
        pairs: list[tuple[str, str]] = []
        m = _METRIC_NAME.match(line)
        if m:
            pairs.append(("__name__", m.group()))
            pos = m.end()
        if line.startswith("{", pos) and not line.startswith("{{", pos):
            pos += 1
            while True:
                while pos < len(line) and line[pos] in " \t":
                    pos += 1
                if line.startswith("}", pos):
                    pos += 1
                    break
                pm = _LABEL_PAIR.match(line, pos)
                if pm is None:
                    raise self._error(i, f"malformed labels in {line!r}")
                pairs.append((pm.group(1), _unquote(pm.group(2))))
                pos = pm.end()
        elif not m:
            raise self._error(i, f"expected a series description, got {line!r}")
        return Labels.from_pairs(pairs), line[pos:].strip()

    def _parse_values(self, i: int, text: str) -> list[float | None]:
        """Expand a sequence of series values; None is a missing sample."""
        out: list[float | None] = []
        for item in text.split():
            bm = _BLANK_ITEM.match(item)
            if bm:
                out.extend([None] * (int(bm.group("times")) if bm.group("times") else 1))
                continue
            vm = _VALUE_ITEM.match(item)
            if vm is None:
                raise self._error(i, f"invalid series value {item!r}")
            base = STALE_NAN if vm.group("base") == "stale" else _parse_float(vm.group("base"))
            if vm.group("times") is None:
                out.append(base)
                continue
            times = int(vm.group("times"))
            if vm.group("delta") is None:
                out.extend([base] * (times + 1))
            else:
                # Accumulate as Prometheus does (value += delta), so rounding matches bit for bit.
                delta = _parse_float(vm.group("delta"))
                value = base
                for _ in range(times + 1):
                    out.append(value)
                    value += delta
        return out

    # -- eval ---------------------------------------------------------------------------------

    def _parse_eval(self, lines: list[str], i: int) -> tuple[_Case, int]:
        if EVAL_RANGE.match(lines[i]):
            return self._parse_eval_range(lines, i)
        m = EVAL_INSTANT.match(lines[i])
        if m is None:
            raise self._error(i, "invalid evaluation command (eval[_fail|_ordered] instant [at <offset:duration>] <query>)")
        mode, at, expr = m.groups()
        case = _Case(i + 1, expr, self._duration(i, at) if at else 0, mode)
        position = 0
        i += 1
        while i < len(lines) and lines[i]:
            line = lines[i]
            number = _parse_number_line(line)
            if number is not None:
                case.scalar = number
                i += 1
                break
            labels, rest = self._parse_series(i, line)
            if "{{" in rest:
                position += 1
                case.series[labels] = (position, expected_histogram(rest, lambda msg, i=i: self._error(i, msg)))
            else:
                values = self._parse_values(i, rest)
                if len(values) != 1 or values[0] is None:
                    raise self._error(i, "expected exactly one value per series in an instant evaluation")
                position += 1
                case.series[labels] = (position, values[0])
            i += 1
        case.expected_text = lines[case.line:i]
        return case, i

    def _parse_eval_range(self, lines: list[str], i: int) -> tuple[_Case, int]:
        """``eval[_fail|_warn|_info] range from <t> to <t> step <d> <expr>`` and its expected series (2.53)."""
        mode, start, end, step, expr = EVAL_RANGE.match(lines[i]).groups()
        case = _Case(i + 1, expr, self._duration(i, start), mode)
        end_ms, step_ms = self._duration(i, end), self._duration(i, step)
        if end_ms < case.time_ms:
            raise self._error(i, f"invalid test definition, end timestamp ({end}) is before start timestamp ({start})")
        case.range = (case.time_ms, end_ms, step_ms)
        i += 1
        while i < len(lines) and lines[i]:
            labels, rest = self._parse_series(i, lines[i])
            case.points[labels] = self._parse_range_points(i, rest)
            i += 1
        case.expected_text = lines[case.line:i]
        return case, i

    def _parse_range_points(self, i: int, text: str) -> list:
        """An ``eval range`` series' expected points: floats, histograms (``{{...}}``) or None (``_``)."""
        if "{{" not in text:
            return self._parse_values(i, text)
        fts, fvals, hts, hs = histogram_values(text, 1, lambda item: self._parse_values(i, item),
                                               lambda msg: self._error(i, msg))
        points: list = [None] * (max([int(t) + 1 for t in fts.tolist()] + [t + 1 for t in hts] + [0]))
        for t, v in zip(fts.tolist(), fvals.tolist()):
            points[int(t)] = v
        for t, h in zip(hts, hs):
            points[t] = h
        return points

    def _run_range_case(self, case: _Case, where: str) -> str | None:
        """Run an ``eval range`` case: None if it passed, else the problem (errors propagate)."""
        start, end, step = case.range
        result = self.engine.range(case.expr, start, end, step)
        if case.fail:
            return "expected an error, got none"
        return compare_matrix(case.points, start, end, step, result) or check_annotations(case.mode, result)

    def _run_case(self, case: _Case) -> None:
        where = f"{self.name}:{case.line}"
        if skipped_script_case(self.name, case.expr, case.time_ms, case.expected_text) is not None:
            self.report.different += 1
            return
        try:
            if case.range is not None:
                problem = self._run_range_case(case, where)
                if problem:
                    self._fail(where, case, problem)
                else:
                    self.report.passed += 1
                return
            result = self.engine.instant(case.expr, case.time_ms)
            problem = None if case.fail else self._compare(case, result) or check_annotations(case.mode, result)
            # As Prometheus, ordered cases skip the range check: range results have no order.
            if problem is None and not case.fail and not case.ordered:
                problem = self._check_range_mode(case)
        except UnsupportedQueryError as exc:
            self.report.unsupported += 1
            self.report.unsupported_cases.append(f"{where}: {case.expr}: {exc}")
            return
        except QueryError as exc:
            if case.fail:
                self.report.passed += 1
            else:
                self._fail(where, case, f"unexpected error: {type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - an engine crash is a failed case, not a crashed run.
            self._fail(where, case, f"engine crashed: {type(exc).__name__}: {exc}")
            return
        if case.fail:
            self._fail(where, case, "expected an error, got none")
        elif problem:
            self._fail(where, case, problem)
        else:
            self.report.passed += 1

    def _check_range_mode(self, case: _Case) -> str | None:
        """Prometheus's second check: the same query as a range query around the time agrees."""
        t = case.time_ms
        result = self.engine.range(case.expr, t - 60_000, t + 60_000, 60_000)
        points: list[tuple[Labels, float, object]] = []
        for s in result.series:
            hit = np.flatnonzero(s.timestamps_ms == t)
            if hit.shape[0]:
                h = None if s.histograms is None else s.histograms[hit[0]]
                points.append((s.labels, float(s.values[hit[0]]), h))
        if case.scalar is not None:
            got = QueryResult("scalar", [], points[0][1] if points else None, t, [])
        else:
            got = QueryResult("vector", [_point(lbls, t, v, h) for lbls, v, h in points], None, t, [])
        problem = self._compare(case, got)
        return f"in range mode: {problem}" if problem else None

    def _compare(self, case: _Case, result: QueryResult) -> str | None:
        """None if ``result`` is what ``case`` expects, else what differs."""
        if case.scalar is not None:
            if result.result_type != "scalar" or result.scalar is None:
                return f"expected scalar {_fmt(case.scalar)}, got {_describe(result)}"
            if not almost_equal(case.scalar, result.scalar):
                return f"expected scalar {_fmt(case.scalar)}, got {_fmt(result.scalar)}"
            return None
        if result.result_type != "vector":
            return f"expected a vector, got {_describe(result)}"
        seen = set()
        for pos, s in enumerate(result.series, start=1):
            expected = case.series.get(s.labels)
            value = float(s.values[0])
            got_h = None if s.histograms is None else s.histograms[0]
            if expected is None:
                return f"unexpected series {s.labels} {_fmt(got_h if got_h is not None else value)} in result"
            if case.ordered and expected[0] != pos:
                return f"expected {s.labels} at position {expected[0]}, got it at {pos}"
            problem = compare_histogram_point(s.labels, expected[1], got_h, value, _fmt)
            if problem:
                return problem
            if problem is not None:  # the expected histogram
                seen.add(s.labels)
                continue
            if not almost_equal(expected[1], value):
                return f"expected {_fmt(expected[1])} for {s.labels}, got {_fmt(value)}"
            seen.add(s.labels)
        missing = [f"{lbls} {_fmt(v)}" for lbls, (_, v) in case.series.items() if lbls not in seen]
        if missing:
            return f"expected series not in result: {'; '.join(missing)}; got {_describe(result)}"
        return None

    def _fail(self, where: str, case: _Case, message: str) -> None:
        self.report.failed += 1
        self.report.failures.append(f"{where}: {case.expr} (at {case.time_ms / 1000:g}s): {message}")

    def _duration(self, i: int, text: str) -> int:
        try:
            return parse_duration_ms(text)
        except ValueError as exc:
            raise self._error(i, str(exc)) from exc


def parse_series_line(text: str) -> tuple[Labels, list[float | None]]:
    """One series line of a ``load`` block (``name{labels} values...`` in the expanding notation; None is a
    missing sample ``_``, a staleness marker is :data:`~shardmon.model.samples.STALE_NAN`); ScriptError when
    malformed. Also reads a bare series description (no values)."""
    runner = _Runner(memory_storage, Engine, "<series>")
    labels, rest = runner._parse_series(0, text.strip())
    return labels, runner._parse_values(0, rest) if rest else []


def _parse_float(text: str) -> float:
    if text[:1] in "+-" and text[1:3].lower() == "0x" or text[:2].lower() == "0x":
        return float(int(text, 16))
    return float(text)


def _parse_number_line(line: str) -> float | None:
    """The value of a line that is a bare number (Go's ParseInt with base prefixes, then ParseFloat)."""
    text = line.strip()
    octal = re.fullmatch(r"([+-]?)0([0-7]+)", text)
    if octal:  # Go reads a leading zero as octal.
        return float(int(octal.group(1) + octal.group(2), 8))
    if re.fullmatch(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)", text):
        return float(int(text, 0))
    if re.fullmatch(rf"[+-]?{_NUMBER}|[+-]?[iI]nfinity", text):
        return float(text)
    return None


def _unquote(text: str) -> str:
    """The value of a Go string literal (double-, single- or back-quoted)."""
    body = text[1:-1]
    if text[0] == "`":
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _batch(defs: dict[Labels, tuple[np.ndarray, np.ndarray]]) -> SampleBatch:
    keys = [lbls.canonical() for lbls in defs]
    ids = np.array([lbls.series_id() for lbls in defs], dtype=U64)
    refs = np.concatenate([np.full(ts.shape[0], n, dtype=U32) for n, (ts, _) in enumerate(defs.values())])
    ts = np.concatenate([ts for ts, _ in defs.values()]).astype(I64)
    vals = np.concatenate([vals for _, vals in defs.values()]).astype(F64)
    return SampleBatch.of(ids, keys, refs, ts, vals)


def _point(labels: Labels, t: int, value: float, histogram: Histogram | None = None) -> ResultSeries:
    hists = None
    if histogram is not None:
        hists = np.empty(1, dtype=object)
        hists[0] = histogram
    return ResultSeries(labels, np.array([t], dtype=I64), np.array([value], dtype=F64), hists)


def _fmt(value) -> str:
    if isinstance(value, Histogram):
        return format_histogram(value)
    return repr(float(value))


def _describe(result: QueryResult) -> str:
    if result.result_type == "scalar":
        return f"scalar {_fmt(result.scalar)}"
    body = ", ".join(f"{s.labels} {_fmt(s.values[0])}" for s in result.series[:10])
    more = f", ... ({len(result.series)} series)" if len(result.series) > 10 else ""
    return f"{result.result_type} [{body}{more}]"


def main(argv: list[str] | None = None) -> int:
    """Run the scripts given as files or folders (``*.test``); print failures and the counts."""
    paths: list[Path] = []
    for arg in argv if argv is not None else sys.argv[1:]:
        p = Path(arg)
        paths.extend(sorted(p.glob("*.test")) if p.is_dir() else [p])
    total = ScriptReport()
    for path in paths:
        report = run_file(path)
        print(f"{path.name}: {report.summary()}")
        total.add(report)
    for failure in total.failures:
        print(f"FAIL {failure}")
    print(f"total: {total.summary()}")
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
