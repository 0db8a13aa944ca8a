"""The aggregation push-down over real shards (gRPC ``Shard.Aggregate``, data written through the shards'
``Write``), every answer checked against the exact path (the series fetched and aggregated in the
querier, ``querier.aggregation_pushdown: false``) by :class:`tests.pushdown_compare.ComparingEngine`:

- every case of Prometheus's PromQL test scripts and of the project's own, over three shards, without
  replication and with RF 2 (each series on two of the three shards, aggregated once);
- the project's query set (the queries tests/integration/test_promql_vs_prometheus.py checks against
  Prometheus, and tests/unit/model/test_pushdown.py's) over farm-shaped data on three shards, RF 1 and 2;
- with replication, a shard killed: the next owners cover its series (pushed down, equal); writes it
  missed while down, once it is back: its copies differ from its peers' over ranges that reach them, so
  the exact path answers there (outcome ``diverged``), and the push-down again over ranges that do not.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from bench.farm import Target, target_series
from shardmon.localshards import LocalShards
from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Labels
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch
from shardmon.querier import metrics
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promqltest import ScriptReport, ShardAppender, run_script, sharded_storage
from tests.integration.test_promql_vs_prometheus import QUERIES as VS_PROMETHEUS
from tests.pushdown_compare import ComparingEngine, Differences
from tests.reference import ROOT, promqltest_dir
from tests.unit.model.test_pushdown import QUERIES as UNIT_QUERIES

_LINE = re.compile(r"^(\w+)(\{.*\})? (\S+)$")
_PAIR = re.compile(r'(\w+)="([^"]*)"')


def _pushed(outcome: str = "pushed") -> float:
    return metrics.PUSHDOWN.labels(outcome)._value.get()


@pytest.fixture(scope="module")
def three_shards():
    with LocalShards(3) as shards:
        clients = shards.clients()
        yield clients
        for c in clients:
            c.close()


_REFUSED = ("replicated", "diverged", "misplaced", "unavailable")


@pytest.mark.parametrize("rf", [1, 2])
def test_every_script_case_is_answered_the_same_with_and_without_push_down(three_shards, rf):
    ComparingEngine.differences = d = Differences()
    pushed = _pushed()
    refused = {o: _pushed(o) for o in _REFUSED}
    total = ScriptReport()
    paths = sorted(promqltest_dir().glob("*.test")) + sorted((ROOT / "tests" / "promql").glob("*.test"))
    for path in paths:
        total.add(run_script(path.read_text(), sharded_storage(three_shards, rf), name=path.name,
                             make_engine=ComparingEngine))
    print(f"scripts, RF {rf}: {total.summary()}; compared {d.compared}: {d.identical} identical, {d.last_bits} equal "
          f"but for the last bits of a sum or mean; pushed down {_pushed() - pushed:.0f}")
    assert total.failed == 0 and total.unsupported == 0, total.failures + total.unsupported_cases
    assert not d.failures, "\n".join(d.failures)
    assert d.compared > 900 and _pushed() - pushed > 200
    assert {o: _pushed(o) for o in _REFUSED} == refused  # every copy equal: nothing declined for replicas


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


@pytest.fixture(scope="module", params=[1, 2], ids=["rf1", "rf2"])
def farm_data(three_shards, request):
    for c in three_shards:
        c.reset()
    batch = _farm_batch(6, 250, START_S, POINTS, EVERY_S)
    ShardAppender(three_shards, request.param).append(batch)
    return three_shards, request.param


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
    clients, rf = farm_data
    pushed = _pushed()
    refused = {o: _pushed(o) for o in _REFUSED}
    engine = ComparingEngine(FanoutQuerier(clients, partial_response="abort", replication_factor=rf))
    end_ms = (START_S + (POINTS - 1) * EVERY_S) * 1000
    # The unit tests' queries name their own metrics: on this data they read the farm's under those names.
    renamed = [q.replace("temperature", "app_temperature_celsius").replace("requests_total", "http_requests_total")
               for q in UNIT_QUERIES]
    d = _check(engine, VS_PROMETHEUS + renamed, end_ms)
    print(f"query set, RF {rf}: compared {d.compared}: {d.identical} identical, {d.last_bits} equal but for the last "
          f"bits; pushed down {_pushed() - pushed:.0f}")
    assert not d.failures, "\n".join(d.failures)
    assert _pushed() - pushed >= 40
    assert {o: _pushed(o) for o in _REFUSED} == refused


QUERIES_RF = ["sum by (mode) (rate(node_cpu_seconds_total[10s]))", "count by (instance) (up)",
              "topk(3, app_queue_depth)", "avg(app_temperature_celsius)", 'count_values("v", up)',
              "max_over_time(app_temperature_celsius[10s])", "app_queue_depth"]


def _write_rf2(clients, batch: SampleBatch, up: list[int]) -> None:
    """Write ``batch`` with RF 2 over every client's shard, as the scrapers place it, to the shards ``up`` only
    (the others' writes are missed, as while they are down)."""
    ids = [c.shard_id for c in clients]
    owners = shards_for_series(batch.series_ids, ids, 2)
    for pos in up:
        mask = (owners == pos).any(axis=1)
        clients[pos].write(f"rf2-{pos}-{time.monotonic_ns()}", batch.select_series(mask))


def _check_rf(engine: ComparingEngine, end_ms: int, *, partial: bool = False) -> None:
    for q in QUERIES_RF:
        for got in (engine.instant(q, end_ms), engine.range(q, end_ms - 10_000, end_ms, 2_000)):
            assert got.series and got.partial is partial, q
    assert not ComparingEngine.differences.failures, "\n".join(ComparingEngine.differences.failures)


def test_with_replicas_a_killed_shard_and_the_writes_it_missed():
    """RF 2 over 3 shards: each series aggregated once, by its first owner that answers; shard 2 killed,
    then back with the writes it missed: the exact path where its copies differ, and only there."""
    ComparingEngine.differences = Differences()
    with LocalShards(3) as shards:
        clients = shards.clients()
        shard2 = shards.children[len(shards.children) // 2 + 2]
        first = _farm_batch(3, 250, START_S, 10, EVERY_S)
        _write_rf2(clients, first, [0, 1, 2])
        engine = ComparingEngine(FanoutQuerier(clients, replication_factor=2))
        end_first = (START_S + 9 * EVERY_S) * 1000
        before = {o: _pushed(o) for o in ("pushed", "rows", *_REFUSED)}
        _check_rf(engine, end_first)
        assert _pushed("pushed") + _pushed("rows") - before["pushed"] - before["rows"] == 2 * len(QUERIES_RF)
        assert all(_pushed(o) == before[o] for o in _REFUSED)

        shard2.kill()
        before = {o: _pushed(o) for o in ("pushed", "rows", *_REFUSED)}
        _check_rf(engine, end_first)  # complete (one copy of each series answers), equal
        # The first push-down counted on shard 2 (unavailable: the exact path); every later one covers its
        # series by their next owners.
        assert _pushed("unavailable") - before["unavailable"] >= 1
        assert _pushed("pushed") + _pushed("rows") - before["pushed"] - before["rows"] >= 2 * len(QUERIES_RF) - 2
        assert all(_pushed(o) == before[o] for o in ("replicated", "diverged", "misplaced"))

        # Writes while shard 2 is down reach shards 0 and 1 only; then shard 2 comes back (its Redis kept
        # what it had) with gaps its peers fill.
        second_start = START_S + 10 * EVERY_S
        _write_rf2(clients, _farm_batch(3, 250, second_start, 10, EVERY_S), [0, 1])
        shard2.up(60)
        deadline = time.monotonic() + 30
        while True:
            try:
                clients[2].label_names([], 0, 1)
                break
            except Exception:  # noqa: BLE001 - its channel reconnects
                assert time.monotonic() < deadline, "shard 2 does not answer after its restart"
                time.sleep(0.2)
        end_second = (second_start + 9 * EVERY_S) * 1000
        before = {o: _pushed(o) for o in ("pushed", "rows", *_REFUSED)}
        _check_rf(engine, end_second)  # the exact path: the copies of shard 2 lack the second batch
        assert _pushed("diverged") - before["diverged"] >= 2 * len(QUERIES_RF)
        assert _pushed("pushed") + _pushed("rows") == before["pushed"] + before["rows"]
        before = {o: _pushed(o) for o in ("pushed", "rows", *_REFUSED)}
        _check_rf(engine, end_first)  # ranges before the missed writes: every copy agrees, pushed down
        assert _pushed("pushed") + _pushed("rows") - before["pushed"] - before["rows"] == 2 * len(QUERIES_RF)
        assert all(_pushed(o) == before[o] for o in _REFUSED)
        engine.querier.close()
