"""The bulk JSON renderer writes exactly what rendering each point by itself writes, as Prometheus does."""

from __future__ import annotations

import json

import numpy as np

from shardmon.model.labels import Labels
from shardmon.querier import result_json as rj
from shardmon.querier.promql import QueryResult, ResultSeries


def _one_by_one(res: QueryResult) -> str:
    """The reference: every point formatted by itself."""
    items = []
    for s in res.series:
        points = [f'[{rj.format_ts(int(t))},"{rj.format_value(float(v))}"]'
                  for t, v in zip(s.timestamps_ms.tolist(), s.values.tolist())]
        if res.result_type == "vector":
            items.append(f'{{"metric":{rj.labels_json(s.labels)},"value":{points[0]}}}')
        else:
            items.append(f'{{"metric":{rj.labels_json(s.labels)},"values":[{",".join(points)}]}}')
    return f'{{"resultType":"{res.result_type}","result":[{",".join(items)}]}}'


def _labels(i: int) -> Labels:
    return Labels.from_dict({"__name__": "m", "i": str(i), "odd": "é\"<x>" if i % 7 == 0 else ""})


def _values(rng, n: int) -> np.ndarray:
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-25, 25, n)
    pick = rng.integers(0, 6, n)
    v[pick == 0] = np.round(v[pick == 0])  # whole numbers
    v[pick == 1] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e21, 5e-324, 1e16, 1e15], (pick == 1).sum())
    return v


def test_a_matrix_renders_as_point_by_point():
    rng = np.random.default_rng(1)
    steps = 1_700_000_000_000 + 1500 * np.arange(40, dtype=np.int64)
    series = []
    for i in range(300):
        mask = rng.random(40) < (1.0 if i % 3 else 0.4)
        ts = steps if mask.all() else steps[mask]
        series.append(ResultSeries(_labels(i), ts, _values(rng, ts.shape[0])))
    res = QueryResult("matrix", series, None, int(steps[-1]), [])
    text = rj.result_json(res)
    assert text == _one_by_one(res)
    assert len(json.loads(text)["result"]) == 300


def test_a_vector_and_chunked_answers_render_as_point_by_point(monkeypatch):
    rng = np.random.default_rng(2)
    t = np.array([-1500], dtype=np.int64)
    res = QueryResult("vector", [ResultSeries(_labels(i), t, _values(rng, 1)) for i in range(500)], None, -1500, [])
    assert rj.result_json(res) == _one_by_one(res)
    monkeypatch.setattr(rj, "_CHUNK_POINTS", 7)  # many gathers, cut between series
    assert rj.result_json(res) == _one_by_one(res)
    ts = np.array([0, 1, 999, 1000, 1001], dtype=np.int64)
    res = QueryResult("matrix", [ResultSeries(_labels(i), ts[: 1 + i % 5], _values(rng, 1 + i % 5)) for i in range(50)],
                      None, 1001, [])
    assert rj.result_json(res) == _one_by_one(res)


def test_empty_results_and_scalars():
    assert rj.result_json(QueryResult("vector", [], None, 0, [])) == '{"resultType":"vector","result":[]}'
    assert rj.result_json(QueryResult("matrix", [], None, 0, [])) == '{"resultType":"matrix","result":[]}'
    assert rj.result_json(QueryResult("scalar", [], 2.0, 1500, [])) == '{"resultType":"scalar","result":[1.500,"2"]}'
    none = (np.zeros(0, np.int64), np.zeros(0))
    empty = QueryResult("matrix", [ResultSeries(_labels(1), *none)], None, 0, [])
    assert json.loads(rj.result_json(empty))["result"] == [{"metric": {"__name__": "m", "i": "1"}, "values": []}]
    one = (np.array([1000]), np.array([2.0]))
    mixed = QueryResult("matrix", [ResultSeries(_labels(i), *(one if i == 1 else none)) for i in range(3)], None, 0, [])
    assert rj.result_json(mixed) == _one_by_one(mixed)
