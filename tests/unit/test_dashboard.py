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


def test_every_panel_query_is_answered_by_shardmons_engine():
    """Each panel's query, as Grafana sends it (a range query), evaluated by Shardmon's own PromQL engine
    over series shaped like the real ones: counters rising, gauges, and the histograms' buckets (`le`),
    so that every `histogram_quantile` and division gives an answer."""
    import numpy as np

    from shardmon.model.labels import Labels
    from shardmon.model.memory import MemoryStorage
    from shardmon.querier.promql import Engine

    storage = MemoryStorage()
    ts = np.arange(0, 20 * 60_000, 15_000, dtype=np.int64)
    rising = np.arange(len(ts), dtype=np.float64)
    names = {m for e in _exprs() for m in re.findall(r"\b([a-z_]+)(?=[{\[)\s])", e)}
    names = {n for n in names if n.startswith(("shardmon_", "process_", "up"))}
    base = {"job": "shardmon", "component": "shard", "instance": "127.0.0.1:9311", "shard": "0",
            "outcome": "success", "reason": "out_of_order", "state": "alive", "handler": "query",
            "code": "200", "api": "http", "kind": "range"}
    for name in sorted(names):
        if name.endswith("_bucket"):
            for i, le in enumerate(["0.01", "0.1", "1", "+Inf"]):
                labels = Labels.from_dict({**base, "__name__": name, "le": le})
                storage.add_series(labels, ts, rising * (i + 1))
        else:
            storage.add_series(Labels.from_dict({**base, "__name__": name}), ts, rising + 1)
    # The values a panel selects by, e.g. {outcome="retry"}.
    for expr in _exprs():
        for name, key, value in re.findall(r'(shardmon_[a-z_]+)\{(\w+)="([^"]*)"\}', expr):
            storage.add_series(Labels.from_dict({**base, "__name__": name, key: value}), ts, rising + 1)
    storage.add_series(Labels.from_dict({**base, "__name__": "up", "job": "demo"}), ts, np.ones(len(ts)))
    engine = Engine(storage)
    for expr in _exprs():
        result = engine.range(expr.replace("$__rate_interval", "1m"), 5 * 60_000, 20 * 60_000 - 15_000, 15_000)
        assert result.series, f"no answer to {expr}"
        if "histogram_quantile" in expr or " / " in expr:
            assert all(np.isfinite(s.values).any() for s in result.series), expr
