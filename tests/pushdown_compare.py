"""An engine that answers every query twice, with the aggregation push-down and without (the shards'
series fetched and aggregated in the querier), and records where the two answers differ; for the tests
that check the push-down against the exact path (tests/integration/test_pushdown.py)."""

from __future__ import annotations

import math

import numpy as np

from shardmon.querier.promql import Engine, QueryResult

#: Sums and means over series of several shards add in another order: their last bits may differ. Any
#: other difference is a failure (this is 1e6 times tighter than Prometheus's test tolerance).
LAST_BITS = 1e-12


class Differences:
    """What the comparisons found: queries compared, those answered bit for bit the same, those equal but
    for the last bits of a value, and descriptions of the real differences."""

    def __init__(self) -> None:
        self.compared = 0
        self.identical = 0
        self.last_bits = 0
        self.failures: list[str] = []


def _same_value(a: float, b: float) -> str:
    """"same" (bit for bit, NaN as NaN), "close" (within LAST_BITS) or "different"."""
    if (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b)):
        return "same"
    if math.isfinite(a) and math.isfinite(b) and abs(a - b) <= LAST_BITS * max(abs(a), abs(b)):
        return "close"
    return "different"


def compare(a: QueryResult, b: QueryResult) -> str:
    """``"same"``, ``"close"`` (last bits) or a description of how the answers differ."""
    if (a.result_type, a.time_ms, a.partial, a.warnings) != (b.result_type, b.time_ms, b.partial, b.warnings):
        return f"shape: {a.result_type, a.partial, a.warnings} != {b.result_type, b.partial, b.warnings}"
    worst = "same"
    if a.scalar is not None or b.scalar is not None:
        worst = _same_value(float(a.scalar), float(b.scalar))
    if [s.labels for s in a.series] != [s.labels for s in b.series]:
        return f"series: {[s.labels for s in a.series]} != {[s.labels for s in b.series]}"
    for sa, sb in zip(a.series, b.series):
        if not np.array_equal(sa.timestamps_ms, sb.timestamps_ms):
            return f"{sa.labels}: timestamps {sa.timestamps_ms} != {sb.timestamps_ms}"
        for va, vb in zip(sa.values.tolist(), sb.values.tolist()):
            got = _same_value(va, vb)
            if got == "different":
                return f"{sa.labels}: {sa.values} != {sb.values}"
            if got == "close":
                worst = "close"
    return worst


class ComparingEngine(Engine):
    """Answers with the push-down and checks the answer against the exact path's (same errors too)."""

    differences = Differences()

    def __init__(self, querier, **options) -> None:
        # As the script runner's engine (querier.promqltest.script_engine): the experimental functions on.
        options.setdefault("experimental_functions", True)
        super().__init__(querier, **options)

    def _both(self, run, what: str) -> QueryResult:
        exact = self.with_querier(self.querier)
        exact.aggregation_pushdown = False
        outcomes = []
        for engine in (self, exact):
            try:
                outcomes.append(run(engine))
            except Exception as exc:  # noqa: BLE001 - a crash of either is a difference too
                outcomes.append(exc)
        pushed, slow = outcomes
        d = self.differences
        d.compared += 1
        if isinstance(pushed, Exception) or isinstance(slow, Exception):
            if type(pushed) is not type(slow) or str(pushed) != str(slow):
                d.failures.append(f"{what}: {pushed!r} != {slow!r}")
            else:
                d.identical += 1
        else:
            verdict = compare(pushed, slow)
            if verdict == "same":
                d.identical += 1
            elif verdict == "close":
                d.last_bits += 1
            else:
                d.failures.append(f"{what}: {verdict}")
        if isinstance(pushed, Exception):
            raise pushed
        return pushed

    def instant(self, query, time_ms, *, budget=None):
        return self._both(lambda e: Engine.instant(e, query, time_ms), f"instant {query!r} at {time_ms}")

    def range(self, query, start_ms, end_ms, step_ms, *, budget=None):
        return self._both(lambda e: Engine.range(e, query, start_ms, end_ms, step_ms),
                          f"range {query!r} {start_ms}..{end_ms}/{step_ms}")
