"""The push-down with replication (model/promql/pushdown_replicas.py): which copy aggregates a series, the
copies' digests, and the rule the querier applies to them; over in-memory shards with RF 2 of 3, both sides of
the rule (equal copies: pushed down and exact; copies that differ, misplaced series, a shard counted on
that does not answer: the exact path)."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Labels
from shardmon.model.promql.pushdown_replicas import (
    Placement,
    ReplicaDigest,
    designated,
    disagreement,
    owners_of,
    replica_digests,
)
from shardmon.model.samples import STALE_NAN
from shardmon.querier import metrics
from shardmon.querier.promql import Engine
from tests.pushdown_compare import compare
from tests.unit.model.test_pushdown import _data

S = 1000


def _outcome(name: str) -> float:
    return metrics.PUSHDOWN.labels(name)._value.get()


def test_each_series_is_designated_to_its_first_live_owner_exactly_once():
    ids = np.arange(1, 2001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for live in ((0, 1, 2), (0, 2), (1,), ()):
        placement = Placement((0, 1, 2), 2, live)
        owners = owners_of(ids, placement)
        assert (owners[:, 0] != owners[:, 1]).all()
        mine = [designated(owners, placement, me)[0] for me in (0, 1, 2)]
        times = np.sum(mine, axis=0)
        covered = np.isin(owners, live).any(axis=1)  # some owner counted on: exactly one copy aggregates it
        assert (times == covered).all()
        for me in live:
            first = np.where(np.isin(owners[:, 0], live), owners[:, 0], owners[:, 1])
            assert (mine[me] == (covered & (first == me))).all()
    # A series none of whose owners is "me" is misplaced there.
    placement = Placement((0, 1, 2), 2, (0, 1, 2))
    owners = owners_of(ids, placement)
    for me in (0, 1, 2):
        assert designated(owners, placement, me)[1] == int((~(owners == me).any(axis=1)).sum())


def _digest(series: dict[int, tuple[list[int], list[float]]], owners=(0, 1)) -> list[ReplicaDigest]:
    sids = np.array(sorted(series), dtype=np.uint64)
    counts = np.array([len(series[int(s)][0]) for s in sids])
    ts = np.array([t for s in sids for t in series[int(s)][0]], dtype=np.int64)
    vals = np.array([v for s in sids for v in series[int(s)][1]], dtype=np.float64)
    return replica_digests(np.array([owners] * len(sids)), sids, counts, ts, vals)


def test_digests_tell_apart_copies_that_differ_in_any_sample_bit_or_series():
    base = {7: ([1000, 2000], [1.0, 2.0]), 9: ([1000], [5.0]), 11: ([], [])}
    d = _digest(base)
    assert [(x.owners, x.series, x.samples) for x in d] == [((0, 1), 3, 3)]
    # The order the series come in does not matter; the owners are a set.
    assert _digest(dict(reversed(list(base.items()))), owners=(1, 0)) == d
    variants = [
        {**base, 7: ([1000, 2000], [1.0, 2.5])},              # a value
        {**base, 7: ([1000, 2001], [1.0, 2.0])},              # a timestamp
        {**base, 7: ([1000], [1.0])},                         # a sample missing (a gap)
        {**base, 9: ([1000], [-0.0])},                        # 5.0 -> -0.0
        {**base, 9: ([1000], [np.nan])},                      # a NaN
        {**base, 11: ([3000], [0.0])},                        # a sample where the other copy has none
        {7: base[7], 9: base[9]},                             # a series missing
        {**base, 7: ([1000, 2000], [2.0, 1.0])},              # values swapped between samples
        {7: base[9], 9: base[7], 11: base[11]},               # samples swapped between series
    ]
    for v in variants:
        assert _digest(v) != d, v
    nan = _digest({**base, 9: ([1000], [np.nan])})
    assert _digest({**base, 9: ([1000], [STALE_NAN])}) != nan  # a staleness marker is not a plain NaN


def test_the_rule_over_answers():
    same = [ReplicaDigest((0, 1), 2, 10, 123)]
    other = [ReplicaDigest((0, 1), 2, 10, 124)]
    assert disagreement({0: (same, 0), 1: (same, 0)}, (0, 1)) is None
    assert disagreement({0: (same, 0), 1: (other, 0)}, (0, 1)) == "diverged"
    assert disagreement({0: (same, 0), 1: ([], 0)}, (0, 1)) == "diverged"  # one copy holds none of them
    assert disagreement({0: (same, 0)}, (0,)) is None  # shard 1 down and not counted on: shard 0's copy
    assert disagreement({0: (same, 0)}, (0, 1)) == "unavailable"  # counted on, did not answer
    assert disagreement({0: (same, 0), 1: (same, 0)}, (0,)) is None  # back, and its copies are equal
    assert disagreement({2: ([ReplicaDigest((1, 2), 1, 1, 5)], 0)}, (0,)) == "unavailable"  # nobody covers
    assert disagreement({0: (same, 3), 1: (same, 0)}, (0, 1)) == "misplaced"


QUERIES = ["sum by (job) (temperature)", "avg(temperature)", "count by (mode) (requests_total)",
           "sum by (mode) (rate(requests_total[1m]))", "topk(3, temperature)", 'count_values("v", round(temperature))',
           "max_over_time(temperature[1m])", "temperature"]


@pytest.mark.parametrize("query", QUERIES)
def test_equal_copies_are_aggregated_once_and_pushed_down(query):
    storage = _data(5, 3, 2)
    assert sum(len(s.select([], 0, 10**9).series) for s in storage.shards) == 2 * 80  # two copies each
    pushed, rows, replicated = _outcome("pushed"), _outcome("rows"), _outcome("replicated")
    for run in (lambda e: e.instant(query, 450 * S), lambda e: e.range(query, 0, 600 * S, 20 * S)):
        got, want = run(Engine(storage)), run(Engine(storage, aggregation_pushdown=False))
        assert compare(got, want) in ("same", "close"), (query, compare(got, want))
    assert _outcome("pushed") + _outcome("rows") - pushed - rows == 2 and _outcome("replicated") == replicated
    assert not storage.refused


def test_a_shard_down_is_covered_by_the_next_owner():
    storage = _data(6, 3, 2)
    storage.down = {1}
    for query in QUERIES:
        got = Engine(storage).range(query, 0, 600 * S, 20 * S)
        want = Engine(storage, aggregation_pushdown=False).range(query, 0, 600 * S, 20 * S)
        assert compare(got, want) in ("same", "close"), query
    assert not storage.refused


def _one_copy_with_a_gap(storage) -> Labels:
    """Drop a sample from one copy of one temperature series (its shard missed a write); its labels."""
    lbls = next(s.labels for s in storage.shards[0].select([], 0, 10**9).series if s.labels.get("__name__") == "temperature")
    s = storage.shards[0]._series[lbls]
    storage.shards[0]._series[lbls] = s._replace(timestamps_ms=np.delete(s.timestamps_ms, 2),
                                                 values=np.delete(s.values, 2))
    return lbls


def test_copies_that_differ_take_the_exact_path_which_merges_them():
    storage = _data(7, 3, 2)
    _one_copy_with_a_gap(storage)
    for query in ("sum(temperature)", "avg by (job) (avg_over_time(temperature[1m]))", "temperature"):
        got = Engine(storage).range(query, 0, 600 * S, 20 * S)
        want = Engine(storage, aggregation_pushdown=False).range(query, 0, 600 * S, 20 * S)
        assert compare(got, want) == "same", query  # the exact path's answer itself
    assert set(storage.refused) == {"diverged"} and storage.refused["diverged"] >= 3
    # Outside the gap's reach the copies agree again: pushed down.
    storage.refused.clear()
    got = Engine(storage).instant("sum(temperature)", 600 * S)
    assert compare(got, Engine(storage, aggregation_pushdown=False).instant("sum(temperature)", 600 * S)) != "different"
    assert not storage.refused


def test_a_series_on_a_shard_that_does_not_own_it_takes_the_exact_path():
    storage = _data(8, 3, 2)
    lbls = Labels.from_dict({"__name__": "temperature", "job": "stray", "instance": "x"})
    owners = shards_for_series(np.array([lbls.series_id()], dtype=np.uint64), [0, 1, 2], 2)[0].tolist()
    stranger = ({0, 1, 2} - set(owners)).pop()
    storage.shards[stranger].add_series(lbls, np.array([0, 15 * S]), np.array([1.0, 2.0]))
    got = Engine(storage).instant("count(temperature)", 15 * S)
    assert compare(got, Engine(storage, aggregation_pushdown=False).instant("count(temperature)", 15 * S)) == "same"
    assert storage.refused == {"misplaced": 2}  # the aggregation, then its selector's rows


def test_a_placement_travels_on_the_wire_and_a_bad_one_is_refused():
    from shardmon.model.errors import BadQueryError
    from shardmon.model.pb import shard_pb2
    from shardmon.model.promql import pushdown_wire
    from shardmon.model.promql.pushdown import AggregateSpec

    spec = AggregateSpec((), 0, 0, np.array([0]), "sum", placement=Placement((3, 1, 2), 2, (3, 2)))
    req = shard_pb2.AggregateRequest.FromString(pushdown_wire.request_of(spec, []).SerializeToString())
    assert pushdown_wire.spec_of(req, []).placement == spec.placement
    for bad in (dict(replication_factor=0), dict(shard_ids=[1, 1]), dict(live=[9])):
        wrong = shard_pb2.AggregateRequest()
        wrong.CopyFrom(req)
        for name, value in bad.items():
            if isinstance(value, list):
                del getattr(wrong, name)[:]
                getattr(wrong, name).extend(value)
            else:
                setattr(wrong, name, value)
        with pytest.raises(BadQueryError, match="placement"):
            pushdown_wire.spec_of(wrong, [])
