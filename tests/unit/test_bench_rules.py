"""The rule-evaluation benchmark's pure parts: its generated rule file and the py-spy summary."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from bench.pyspy import summarise
from bench.rulesbench import rule_groups
from shardmon.model.rule_config import load_rule_file


@pytest.fixture
def rule_path(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    return path


def test_rule_file_has_100_recording_and_100_alerting_rules_in_groups_of_10(rule_path):
    groups = load_rule_file(str(rule_path)).groups
    assert len(groups) == 20 and all(len(g.rules) == 10 for g in groups)
    assert sum(1 for g in groups for r in g.rules if r.record) == 100
    assert sum(1 for g in groups for r in g.rules if r.alert) == 100
    names = [r.record or r.alert for g in groups for r in g.rules]
    assert len(set(names)) == 200
    assert any("histogram_quantile" in r.expr for g in groups for r in g.rules)
    assert any(r.for_ms > 0 for g in groups for r in g.rules)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")
def test_promtool_accepts_the_rule_file(rule_path):
    out = subprocess.run(["promtool", "check", "rules", str(rule_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "200 rules found" in out.stdout


def test_profile_summary_counts_only_stacks_under_the_focus():
    collapsed = "\n".join([
        "main (a.py:1);run_once (rules/group.py:10);query (e/engine.py:5) 6",
        "main (a.py:1);run_once (rules/group.py:12);expand (g/template.py:3) 2",
        "main (a.py:1);run_once (rules/group.py:10) 2",
        "worker (threading.py:9) 90",
    ])
    got = summarise(collapsed, focus="rules/group.py:run_once")
    assert got["samples"] == 10
    assert dict(got["self"]) == {"e/engine.py:query": 0.6, "g/template.py:expand": 0.2, "rules/group.py:run_once": 0.2}
    assert summarise(collapsed)["samples"] == 100


def test_overlapping_prometheus_evaluations_are_counted():
    from bench.rulesbench import overlaps

    evals = {"a": [{"ts_ms": 0, "duration_s": 2.0}, {"ts_ms": 90_000, "duration_s": 1.0}],
             "b": [{"ts_ms": 1_000, "duration_s": 0.5}, {"ts_ms": 95_000, "duration_s": 1.0}]}
    assert overlaps(evals) == (2, 4)


def test_staggered_groups_are_evaluated_in_their_own_part_of_the_interval():
    from shardmon.querier.rules import eval_timestamp_ns

    interval_ms = 120_000
    groups = rule_groups("/tmp/x/rules.yml", interval_ms)["groups"]
    offsets = [eval_timestamp_ns("/tmp/x/rules.yml", g["name"], interval_ms, 10**18) % (interval_ms * 10**6)
               for g in groups]
    width = interval_ms * 10**6 // 20
    assert [o // width for o in offsets] == list(range(20))
    assert [g["name"].split("~")[0] for g in groups][:2] == ["recording-0", "recording-1"]
