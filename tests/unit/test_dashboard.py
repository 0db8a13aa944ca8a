"""The Grafana dashboard: up to date with its generator, valid PromQL, only metrics that exist."""

import importlib.util
import json
import re
from pathlib import Path

import promql_parser

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


def _generator():
    spec = importlib.util.spec_from_file_location("dashboard_generate", DASHBOARDS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _exprs():
    board = json.loads((DASHBOARDS / "shardmon-pipeline.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_the_committed_json_is_what_the_generator_makes():
    assert (DASHBOARDS / "shardmon-pipeline.json").read_text() == _generator().render(), \
        "run python dashboards/generate.py"


def test_every_panel_query_is_valid_promql():
    for expr in _exprs():
        promql_parser.parse(expr.replace("$__rate_interval", "1m"))


def test_every_shardmon_metric_a_panel_uses_is_defined_in_the_code():
    defined = set()
    for pkg in ("shards", "ingest", "querier"):
        for path in (ROOT / pkg).rglob("*.py"):
            defined |= set(re.findall(r'"(shardmon_[a-z_]+)"', path.read_text()))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in _exprs() for m in re.findall(r"shardmon_[a-z_]+", e)}
    assert used and not used - defined, used - defined
