"""What applying a new assignment or rule files does to a ruler's groups: moved away silently, removed with
staleness markers, kept with their state, new ones restoring ``for`` state (in memory, no Ray)."""

from __future__ import annotations

import asyncio

import numpy as np

from shardmon.model.config import Config
from shardmon.model.labels import Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from shardmon.querier.promql import Engine
from shardmon.querier.rules import AlertingRule, engine_query_func
from shardmon.rules.runner import GroupRunner

RULES = """
groups:
  - name: a
    interval: 1h
    rules:
      - record: a_out
        expr: vector(1)
  - name: b
    interval: 1h
    rules:
      - record: b_out
        expr: vector(2)
      - alert: B
        expr: vector(1)
        for: 1m
"""


def _rule_file(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text(RULES)
    return path, Config.model_validate({"rule_files": [str(path)]})


def _runner(storage: MemoryStorage) -> GroupRunner:
    return GroupRunner(query=engine_query_func(Engine(storage)), appender=storage, querier=storage, notifier=None)


def _series(storage: MemoryStorage, name: str):
    return storage.select([Matcher(MatchType.EQ, "__name__", name)], 0, 10**13).series


def test_moved_groups_stop_silently_removed_ones_go_stale_kept_ones_keep_state(tmp_path):
    path, config = _rule_file(tmp_path)

    async def main():
        storage = MemoryStorage()
        runner = _runner(storage)
        groups = runner.load(config, config.rule_file_paths())
        keys = sorted(groups)
        counts = await runner.apply(groups, set(keys))
        assert counts == {"start": 2, "reload": 0, "moved": 0, "removed": 0}
        new = [g for g in runner.groups()]
        assert all(g.should_restore for g in new)
        for g in new:
            g.run_once(1_000_000)
        # b moves to another ruler: it stops, writes nothing.
        counts = await runner.apply(runner.load(config, config.rule_file_paths()), {keys[0]})
        assert counts == {"start": 0, "reload": 1, "moved": 1, "removed": 0}
        assert [float(v) for v in _series(storage, "b_out")[0].values] == [2.0]
        # a is kept across that reload with its state: no restore, its series remembered.
        (a,) = runner.groups()
        assert a.evaluations == 1 and a.series_in_previous_eval[0]
        # a removed from the files: staleness markers.
        path.write_text(RULES.replace("  - name: a\n", "  - name: gone\n", 1).replace("a_out", "c_out"))
        groups = runner.load(config, config.rule_file_paths())
        counts = await runner.apply(groups, set())
        assert counts == {"start": 0, "reload": 0, "moved": 0, "removed": 1}
        values = _series(storage, "a_out")[0].values
        assert float(values[0]) == 1.0 and bool(is_stale(np.array([values[-1]]))[0])
        await runner.stop()

    asyncio.run(main())


def test_a_kept_group_that_had_restored_keeps_its_alerts_restored(tmp_path):
    _, config = _rule_file(tmp_path)

    async def main():
        storage = MemoryStorage()
        runner = _runner(storage)
        groups = runner.load(config, config.rule_file_paths())
        await runner.apply(groups, set(groups))
        b = next(g for g in runner.groups() if g.name == "b")
        b.run_once(1_000_000)
        b.run_once(2_000_000)  # the second evaluation restores
        assert not b.should_restore
        active_at = [a.active_at_ms for a in b.rules[1].alerts()]
        await runner.apply(runner.load(config, config.rule_file_paths()), set(groups))
        b2 = next(g for g in runner.groups() if g.name == "b")
        assert b2 is not b and not b2.should_restore
        rule = b2.rules[1]
        assert isinstance(rule, AlertingRule) and rule.restored
        assert [a.active_at_ms for a in rule.alerts()] == active_at
        await runner.stop()

    asyncio.run(main())
