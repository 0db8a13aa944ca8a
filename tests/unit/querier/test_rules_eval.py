"""The rule evaluation's pure logic: the alert state machine, the hashed evaluation offset, missed
iterations, staleness of a removed group, and ``for`` state restored from ALERTS_FOR_STATE."""

from __future__ import annotations

import numpy as np

from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from shardmon.querier.promql import Engine
from shardmon.querier.rules import (
    AlertingRule,
    AlertState,
    Group,
    RecordingRule,
    engine_query_func,
    eval_timestamp_ns,
    group_hash,
)

M = 60_000


def series(values: dict[int, float]):
    """A query function answering one series {instance="a"} with the value at each time, absent otherwise."""
    return lambda expr, ts: [(Labels.from_dict({"instance": "a"}), values[ts])] if ts in values else []


def test_pending_firing_inactive_with_for_and_keep_firing_for():
    rule = AlertingRule("A", "x", for_ms=2 * M, keep_firing_for_ms=2 * M, restored=True)
    q = series({0: 1, M: 1, 2 * M: 1})
    states = []
    for t in range(0, 8 * M, M):
        rule.eval(t, q)
        states.append([str(a.state) for a in rule.alerts()])
    assert states == [["pending"], ["pending"], ["firing"], ["firing"], ["firing"], ["inactive"], ["inactive"],
                      ["inactive"]]
    (alert,) = rule.alerts()
    assert (alert.active_at_ms, alert.fired_at_ms, alert.resolved_at_ms) == (0, 2 * M, 5 * M)
    rule.eval(5 * M + 15 * M + 1, q)  # kept 15 minutes after resolving, then forgotten
    assert rule.alerts() == []


def test_a_pending_alert_that_goes_missing_is_dropped_and_alerts_series_are_written():
    rule = AlertingRule("A", "x", for_ms=5 * M, labels={"severity": "page"}, restored=True)
    out = rule.eval(0, series({0: 3}))
    assert sorted((str(lbls), v) for lbls, v in out) == [
        ('ALERTS_FOR_STATE{alertname="A", instance="a", severity="page"}', 0.0),
        ('ALERTS{alertname="A", alertstate="pending", instance="a", severity="page"}', 1.0)]
    assert rule.eval(M, series({})) == [] and rule.alerts() == [] and rule.state == AlertState.INACTIVE


def test_limit_fails_the_rule_and_forgets_its_alerts():
    rule = AlertingRule("A", "x", restored=True)
    two = lambda expr, ts: [(Labels.from_dict({"i": "1"}), 1.0), (Labels.from_dict({"i": "2"}), 1.0)]  # noqa: E731
    try:
        rule.eval(0, two, limit=1)
        raise AssertionError("no error")
    except Exception as exc:  # noqa: BLE001
        assert str(exc) == "exceeded limit of 1 with 2 alerts"
    assert rule.alerts() == []


def test_resolved_alerts_are_sent_again_and_firing_ones_after_the_resend_delay():
    rule = AlertingRule("A", "x", restored=True)
    rule.eval(0, series({0: 1}))
    assert [a.valid_until_ms for a in rule.alerts_to_send(0, M, M)] == [4 * M]
    rule.eval(30_000, series({30_000: 1}))
    assert rule.alerts_to_send(30_000, M, M) == []
    rule.eval(M + 1, series({}))
    (resolved,) = rule.alerts_to_send(M + 1, M, M)
    assert resolved.resolved_at_ms == M + 1


def test_eval_offset_is_prometheus_hash_of_file_and_name():
    # xxhash64 of "file\xff<file>\xffname\xff<name>\xff", as labels.Labels.Hash in Go.
    h = group_hash("rules.yml", "g")
    interval = M
    offset_ns = h % (interval * 1_000_000)
    now_ns = 1_700_000_000_123_456_789
    slot = eval_timestamp_ns("rules.yml", "g", interval, now_ns)
    assert slot <= now_ns < slot + interval * 1_000_000
    assert (slot - offset_ns) % (interval * 1_000_000) == 0
    assert eval_timestamp_ns("rules.yml", "g", interval, slot) == slot


def test_missed_iterations_are_skipped_and_counted():
    g = Group("g", "f", M, [], query=series({}), appender=MemoryStorage())
    assert g.next_evaluation(0, M + 5) == M
    assert g.next_evaluation(0, 3 * M + 5) == 3 * M  # two slots missed


def test_a_removed_group_marks_all_its_series_stale():
    storage = MemoryStorage()
    g = Group("g", "f", M, [RecordingRule("r", "x", Labels())], query=series({0: 2}), appender=storage)
    g.eval(0)
    g.mark_all_stale(M)
    (s,) = _all(storage)
    assert s.labels == Labels.from_dict({"__name__": "r", "instance": "a"})
    assert s.timestamps_ms.tolist() == [0, M] and is_stale(s.values).tolist() == [False, True]


def _all(storage: MemoryStorage):
    from shardmon.model.labels import Matcher, MatchType

    return storage.select([Matcher(MatchType.RE, "__name__", ".+")], 0, 10 * M).series


def test_for_state_is_restored_from_alerts_for_state():
    """A group restarted (or moved) after its alert had been pending 1m of its 15m keeps its activeAt."""
    storage = MemoryStorage()
    engine = Engine(storage)
    start = 100 * M
    storage.add_series(Labels.from_dict({"__name__": "up", "instance": "a"}),
                       np.arange(start - 10 * M, start + 10 * M, M), np.zeros(20))
    rule_args = dict(for_ms=15 * M)
    first = Group("g", "f", M, [AlertingRule("Down", "up == 0", restored=True, **rule_args)],
                  query=engine_query_func(engine), appender=storage, querier=storage)
    first.eval(start - 2 * M)
    first.eval(start - M)  # pending since start - 2m, then the process stops
    again = Group("g", "f", M, [AlertingRule("Down", "up == 0", restored=False, **rule_args)],
                  query=engine_query_func(engine), appender=storage, querier=storage, should_restore=True)
    again.run_once(start)
    assert _all_alerts_series(storage, start) == []  # nothing written before the restore
    again.run_once(start + M)
    (alert,) = again.rules[0].alerts()
    # Pending 1m when it went down at start - 1m; the outage (2m) is added to activeAt.
    assert alert.active_at_ms == start - 2 * M + 2 * M
    assert again.rules[0].restored


def _all_alerts_series(storage, t):
    return [s for s in _all(storage) if s.labels.name == "ALERTS" and t in s.timestamps_ms.tolist()]


def test_rules_of_a_group_see_earlier_rules_output_and_duplicates_are_an_error():
    storage = MemoryStorage()
    engine = Engine(storage)
    storage.add_series(Labels.from_dict({"__name__": "x", "i": "1"}), np.array([0]), np.array([1.0]))
    storage.add_series(Labels.from_dict({"__name__": "x", "i": "2"}), np.array([0]), np.array([2.0]))
    g = Group("g", "f", M, [RecordingRule("r", "x", Labels()), RecordingRule("s", "sum(r)", Labels()),
                            RecordingRule("d", "x", Labels.from_dict({"i": "same"}))],
              query=engine_query_func(engine), appender=storage)
    g.eval(0)
    assert engine_query_func(engine)("s", 0)[0][1] == 3.0
    assert g.rules[2].health == "err" and "same labelset after applying rule labels" in g.rules[2].last_error
    assert g.health == "err"
