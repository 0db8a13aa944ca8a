"""The aggregation push-down's logic without servers: series split over several in-memory "shards", each
answering partial aggregates with the shard's own code (``partial_aggregate``) through the wire form, the
engine merging them; every answer is compared with the same engine fetching the series (the exact path).
With replication (RF 2 of 3 shards) the series are placed as the scrapers place them, every copy written,
and the "fan-out" sends the placement and checks the copies' digests as FanoutQuerier.aggregate does."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.pb import shard_pb2
from shardmon.model.promql import pushdown_wire
from shardmon.model.promql.pushdown import AggregateSpec, merge_partials, partial_aggregate
from shardmon.model.promql.pushdown_replicas import Placement, disagreement
from shardmon.model.promql.value import EvalContext
from shardmon.model.samples import STALE_NAN
from shardmon.model.storage import ColumnsSet, QueryBudget, SeriesColumns
from shardmon.querier.fanout import merge_series
from shardmon.querier.promql import Engine
from tests.pushdown_compare import compare

S = 1000


class Sharded:
    """Memory storages as shards (ids 0, 1, ...): selects merge their answers; ``aggregate`` asks each for its
    partial through the wire form, as the fan-out does (with ``replication_factor`` > 1: the placement, with
    the shards not ``down`` counted on, and the copies' digests checked; ``refused`` counts the outcomes)."""

    def __init__(self, shards: list[MemoryStorage], replication_factor: int = 1) -> None:
        self.shards = shards
        self.replication_factor = replication_factor
        self.down: set[int] = set()
        self.asked = 0
        self.refused: dict[str, int] = {}

    def select_columns(self, matchers, start_ms, end_ms, *, budget=None, points_per_series=0):
        found = self.select(matchers, start_ms, end_ms)
        return ColumnsSet(SeriesColumns.of(found.series), [], False)

    def aggregate(self, spec: AggregateSpec, *, budget=None):
        self.asked += 1
        ids = tuple(range(len(self.shards)))
        live = tuple(i for i in ids if i not in self.down)
        if self.replication_factor > 1:
            spec = AggregateSpec(**{**spec.__dict__, "placement": Placement(ids, self.replication_factor, live)})
        out = {}
        for shard_id, shard in enumerate(self.shards):
            if shard_id in self.down:
                continue
            req = pushdown_wire.request_of(spec, [])
            got = pushdown_wire.spec_of(shard_pb2.AggregateRequest.FromString(req.SerializeToString()),
                                        spec.matchers)
            cols = SeriesColumns.of(shard.select(list(got.matchers), got.start_ms, got.end_ms).series)
            partial = partial_aggregate(got, cols.labels, cols.timestamps_ms, cols.values, cols.offsets,
                                        QueryBudget(), series_ids=np.array([x.series_id() for x in cols.labels],
                                                                           dtype=np.uint64), shard_id=shard_id)
            resp = shard_pb2.AggregateResponse.FromString(pushdown_wire.response_of(partial).SerializeToString())
            out[shard_id] = pushdown_wire.partial_of(resp, spec.n_steps)
        if spec.placement is not None:
            why = disagreement({i: (p.digests, p.misplaced) for i, p in out.items()}, live)
            if why is not None:
                self.refused[why] = self.refused.get(why, 0) + 1
                return None
        return list(out.values()), [], False

    def select(self, matchers, start_ms, end_ms, **kw):
        sets = [s.select(matchers, start_ms, end_ms, **kw) for i, s in enumerate(self.shards) if i not in self.down]
        return type(sets[0])(merge_series([x.series for x in sets]), [], False)


def _data(seed: int, n_shards: int, replication_factor: int = 1) -> Sharded:
    """Counters and gauges over 10 minutes every 15 s, with gaps, staleness markers, NaN, infinities, ties;
    each series on a shard drawn at random, or with replication on its owners as the scrapers place it."""
    rng = np.random.default_rng(seed)
    shards = [MemoryStorage() for _ in range(n_shards)]
    ts = np.arange(0, 600 * S + 1, 15 * S, dtype=np.int64)
    for i in range(40):
        for name in ("requests_total", "temperature"):
            lbls = Labels.from_dict({"__name__": name, "job": f"j{i % 3}", "instance": f"i{i}", "mode": f"m{i % 4}"})
            if name == "requests_total":
                vals = np.cumsum(rng.integers(0, 50, ts.shape[0])).astype(float)
                vals[rng.integers(5, ts.shape[0])] = 0.0  # a reset
            else:
                vals = np.round(rng.normal(20, 5, ts.shape[0]), 1)
                if i % 7 == 0:
                    vals[rng.integers(0, ts.shape[0], 3)] = [np.nan, np.inf, -np.inf]
            keep = rng.random(ts.shape[0]) > 0.1
            if i % 5 == 0:  # a series that goes stale in the middle
                vals[20] = STALE_NAN
                keep[20] = True
                keep[21:26] = False
            if replication_factor == 1:
                shards[int(rng.integers(0, n_shards))].add_series(lbls, ts[keep], vals[keep])
                continue
            ids = np.array([lbls.series_id()], dtype=np.uint64)
            for pos in shards_for_series(ids, list(range(n_shards)), replication_factor)[0].tolist():
                shards[pos].add_series(lbls, ts[keep], vals[keep])
    return Sharded(shards, replication_factor)


QUERIES = [
    "sum(temperature)", "sum by (job) (temperature)", "sum without (instance) (temperature)",
    "count by (mode) (requests_total)", "min by (job) (temperature)", "max(temperature)", "avg by (job) (temperature)",
    "group by (mode) (requests_total)", "sum by (mode) (rate(requests_total[1m]))",
    "sum(increase(requests_total[2m] offset 1m))", "avg by (job) (avg_over_time(temperature[1m]))",
    "max by (job) (max_over_time(temperature[1m]))", "min(min_over_time(temperature[30s]))",
    "count(count_over_time(temperature[1m]))", "sum by (job) (sum_over_time(temperature[1m]))",
    "sum(stddev_over_time(temperature[2m]))", "sum by (__name__) (last_over_time(temperature[1m]))",
    "count(present_over_time(temperature[1m]))", "sum(temperature @ 300)", "sum by (job) (rate(requests_total[1m] @ 400))",
    "topk(3, temperature)", "bottomk by (job) (2, temperature)", "topk(2, rate(requests_total[1m]))",
    'count_values("v", round(temperature))', 'count_values by (job) ("v", temperature)',
    'count_values without (instance) ("v", requests_total)', "sum(sum by (job) (rate(requests_total[1m])))",
    "sum by (job) (temperature) / count by (job) (temperature)", "max_over_time(sum(temperature)[2m:30s])",
    "sum(temperature offset 2m) - sum(temperature)",
    # Range functions outside an aggregation: their rows come from the shards.
    "avg_over_time(temperature[1m])", "rate(requests_total[1m]) * 8", "increase(requests_total[2m] offset 1m)",
    "last_over_time({__name__=~\"temp.*\"}[1m])", "stddev_over_time(temperature[2m] @ 300)",
    "count_over_time(temperature[1m]) > 3", "max_over_time(temperature[1m]) - min_over_time(temperature[1m])",
    "abs(sum_over_time(temperature[1m]))", "present_over_time(temperature[30s])",
    # Instant selectors: their rows (the samples picked at each step) come from the shards.
    "temperature", "requests_total offset 1m", "temperature @ 300", "-temperature", "temperature > 20",
    '{job="j1"}', "timestamp(temperature)", "absent(nothing)", "temperature unless requests_total",
]


@pytest.mark.parametrize("rf", [1, 2])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("query", QUERIES)
def test_pushed_down_answers_equal_the_exact_path(query, seed, rf):
    storage = _data(seed, 3, rf)
    pushed = Engine(storage)
    exact = Engine(storage, aggregation_pushdown=False)
    for run in (lambda e: e.instant(query, 450 * S), lambda e: e.range(query, 0, 600 * S, 20 * S)):
        got, want = run(pushed), run(exact)
        assert compare(got, want) in ("same", "close"), (query, compare(got, want))
    assert storage.asked > 0 or query == "timestamp(temperature)"  # timestamp() needs the samples' times
    assert not storage.refused  # equal copies: every push-down answered


def test_a_group_on_one_shard_is_summed_bit_for_bit_and_across_shards_within_float_rounding():
    """Across shards the additions come in another order: the sums differ by at most the rounding of
    n additions, n * 2**-52 times the sum of the magnitudes (more than the result's last bits where
    values cancel out: here 1e16 and -1e16)."""
    a, b = MemoryStorage(), MemoryStorage()
    ts = np.array([0], dtype=np.int64)
    values = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16]
    for i, v in enumerate(values):
        (a if i % 2 else b).add_series(Labels.from_dict({"__name__": "x", "i": str(i), "g": "split"}), ts, np.array([v]))
        a.add_series(Labels.from_dict({"__name__": "x", "i": str(i), "g": "one"}), ts, np.array([v]))
    storage = Sharded([a, b])
    got = {dict(s.labels)["g"]: float(s.values[0]) for s in Engine(storage).instant("sum by (g) (x)", 0).series}
    want = {dict(s.labels)["g"]: float(s.values[0])
            for s in Engine(storage, aggregation_pushdown=False).instant("sum by (g) (x)", 0).series}
    assert got["one"] == want["one"]  # one shard: Prometheus's order exactly
    assert abs(got["split"] - want["split"]) <= len(values) * 2.0**-52 * sum(abs(v) for v in values)
    assert storage.asked == 1


def test_topk_ties_on_every_shard_are_ranked_from_all_rows_in_one_round():
    a, b = MemoryStorage(), MemoryStorage()
    ts = np.array([0], dtype=np.int64)
    for i in range(6):
        (a if i % 2 else b).add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), ts, np.array([5.0]))
    storage = Sharded([a, b])
    spec = AggregateSpec((), 0, 0, np.array([0]), "topk", param=np.array([2.0]))
    ctx = EvalContext(storage, np.array([0]), 300_000)
    partials, _, _ = storage.aggregate(spec)
    assert all(p.ties and len(p.keys) == 3 for p in partials)  # every row, not only the candidates
    assert merge_partials(spec, ctx, partials) is not None
    storage.asked = 0
    got = Engine(storage).instant("topk(2, x)", 0)
    assert storage.asked == 1
    want = Engine(storage, aggregation_pushdown=False).instant("topk(2, x)", 0)
    assert compare(got, want) == "same"


def test_topk_ties_on_one_shard_only_take_the_exact_path():
    a, b = MemoryStorage(), MemoryStorage()
    ts = np.array([0], dtype=np.int64)
    for i, v in enumerate([5.0, 5.0, 5.0, 1.0, 2.0]):
        (a if i < 3 else b).add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), ts, np.array([v]))
    storage = Sharded([a, b])
    spec = AggregateSpec((), 0, 0, np.array([0]), "topk", param=np.array([2.0]))
    ctx = EvalContext(storage, np.array([0]), 300_000)
    partials, _, _ = storage.aggregate(spec)
    assert partials[0].ties and not partials[1].ties and merge_partials(spec, ctx, partials) is None
    got = Engine(storage).instant("topk(2, x)", 0)
    want = Engine(storage, aggregation_pushdown=False).instant("topk(2, x)", 0)
    assert compare(got, want) == "same"


def test_without_the_flag_nothing_is_pushed_down():
    storage = _data(1, 2)
    Engine(storage, aggregation_pushdown=False).instant("sum(temperature)", 300 * S)
    assert storage.asked == 0
    Engine(storage).instant("sum(temperature)", 300 * S)
    assert storage.asked == 1


def test_rows_of_several_shards_come_in_label_order_and_one_series_on_two_shards_is_refused():
    from shardmon.model.promql.pushdown import Partial, all_rows

    def part(names):
        keys = [Labels.from_dict({"__name__": "x", "i": n}).canonical() for n in names]
        return Partial(keys, np.arange(len(keys), dtype=float)[:, None], np.ones((len(keys), 1), bool), [])

    rows = all_rows([part(["a", "c", "e"]), part(["b", "d"]), part([])], 1, Labels.from_canonical)
    assert [lbls.get("i") for lbls in rows.labels] == ["a", "b", "c", "d", "e"]
    assert rows.values[:, 0].tolist() == [0, 0, 1, 1, 2]
    assert all_rows([part(["a", "c"]), part(["c"])], 1, Labels.from_canonical) is None
    # Label sets that are prefixes of others, and values holding NUL, sort as Labels do.
    odd = [Labels.from_dict({"__name__": "x"}), Labels.from_dict({"__name__": "x", "a": "1"}),
           Labels.from_dict({"__name__": "x", "a": "\x00"}), Labels.from_dict({"__name__": "x", "a": "\x01"})]
    for split in ([0, 2], [1, 3]), ([3], [0, 1]):
        parts = [Partial([odd[i].canonical() for i in sorted(ix, key=odd.__getitem__)], np.zeros((len(ix), 1)),
                         np.ones((len(ix), 1), bool), []) for ix in split]
        got = all_rows(parts, 1, Labels.from_canonical).labels
        assert got == sorted(got)


def test_rows_too_large_for_one_answer_take_the_exact_path(monkeypatch):
    from shardmon.model.promql import pushdown

    storage = _data(4, 2)
    want = Engine(storage, aggregation_pushdown=False).range("rate(requests_total[1m])", 0, 600 * S, 20 * S)
    monkeypatch.setattr(pushdown, "ROWS_MAX_BYTES", 100)
    got = Engine(storage).range("rate(requests_total[1m])", 0, 600 * S, 20 * S)
    assert storage.asked == 1 and compare(got, want) == "same"
