"""Prometheus 2.53's rule query offset (``global.rule_query_offset``, a group's ``query_offset``): the
evaluation at slot T queries at T - offset and writes its output (recorded samples, ALERTS,
ALERTS_FOR_STATE, staleness markers) at T - offset; the alert's state machine, its activeAt and what is
sent keep T; the slot itself does not move; a group's own offset (even 0) wins over the global one."""

from __future__ import annotations

import numpy as np
import pytest

from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError, RuleFileError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.rule_config import parse_rule_text
from shardmon.model.samples import is_stale
from shardmon.querier.promql import Engine
from shardmon.querier.rules import AlertingRule, AlertState, Group, RecordingRule, engine_query_func, load_groups

S = 1000
OFFSET = 2 * S


class Recorder:
    """A query function that records the times it is asked at, answering {instance="a"} = value(t)."""

    def __init__(self, value) -> None:
        self.asked: list[tuple[str, int]] = []
        self.value = value

    def __call__(self, expr: str, ts: int):
        self.asked.append((expr, ts))
        v = self.value(ts)
        return [] if v is None else [(Labels.from_dict({"instance": "a"}), v)]


def _series(storage: MemoryStorage, name: str):
    found = storage.select([Matcher(MatchType.EQ, "__name__", name)], 0, 10**12).series
    return {tuple(s.labels.to_dict().items()): list(zip(s.timestamps_ms.tolist(), s.values.tolist())) for s in found}


def test_recording_rule_queries_and_writes_at_the_slot_less_the_offset():
    storage = MemoryStorage()
    q = Recorder(lambda t: t / 1000)
    g = Group("g", "f", S, [RecordingRule("r", "x", Labels())], query=q, appender=storage, query_offset_ms=OFFSET)
    g.eval(100 * S)
    g.eval(101 * S)
    assert q.asked == [("x", 98 * S), ("x", 99 * S)]
    (points,) = _series(storage, "r").values()
    assert points == [(98 * S, 98.0), (99 * S, 99.0)]


def test_staleness_markers_are_written_at_the_slot_less_the_offset():
    storage = MemoryStorage()
    q = Recorder(lambda t: 1.0 if t < 99 * S else None)
    g = Group("g", "f", S, [RecordingRule("r", "x", Labels())], query=q, appender=storage, query_offset_ms=OFFSET)
    g.eval(100 * S)  # queries 98 s: a sample
    g.eval(101 * S)  # queries 99 s: gone, stale marker at 99 s
    g.eval(102 * S)
    (s,) = storage.select([Matcher(MatchType.EQ, "__name__", "r")], 0, 10**9).series
    assert s.timestamps_ms.tolist() == [98 * S, 99 * S]
    assert is_stale(s.values).tolist() == [False, True]
    g2 = Group("g", "f", S, [RecordingRule("r2", "x", Labels())], query=Recorder(lambda t: 2.0), appender=storage,
               query_offset_ms=OFFSET)
    g2.eval(200 * S)
    g2.mark_all_stale(201 * S)  # a removed group: markers at its time less the offset too
    (s2,) = storage.select([Matcher(MatchType.EQ, "__name__", "r2")], 0, 10**9).series
    assert s2.timestamps_ms.tolist() == [198 * S, 199 * S] and is_stale(s2.values).tolist() == [False, True]


def test_alerts_keep_the_slot_time_and_alerts_series_are_written_at_the_offset():
    storage = MemoryStorage()
    # The condition holds from 98 s on (seen by the evaluation at 100 s, which queries 98 s).
    q = Recorder(lambda t: 5.0 if t >= 98 * S else None)
    rule = AlertingRule("High", "x > 1", for_ms=2 * S, restored=True, annotations={"at": "{{ $value }}"})
    g = Group("g", "f", S, [rule], query=q, appender=storage, query_offset_ms=OFFSET)
    g.eval(99 * S)
    assert rule.alerts() == []
    g.eval(100 * S)
    (a,) = rule.alerts()
    assert (a.state, a.active_at_ms, a.annotations.to_dict()) == (AlertState.PENDING, 100 * S, {"at": "5"})
    g.eval(101 * S)
    assert rule.alerts()[0].state == AlertState.PENDING
    g.eval(102 * S)  # for: 2s measured on slot times: 102 - 100
    (a,) = rule.alerts()
    assert (a.state, a.fired_at_ms) == (AlertState.FIRING, 102 * S)
    alerts = _series(storage, "ALERTS")
    pending = alerts[(("__name__", "ALERTS"), ("alertname", "High"), ("alertstate", "pending"), ("instance", "a"))]
    assert pending[:2] == [(98 * S, 1.0), (99 * S, 1.0)]
    assert pending[2][0] == 100 * S and is_stale(np.array([pending[2][1]]))[0]  # gone when it fired
    assert alerts[(("__name__", "ALERTS"), ("alertname", "High"), ("alertstate", "firing"), ("instance", "a"))] == \
        [(100 * S, 1.0)]
    # ALERTS_FOR_STATE's value is activeAt in seconds: the slot's time, not the query's.
    (for_state,) = _series(storage, "ALERTS_FOR_STATE").values()
    assert for_state == [(98 * S, 100.0), (99 * S, 100.0), (100 * S, 100.0)]
    assert [t for _, t in q.asked] == [97 * S, 98 * S, 99 * S, 100 * S]


def test_a_template_query_runs_at_the_slot_time_as_in_prometheus():
    storage = MemoryStorage()
    storage.add_series(Labels.from_dict({"__name__": "x"}), np.arange(0, 200 * S, S), np.arange(0, 200, dtype=float))
    query = engine_query_func(Engine(storage))
    asked = []

    def recording(expr, ts):
        asked.append((expr, ts))
        return query(expr, ts)

    rule = AlertingRule("A", "x > 0", restored=True,
                        annotations={"q": '{{ with query "x" }}{{ . | first | value }}{{ end }}'})
    g = Group("g", "f", S, [rule], query=recording, appender=MemoryStorage(), query_offset_ms=OFFSET)
    g.eval(150 * S)
    (a,) = rule.alerts()
    assert a.value == 148.0 and a.annotations.to_dict() == {"q": "150"}
    assert asked == [("x > 0", 148 * S), ("x", 150 * S)]


def test_the_slots_do_not_move_with_the_offset():
    plain = Group("g", "rules.yml", 10 * S, [], query=Recorder(lambda t: None), appender=MemoryStorage())
    offset = Group("g", "rules.yml", 10 * S, [], query=Recorder(lambda t: None), appender=MemoryStorage(),
                   query_offset_ms=3 * S)
    now = 1_700_000_000_123
    assert plain.first_evaluation(now) == offset.first_evaluation(now)
    assert plain.next_evaluation(now, now + 25 * S) == offset.next_evaluation(now, now + 25 * S)


def test_a_groups_query_offset_overrides_the_global_one(tmp_path):
    f = tmp_path / "rules.yml"
    f.write_text("groups:\n"
                 "  - {name: own, query_offset: 5s, rules: [{record: a, expr: '1'}]}\n"
                 "  - {name: zero, query_offset: 0s, rules: [{record: b, expr: '1'}]}\n"
                 "  - {name: global, rules: [{record: c, expr: '1'}]}\n")
    groups = load_groups([str(f)], S, query_offset_ms=OFFSET, query=Recorder(lambda t: None),
                         appender=MemoryStorage())
    assert {g.name: g.query_offset_ms for g in groups.values()} == {"own": 5 * S, "zero": 0, "global": OFFSET}
    spec = parse_rule_text(f.read_text(), "rules.yml")
    assert [g.query_offset_ms for g in spec.groups] == [5 * S, 0, None]


def test_a_bad_query_offset_is_refused_naming_it():
    with pytest.raises(RuleFileError) as exc:
        parse_rule_text("groups: [{name: g, query_offset: soon, rules: []}]\n", "rules.yml")
    assert exc.value.errors == ['rules.yml: not a valid duration string: "soon"']
    assert parse_config("global: {rule_query_offset: 30s}").global_.rule_query_offset == 30 * S
    assert parse_config("").global_.rule_query_offset == 0
    with pytest.raises(ConfigError, match="global.rule_query_offset"):
        parse_config("global: {rule_query_offset: 5x}")
