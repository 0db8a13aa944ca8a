"""The aggregation push-down over real shards (gRPC ``Shard.Aggregate``, data written through the shards'
``Write``), every answer checked against the exact path (the series fetched and aggregated in the
querier, ``querier.aggregation_pushdown: false``) by :class:`tests.pushdown_compare.ComparingEngine`:

- every case of Prometheus's PromQL test scripts and of the project's own, over three shards;
- the project's query set (the queries tests/integration/test_promql_vs_prometheus.py checks against
  Prometheus, and tests/unit/model/test_pushdown.py's) over farm-shaped data on three shards;
- with replication (RF 2 of 3 shards, one shard down): the exact path answers, complete and equal.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench.farm import Target, target_series
from shardmon.localshards import LocalShards
from shardmon.model.labels import Labels
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch
from shardmon.procs import free_port
from shardmon.querier import metrics
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promqltest import ScriptReport, ShardAppender, run_script, sharded_storage
from shardmon.shards.client import ShardClient
from tests.integration.test_promql_vs_prometheus import QUERIES as VS_PROMETHEUS
from tests.pushdown_compare import ComparingEngine, Differences, compare
from tests.reference import ROOT, promqltest_dir
from tests.unit.model.test_pushdown import QUERIES as UNIT_QUERIES

_LINE = re.compile(r"^(\w+)(\{.*\})? (\S+)$")
_PAIR = re.compile(r'(\w+)="([^"]*)"')


def _pushed() -> float:
    return metrics.PUSHDOWN.labels("pushed")._value.get()


@pytest.fixture(scope="module")
def three_shards():
    with LocalShards(3) as shards:
        clients = shards.clients()
        yield clients
        for c in clients:
            c.close()


def test_every_script_case_is_answered_the_same_with_and_without_push_down(three_shards):
    ComparingEngine.differences = d = Differences()
    pushed = _pushed()
    total = ScriptReport()
    paths = sorted(promqltest_dir().glob("*.test")) + sorted((ROOT / "tests" / "promql").glob("*.test"))
    for path in paths:
        total.add(run_script(path.read_text(), sharded_storage(three_shards), name=path.name,
                             make_engine=ComparingEngine))
    print(f"scripts: {total.summary()}; compared {d.compared}: {d.identical} identical, {d.last_bits} equal but "
          f"for the last bits of a sum or mean; pushed down {_pushed() - pushed:.0f}")
    assert total.failed == 0 and total.unsupported == 0, total.failures + total.unsupported_cases
    assert not d.failures, "\n".join(d.failures)
    assert d.compared > 900 and _pushed() - pushed > 200


def _farm_batch(n_targets: int, n_series: int, start_s: float, points: int, every_s: float) -> SampleBatch:
    """Farm-shaped data (bench/farm.py's targets, as scraped) with up and the scrape series, as one batch."""
    defs: dict[Labels, tuple[list[int], list[float]]] = {}
    for i in range(n_targets):
        target = Target(i, target_series(n_series))
        for p in range(points):
            t = start_s + p * every_s
            lines = target.render(t).decode().splitlines()
            lines += ["up 1", f"scrape_samples_scraped {n_series}", f"scrape_duration_seconds {0.001 * (1 + i + p % 3)}"]
            for line in lines:
                m = _LINE.match(line)
                if m is None:
                    continue
                pairs = dict(_PAIR.findall(m.group(2) or ""))
                lbls = Labels.from_dict({**pairs, "__name__": m.group(1), "instance": f"t{i}", "job": "farm"})
                ts, vals = defs.setdefault(lbls, ([], []))
                ts.append(int(t * 1000))
                vals.append(float(m.group(3)))
    keys = [lbls.canonical() for lbls in defs]
    ids = np.array([lbls.series_id() for lbls in defs], dtype=U64)
    refs = np.concatenate([np.full(len(ts), n, dtype=U32) for n, (ts, _) in enumerate(defs.values())])
    ts = np.concatenate([np.array(ts, dtype=I64) for ts, _ in defs.values()])
    vals = np.concatenate([np.array(v, dtype=F64) for _, v in defs.values()])
    return SampleBatch.of(ids, keys, refs, ts, vals)


START_S = 1_790_000_000
POINTS, EVERY_S = 30, 2


@pytest.fixture(scope="module")
def farm_data(three_shards):
    for c in three_shards:
        c.reset()
    batch = _farm_batch(6, 250, START_S, POINTS, EVERY_S)
    ShardAppender(three_shards).append(batch)
    return three_shards


def _check(engine: ComparingEngine, queries, end_ms: int) -> Differences:
    ComparingEngine.differences = d = Differences()
    for q in queries:
        for run, args in ((engine.instant, (q, end_ms)), (engine.range, (q, end_ms - 40_000, end_ms, 3_000))):
            try:
                run(*args)
            except Exception:  # noqa: BLE001 - an error is compared too (the same error both ways)
                pass
    return d


def test_the_projects_query_set_is_answered_the_same_with_and_without_push_down(farm_data):
    pushed = _pushed()
    engine = ComparingEngine(FanoutQuerier(farm_data, partial_response="abort"))
    end_ms = (START_S + (POINTS - 1) * EVERY_S) * 1000
    # The unit tests' queries name their own metrics: on this data they read the farm's under those names.
    renamed = [q.replace("temperature", "app_temperature_celsius").replace("requests_total", "http_requests_total")
               for q in UNIT_QUERIES]
    d = _check(engine, VS_PROMETHEUS + renamed, end_ms)
    print(f"query set: compared {d.compared}: {d.identical} identical, {d.last_bits} equal but for the last bits; "
          f"pushed down {_pushed() - pushed:.0f}")
    assert not d.failures, "\n".join(d.failures)
    assert _pushed() - pushed >= 40


def test_with_replicas_and_a_shard_down_the_exact_path_answers_the_same(three_shards):
    """RF 2 over 3 shards: a series lives on two of them, so partial aggregates would count it twice (and
    its copies may differ): the fan-out declines the push-down and the engine fetches the series, merged
    replica by replica, which a shard being down does not change."""
    for c in three_shards:
        c.reset()
    ShardAppender(three_shards, replication_factor=2).append(_farm_batch(3, 250, START_S, 10, EVERY_S))
    end_ms = (START_S + 9 * EVERY_S) * 1000
    down = ShardClient(2, f"127.0.0.1:{free_port()}")  # nothing listens there
    queries = ["sum by (mode) (rate(node_cpu_seconds_total[10s]))", "count by (instance) (up)",
               "topk(3, app_queue_depth)", "avg(app_temperature_celsius)", 'count_values("v", up)']
    all_up = ComparingEngine(FanoutQuerier(three_shards, replication_factor=2))
    one_down = ComparingEngine(FanoutQuerier(three_shards[:2] + [down], replication_factor=2))
    replicated = metrics.PUSHDOWN.labels("replicated")._value.get()
    for q in queries:
        a, b = all_up.instant(q, end_ms), one_down.instant(q, end_ms)
        assert a.series and not b.partial and compare(a, b) == "same", q
        ra = all_up.range(q, end_ms - 10_000, end_ms, 2_000)
        rb = one_down.range(q, end_ms - 10_000, end_ms, 2_000)
        assert compare(ra, rb) == "same", q
    assert not ComparingEngine.differences.failures
    assert metrics.PUSHDOWN.labels("replicated")._value.get() - replicated >= 4 * len(queries)
    down.close()
