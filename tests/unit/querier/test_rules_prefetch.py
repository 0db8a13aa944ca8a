"""A group's selectors read once per evaluation (querier/rules/prefetch.py): the rules' output is the same
as when each rule reads on its own, a rule still sees what an earlier rule of its group wrote, and the
fan-out answers several selects in one round."""

from __future__ import annotations

import numpy as np

from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import Series, SeriesColumns
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promql import Engine
from shardmon.querier.rules import AlertingRule, Group, RecordingRule, engine_query_func
from shardmon.querier.rules.prefetch import group_selects

S = 1000
M = 60 * S

RULES = [
    ("rec", "job:rate", 'sum by (job) (rate(http_total[2m]))'),
    ("rec", "job:rate_offset", 'sum by (job) (rate(http_total[1m] offset 1m))'),
    ("rec", "ratio", 'sum(rate(http_total{code="500"}[1m])) / sum(rate(http_total[1m]))'),
    ("rec", "from_earlier", "job:rate * 2"),  # an earlier rule's output, written in this evaluation
    ("rec", "pinned", "http_total @ 600"),
    ("rec", "sub", "max_over_time(rate(http_total[1m])[3m:30s])"),
    ("rec", "gauge_last", "temp"),
    ("alert", "Hot", "temp > 20"),
    ("rec", "alerts_now", "count(ALERTS)"),  # the alerting rule's output, written in this evaluation
]


def _storage() -> MemoryStorage:
    storage = MemoryStorage()
    ts = np.arange(0, 20 * M, 15 * S)
    for i, (job, code) in enumerate([("a", "200"), ("a", "500"), ("b", "200"), ("b", "500")]):
        storage.add_series(Labels.from_dict({"__name__": "http_total", "job": job, "code": code}), ts,
                           np.cumsum(np.full(ts.shape[0], 1.0 + i)))
    for i in range(3):
        storage.add_series(Labels.from_dict({"__name__": "temp", "i": str(i)}), ts[: 40 + 20 * i],
                           19.0 + i + np.sin(ts[: 40 + 20 * i] / M))
    return storage


class _Counting:
    """A Querier that counts the selects it is asked for."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner, self.selects = inner, 0

    def select(self, *args, **kwargs):
        self.selects += 1
        return self.inner.select(*args, **kwargs)


def _group(storage: MemoryStorage, querier, prefetch: bool) -> Group:
    rules = [RecordingRule(name, expr, Labels()) if kind == "rec" else AlertingRule(name, expr, restored=True)
             for kind, name, expr in RULES]
    return Group("g", "f", 30 * S, rules, query=engine_query_func(Engine(querier), prefetch=prefetch),
                 appender=storage)


def _everything(storage: MemoryStorage) -> list[tuple[str, list, list]]:
    found = storage.select([Matcher(MatchType.RE, "__name__", ".+")], 0, 100 * M).series
    return [(str(s.labels), s.timestamps_ms.tolist(), [repr(v) for v in s.values.tolist()]) for s in found]


def test_prefetched_evaluation_writes_exactly_what_rule_by_rule_evaluation_writes():
    plain, fetched = _storage(), _storage()
    plain_q, fetched_q = _Counting(plain), _Counting(fetched)
    g_plain, g_fetched = _group(plain, plain_q, False), _group(fetched, fetched_q, True)
    for t in range(5 * M, 15 * M, 30 * S):
        g_plain.eval(t)
        g_fetched.eval(t)
    assert [r.health for r in g_fetched.rules] == ["ok"] * len(RULES)
    assert _everything(fetched) == _everything(plain)
    # The earlier rules' output was seen: the rule over job:rate and the count of ALERTS wrote samples.
    names = {s[0].split("{")[0] for s in _everything(fetched)}
    assert {"from_earlier", "alerts_now"} <= names
    # Fewer reads: the plain selectors of the group were read once per evaluation.
    assert fetched_q.selects < plain_q.selects


def test_group_selects_merge_windows_and_leave_out_the_groups_own_outputs():
    engine = Engine(MemoryStorage(), lookback_delta_ms=5 * M)
    exprs = [engine.parse(e) for e in ("rate(x[1m])", "x", "rate(x[2m] offset 1m)", "out + x", "y @ 5",
                                       "{__name__=~'z.*'}", "max_over_time(w[5m:1m])")]
    selects = group_selects(exprs, engine.lookback_delta_ms, 10 * M, {"out"})
    assert selects == {(Matcher(MatchType.EQ, "__name__", "x"),): (5 * M, 10 * M)}


def _client(shard_id: int, answers: dict[str, list[Series]]):
    class Stream:
        def __init__(self, parts):
            self.parts = parts

        def __iter__(self):
            return iter(self.parts)

        def batches(self):  # each part as the frame a shard would send
            for part in self.parts:
                keys = [s.labels.canonical() for s in part]
                yield SampleBatch.of([Labels.from_canonical(k).series_id() for k in keys], keys,
                                     np.repeat(np.arange(len(part)), [s.timestamps_ms.shape[0] for s in part]),
                                     np.concatenate([s.timestamps_ms for s in part] or [np.zeros(0, np.int64)]),
                                     np.concatenate([s.values for s in part] or [np.zeros(0)]))

        def cancel(self):
            pass

    class Client:
        address = f"fake:{shard_id}"

        def __init__(self):
            self.shard_id = shard_id
            self.calls = 0

        def series_stream(self, matchers, start_ms, end_ms, **kwargs):
            self.calls += 1
            return Stream([answers.get(matchers[0].value, [])])

        def close(self):
            pass

    return Client()


def _s(name: str, i: str, t: int) -> Series:
    return Series(Labels.from_dict({"__name__": name, "i": i}), np.array([t], np.int64), np.array([float(t)]))


def test_select_many_columns_answers_each_select_merged_over_the_shards_in_one_round():
    a = _client(0, {"x": [_s("x", "1", 1)], "y": [_s("y", "2", 2)]})
    b = _client(1, {"x": [_s("x", "0", 3)]})
    fanout = FanoutQuerier([a, b])
    try:
        x, y, z = fanout.select_many_columns([([Matcher(MatchType.EQ, "__name__", n)], 0, 10) for n in "xyz"])
    finally:
        fanout.close()
    assert [str(lbls) for lbls in x.columns.labels] == ['x{i="0"}', 'x{i="1"}']
    assert x.columns.timestamps_ms.tolist() == [3, 1] and x.columns.offsets.tolist() == [0, 1, 2]
    assert [str(lbls) for lbls in y.columns.labels] == ['y{i="2"}'] and z.columns.labels == []
    assert not x.partial and a.calls == b.calls == 3


def test_select_many_columns_sorts_the_shards_series_by_labels_and_merges_replicas():
    def ser(lbls: dict, ts: list[int]) -> Series:
        return Series(Labels.from_dict(lbls), np.array(ts, np.int64), np.array(ts, float) / 10)

    # Label sets whose order a byte comparison of their canonical keys would get wrong ("1" < "10",
    # "a" < "ab"), spread over three shards, each answer sorted by labels as a shard's is.
    every = [ser({"__name__": "x", "i": i, **extra}, [int(i) * 10 + 1, int(i) * 10 + 2])
             for i, extra in (("1", {}), ("10", {}), ("2", {"a": "v"}), ("2", {"ab": "v"}), ("3", {"a": "v", "b": "w"}))]
    shards = [sorted(part, key=lambda s: s.labels) for part in (every[0::3], every[1::3], every[2::3])]

    def fetch(answers: list[list[Series]]):
        clients = [_client(i, {"x": part}) for i, part in enumerate(answers)]
        fanout = FanoutQuerier(clients)
        try:  # Against select, which merges Series objects one by one (the exact path).
            (cols,), found = (fanout.select_many_columns([([Matcher(MatchType.EQ, "__name__", "x")], 0, 10**6)]),
                              fanout.select([Matcher(MatchType.EQ, "__name__", "x")], 0, 10**6))
        finally:
            fanout.close()
        want = SeriesColumns.of(found.series)
        got = cols.columns
        assert got.labels == want.labels == sorted(want.labels)
        assert got.offsets.tolist() == want.offsets.tolist()
        assert got.timestamps_ms.tolist() == want.timestamps_ms.tolist() and got.values.tolist() == want.values.tolist()
        return got

    assert len(fetch([shards[0]]).labels) == 2  # one shard: its answer as it is
    assert fetch(shards).labels == sorted(s.labels for s in every)
    # A replica on another shard with one more sample: merged into one series, by timestamp.
    replica = [ser({"__name__": "x", "i": "1"}, [11, 12, 13])]
    got = fetch([shards[0], shards[1], replica])
    one = got.labels.index(replica[0].labels)
    assert len(got.labels) == 4 and got.timestamps_ms[got.offsets[one]:got.offsets[one + 1]].tolist() == [11, 12, 13]
    # A label value holding a NUL takes the exact path too.
    nul = [ser({"__name__": "x", "i": "1\x00"}, [5])]
    assert Labels.from_dict({"__name__": "x", "i": "1\x00"}) in fetch([shards[0], nul, shards[2]]).labels


def _rec(name: str, expr: str) -> RecordingRule:
    return RecordingRule(name, expr, Labels())


def test_only_output_a_later_rule_may_read_is_waited_for():
    def flags(*rules):
        return Group("g", "f", M, list(rules), query=lambda e, t: [], appender=MemoryStorage()).read_later()

    assert flags(_rec("a", "x"), _rec("b", "a * 2"), _rec("c", "y"), _rec("d", "x")) == [True, False, False, False]
    assert flags(_rec("a", "x"), _rec("b", "rate(y[1m])"), _rec("c", '{__name__=~"a|b"}')) == [True, True, False]
    assert flags(_rec("a", "x"), _rec("b", "max_over_time(a[5m:1m])")) == [True, False]
    alert = AlertingRule("A", "x > 1", annotations={"n": '{{ with query "a" }}{{ . }}{{ end }}'}, restored=True)
    assert flags(_rec("a", "x"), alert) == [True, False]
    assert flags(AlertingRule("A", "x > 1", restored=True), _rec("n", "count(ALERTS)")) == [True, False]


class _Writes(MemoryStorage):
    """A MemoryStorage that can start a write without waiting (as the ruler's LoopAppender), logging how."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self._started = []

    def append(self, batch) -> None:
        self.log.append("wait")
        super().append(batch)

    def append_nowait(self, batch) -> None:
        self.log.append("start")
        self._started.append(batch)

    def wait_written(self) -> None:
        self.log.append("end")
        for batch in self._started:
            super().append(batch)
        self._started = []


def test_a_group_starts_the_writes_no_later_rule_reads_and_waits_for_them_at_the_end():
    storage = _Writes()
    storage.add_series(Labels.from_dict({"__name__": "x", "i": "1"}), np.array([0]), np.array([1.0]))
    g = Group("g", "f", M, [_rec("a", "x"), _rec("b", "a * 2"), _rec("c", "x + 1")],
              query=engine_query_func(Engine(storage)), appender=storage)
    g.eval(0)
    assert storage.log == ["wait", "start", "start", "end"]
    assert [r.health for r in g.rules] == ["ok"] * 3
    assert [str(s[0]) for s in _everything(storage)] == ['a{i="1"}', 'b{i="1"}', 'c{i="1"}', 'x{i="1"}']


def test_a_prefetched_select_is_cut_to_any_narrower_window_as_the_store_answers_it():
    from shardmon.querier.rules.prefetch import PrefetchQuerier

    rng = np.random.default_rng(7)
    storage = MemoryStorage()
    for i in range(30):
        ts = np.sort(rng.choice(np.arange(0, 1000), size=int(rng.integers(1, 40)), replace=False))
        storage.add_series(Labels.from_dict({"__name__": "x", "i": str(i)}), ts, rng.normal(size=ts.shape[0]))
    x = (Matcher(MatchType.EQ, "__name__", "x"),)
    prefetched = PrefetchQuerier.fetch(storage, {x: (100, 900)}, None)
    for _ in range(200):
        start = int(rng.integers(100, 900))
        end = int(rng.integers(start, 901))
        got = prefetched.select(list(x), start, end).series
        want = storage.select(list(x), start, end).series
        assert [(str(s.labels), s.timestamps_ms.tolist(), s.values.tolist()) for s in got] == \
               [(str(s.labels), s.timestamps_ms.tolist(), s.values.tolist()) for s in want]
        # The same answer laid end to end, as the engine takes it.
        cols = prefetched.select_columns(list(x), start, end).columns
        assert cols.labels == [s.labels for s in want]
        assert cols.offsets.tolist() == [0, *np.cumsum([s.timestamps_ms.shape[0] for s in want]).tolist()]
        assert cols.timestamps_ms.tolist() == [t for s in want for t in s.timestamps_ms.tolist()]
        assert cols.values.tolist() == [v for s in want for v in s.values.tolist()]
    assert prefetched.hits == 400 and prefetched.misses == 0
    prefetched.select(list(x), 50, 900)  # wider than fetched: asked of the store
    assert prefetched.misses == 1
    cols = prefetched.select_columns(list(x), 50, 900).columns
    assert prefetched.misses == 2 and cols.labels == [s.labels for s in storage.select(list(x), 50, 900).series]
