"""The query JSON of native histograms has the shape Grafana's Prometheus data source parses into a heatmap
(tests/grafana_heatmap.py states its rules): numbers where it reads numbers, strings where it reads strings,
every boundary rule, the zero bucket, negative buckets, infinite bounds and NaN counts."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels
from shardmon.querier.promql import QueryResult, ResultSeries
from shardmon.querier.result_json import result_json
from tests.grafana_heatmap import Cell, ShapeError, heatmap_frames

SIGNED = Histogram(schema=0, zero_threshold=0.001, zero_count=2.0, count=9.0, sum=-1.5,
                   positive_spans=((0, 2), (1, 1)), positive_buckets=(1.0, 2.0, 1.5),
                   negative_spans=((1, 1),), negative_buckets=(2.5,))


def _series(ts, hists, values=None, **labels):
    hist = np.empty(len(ts), dtype=object)
    hist[:] = hists
    vals = np.array([math.nan if h is not None else v for h, v in zip(hists, values or [0.0] * len(ts))])
    return ResultSeries(Labels.from_dict(labels), np.array(ts, np.int64), vals,
                        hist if any(h is not None for h in hists) else None)


def test_a_matrix_of_histograms_becomes_heatmap_cells():
    res = QueryResult("matrix", [_series([1_000, 3_500], [SIGNED, SIGNED], job="a"),
                                 _series([1_000], [None], [4.0], job="b")], None, 3_500, [])
    frames = heatmap_frames(json.loads(result_json(res)))
    assert list(frames) == [(("job", "a"),)]  # the float series makes no heatmap frame
    cells = frames[(("job", "a"),)]
    assert len(cells) == 2 * 5
    # Prometheus's order and rules: negative (-2, -1] open left... zero bucket closed, positive open left.
    assert cells[:5] == [Cell(1000, -2.0, -1.0, 2.5, 1), Cell(1000, -0.001, 0.001, 2.0, 3),
                         Cell(1000, 0.5, 1.0, 1.0, 0), Cell(1000, 1.0, 2.0, 2.0, 0), Cell(1000, 4.0, 8.0, 1.5, 0)]
    assert {c.x_max_ms for c in cells[5:]} == {3500}


def test_a_vector_histogram_and_edge_values_parse():
    huge = Histogram(schema=-4, count=math.nan, sum=math.inf, positive_spans=((63, 2),),
                     positive_buckets=(1e-9, math.nan))
    res = QueryResult("vector", [_series([2_001], [huge])], None, 2_001, [])
    (cells,) = heatmap_frames(json.loads(result_json(res))).values()
    assert cells[0].x_max_ms == 2001 and cells[0].count == 1e-9
    assert math.isnan(cells[1].count) and cells[1].y_max == sys.float_info.max  # Prometheus's last bound


def test_an_empty_histogram_has_no_cells_but_parses():
    res = QueryResult("vector", [_series([0], [Histogram()])], None, 0, [])
    assert heatmap_frames(json.loads(result_json(res))) == {(): []}


@pytest.mark.parametrize("bad", [
    {"resultType": "matrix", "result": [{"metric": {}, "histograms": [["1", {"buckets": []}]]}]},
    {"resultType": "matrix", "result": [{"metric": {}, "histograms": [[1, {"buckets": [[0, 1, "2", "3"]]}]]}]},
    {"resultType": "matrix", "result": [{"metric": {}, "histograms": [[1, {"buckets": [[0, "1", "2"]]}]]}]},
    {"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {"buckets": [["0", "1", "2", "3"]]}, 3]}]},
])
def test_the_parser_refuses_what_grafana_refuses(bad):
    with pytest.raises(ShapeError):
        heatmap_frames(bad)
