"""QueryBudget, what one query may still load and until when, and the in-memory storage keeping to it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shardmon.model.errors import QueryCanceledError, QueryLimitError, QueryTimeoutError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.storage import NO_LIMIT, QueryBudget


def test_charges_add_up_and_the_first_one_over_names_the_limit_and_its_field():
    b = QueryBudget(max_series=10, max_samples=100)
    b.charge(4, 40)
    assert (b.remaining_series(), b.remaining_samples()) == (6, 60)
    b.charge(2, 20, points_per_series=10)  # Two series of 10 points each on top of their 20 samples.
    assert (b.series, b.samples) == (6, 80)
    with pytest.raises(QueryLimitError) as err:
        b.charge(1, 21)
    assert err.value.limit == "max_samples"
    assert str(err.value) == ("query processing would load too many samples into memory in query execution "
                              "(more than 100; querier.max_samples)")
    with pytest.raises(QueryLimitError, match=r"too many series \(more than 10; querier.max_series\)") as err:
        QueryBudget(max_series=10).charge(11, 0)
    assert err.value.limit == "max_series"


def test_no_limits_leave_everything():
    b = QueryBudget()
    b.charge(10**9, 10**12)
    assert b.remaining_series() == b.remaining_samples() == NO_LIMIT
    assert b.time_left() is None
    b.check()


def test_a_deadline_and_a_cancellation_end_the_query_at_its_next_check():
    b = QueryBudget(timeout_s=0.05)
    b.check()
    assert 0 < b.time_left() <= 0.05
    time.sleep(0.06)
    assert b.time_left() == 0
    with pytest.raises(QueryTimeoutError, match="query timed out"):
        b.check()
    c = QueryBudget(timeout_s=60)
    c.cancel()
    c.cancel(QueryTimeoutError("later reason"))  # The first reason wins.
    assert c.cancelled
    with pytest.raises(QueryCanceledError):
        c.check()


def _storage(n: int, samples: int) -> MemoryStorage:
    st = MemoryStorage()
    for i in range(n):
        st.add_series(Labels.from_dict({"__name__": "x", "i": f"{i:03}"}), np.arange(samples) * 1000, np.ones(samples))
    return st


def test_memory_storage_stops_as_soon_as_the_answer_would_exceed_what_is_left():
    st = _storage(20, 10)
    x = [Matcher(MatchType.EQ, "__name__", "x")]
    assert len(st.select(x, 0, 10**6, budget=QueryBudget(max_series=20, max_samples=200)).series) == 20
    with pytest.raises(QueryLimitError) as err:
        st.select(x, 0, 10**6, budget=QueryBudget(max_series=19))
    assert err.value.limit == "max_series"
    with pytest.raises(QueryLimitError) as err:
        st.select(x, 0, 10**6, budget=QueryBudget(max_samples=199))
    assert err.value.limit == "max_samples"
    # Points per series count: 20 series x (10 samples + 5 points) = 300.
    st.select(x, 0, 10**6, budget=QueryBudget(max_samples=300), points_per_series=5)
    with pytest.raises(QueryLimitError):
        st.select(x, 0, 10**6, budget=QueryBudget(max_samples=299), points_per_series=5)
    # What was charged before counts: the select gets only what is left.
    used = QueryBudget(max_samples=300)
    used.charge(1, 150)
    with pytest.raises(QueryLimitError):
        st.select(x, 0, 10**6, budget=used)
    # Only labels: series count, samples do not.
    assert len(st.select(x, 0, 10**6, skip_samples=True, budget=QueryBudget(max_series=20, max_samples=1)).series) == 20


def test_memory_storage_honours_cancellation():
    budget = QueryBudget()
    budget.cancel()
    with pytest.raises(QueryCanceledError):
        _storage(1, 1).select([Matcher(MatchType.EQ, "__name__", "x")], 0, 10, budget=budget)
