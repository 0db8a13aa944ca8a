"""The engine on a budget: limits enforced while loading and before big matrices are built, queries
called off from another thread, and the typed partial flag."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from shardmon.model.errors import QueryCanceledError, QueryExecutionError, QueryLimitError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.storage import QueryBudget, SeriesSet
from shardmon.querier.promql import Engine

S = 1000
DAY = 86_400 * S


def _many(n_series: int, n_samples: int, every_ms: int = 15 * S, end_ms: int = DAY) -> MemoryStorage:
    st = MemoryStorage()
    ts = end_ms - every_ms * np.arange(n_samples)[::-1]
    for i in range(n_series):
        st.add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), ts, np.full(n_samples, float(i)))
    return st


def test_the_issues_subquery_is_refused_before_its_matrix_is_built():
    engine = Engine(_many(2_000, 10))
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(QueryLimitError, match="too many samples") as err:
            engine.instant("max_over_time(x[1d:1s])", DAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.limit == "max_samples"
    assert time.monotonic() - t0 < 5
    # 2,000 series x 86,401 steps would be 173M cells (over 1 GB for values and presence alone).
    assert peak < 64 * 2**20, peak


def test_a_value_per_step_through_count_values_is_refused_before_it_is_built():
    engine = Engine(_many(1, 1))
    end = 11_000 * 60 * S
    with pytest.raises(QueryLimitError, match="too many samples"):
        # A series per distinct value: 11,001 series x 11,001 steps.
        engine.range('count_values("t", timestamp(vector(1)))', 0, end, 60 * S)
    assert engine.range('count_values("t", timestamp(vector(1)))', 0, 100 * 60 * S, 60 * S).series


def test_a_call_for_less_than_the_engine_timeout_is_capped_by_it():
    engine = Engine(MemoryStorage(), timeout_ms=2_000)
    assert engine.new_budget(10**9).time_left() <= 2.0
    assert engine.new_budget(500).time_left() <= 0.5
    assert 1.0 < engine.new_budget().time_left() <= 2.0


def test_a_query_called_off_from_another_thread_stops_inside_its_long_loops():
    st = MemoryStorage()
    ts = np.arange(0, 2 * DAY, S)
    st.add_series(Labels.from_dict({"__name__": "x"}), ts, np.sin(ts / 1e6))
    engine = Engine(st, max_samples=10**9)
    budget = engine.new_budget()
    outcome = []

    def run():
        t0 = time.monotonic()
        try:
            # holt_winters folds over each window sample by sample: tens of seconds for this grid.
            engine.range("holt_winters(x[1d], 0.5, 0.5)", DAY, DAY + 2_000 * 60 * S, 60 * S, budget=budget)
            outcome.append(("answered", time.monotonic() - t0))
        except QueryCanceledError:
            outcome.append(("canceled", time.monotonic() - t0))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    cancelled_at = time.monotonic()
    budget.cancel()
    thread.join(30)
    assert outcome and outcome[0][0] == "canceled", outcome
    assert time.monotonic() - cancelled_at < 5


class _Flagging:
    """A Querier whose answers carry a given partial flag and warning."""

    def __init__(self, inner: MemoryStorage, warning: str | None, partial: bool) -> None:
        self.inner, self.warning, self.partial = inner, warning, partial

    def select(self, matchers, start_ms, end_ms, **kwargs):
        got = self.inner.select(matchers, start_ms, end_ms, **kwargs)
        return SeriesSet(got.series, [self.warning] if self.warning else [], self.partial)


def test_partial_is_the_typed_flag_never_read_from_the_warnings_text():
    st = _many(3, 5)
    flagged = Engine(_Flagging(st, None, True)).instant("sum(x)", DAY)
    assert flagged.partial and flagged.warnings == []
    worded = Engine(_Flagging(st, "partial response: shard 1 (127.0.0.1:1) failed", False)).instant("x", DAY)
    assert not worded.partial and worded.warnings
    both = Engine(_Flagging(st, "partial response: shard 1 failed", True)).range("max_over_time(x[1m:15s])", 0, DAY,
                                                                                 3_600 * S)
    assert both.partial and both.warnings == ["partial response: shard 1 failed"]
    assert not Engine(st).instant("x", DAY).partial


def test_limits_count_across_every_selector_of_the_query():
    engine = Engine(_many(10, 10), max_series=15)
    assert len(engine.instant("x", DAY).series) == 10
    with pytest.raises(QueryExecutionError, match="querier.max_series"):
        engine.instant("x + x", DAY)  # 20 series loaded in all.


def test_an_outside_budget_is_honoured_and_charged():
    engine = Engine(_many(10, 10))
    budget = QueryBudget(max_samples=1_000)
    engine.instant("x", DAY, budget=budget)
    assert budget.series == 10 and budget.samples == 10 * 10 + 10  # Ten samples and one point per series.
