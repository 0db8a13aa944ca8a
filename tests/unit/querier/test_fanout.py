"""The fan-out near a query's deadline: a shard that stays silent is left out in time for the answer;
one that keeps sending is not (the query then times out whole, as before)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from shardmon.model.errors import QueryTimeoutError, ShardUnavailableError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.storage import QueryBudget, Series
from shardmon.querier.fanout import FanoutQuerier

X = [Matcher(MatchType.EQ, "__name__", "x")]


def _series(i: int) -> Series:
    return Series(Labels.from_dict({"__name__": "x", "i": str(i)}), np.array([1000], np.int64), np.array([1.0]))


class _Stream:
    def __init__(self, parts, gap_s: float) -> None:
        self.parts, self.gap_s = parts, gap_s
        self.cancelled = threading.Event()

    def __iter__(self):
        for part in self.parts:
            if self.cancelled.wait(self.gap_s):
                raise ShardUnavailableError("cancelled")
            yield part
        if self.gap_s == float("inf") and self.cancelled.wait():  # A hung shard: nothing until cancelled.
            raise ShardUnavailableError("cancelled")

    def cancel(self) -> None:
        self.cancelled.set()


class _Client:
    """A shard that answers ``parts``, one every ``gap_s`` (inf: sends nothing at all)."""

    def __init__(self, shard_id: int, parts, gap_s: float = 0.0) -> None:
        self.shard_id, self.address = shard_id, f"fake:{shard_id}"
        self.parts, self.gap_s = parts, gap_s

    def series_stream(self, *args, **kwargs) -> _Stream:
        return _Stream([] if self.gap_s == float("inf") else self.parts, self.gap_s)

    def close(self) -> None:
        pass


def test_a_silent_shard_is_left_out_before_the_deadline_and_the_answer_is_partial():
    fanout = FanoutQuerier([_Client(0, [[_series(0), _series(1)]]), _Client(1, [], gap_s=float("inf"))],
                           response_timeout_s=60)
    try:
        t0 = time.monotonic()
        got = fanout.select(X, 0, 2000, budget=QueryBudget(timeout_s=2))
        took = time.monotonic() - t0
    finally:
        fanout.close()
    assert got.partial and [s.labels.get("i") for s in got.series] == ["0", "1"]
    assert "shard 1" in got.warnings[0] and "deadline" in got.warnings[0], got.warnings
    assert 1.0 < took < 2.0, took  # with a quarter of its 2 s left, not at 60 s nor at the deadline


def test_a_shard_that_keeps_sending_is_not_left_out_and_the_query_times_out():
    slow = [[_series(i)] for i in range(100)]  # a part every 0.1 s: 10 s in all
    fanout = FanoutQuerier([_Client(0, [[_series(1000)]]), _Client(1, slow, gap_s=0.1)], response_timeout_s=60)
    try:
        with pytest.raises(QueryTimeoutError):
            fanout.select(X, 0, 2000, budget=QueryBudget(timeout_s=1))
    finally:
        fanout.close()
