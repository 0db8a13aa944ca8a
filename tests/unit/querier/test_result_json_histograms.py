"""Native histograms in the query API's JSON, as Prometheus 2.53's json_codec.go writes them (labels as
labels_json writes them: JSON-equal to Prometheus's)."""

from __future__ import annotations

import json

import numpy as np

from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels
from shardmon.querier.promql import QueryResult, ResultSeries
from shardmon.querier.result_json import format_value, histogram_json, render_result

H = Histogram(schema=1, zero_threshold=0.5, zero_count=3, count=10, sum=-1.5e-7,
              positive_spans=((-1, 2), (2, 1)), positive_buckets=(1, 0, 4),
              negative_spans=((0, 1),), negative_buckets=(2,))
H_JSON = ('{"count":"10","sum":"-1.5e-07","buckets":[[1,"-1","-0.7071067811865475","2"],[3,"-0.5","0.5","3"],'
          '[0,"0.5","0.7071067811865475","1"],[0,"2","2.82842712474619","4"]]}')


def _obj(arr):
    out = np.empty(len(arr), dtype=object)
    out[:] = arr
    return out


def test_histogram_object_skips_empty_buckets_and_writes_go_floats():
    assert histogram_json(H) == H_JSON


def test_no_buckets_key_without_non_empty_buckets_and_no_zero_bucket_when_empty():
    h = Histogram(schema=0, zero_threshold=0.001, zero_count=0, count=0, sum=0,
                  positive_spans=((0, 2),), positive_buckets=(0, 0))
    assert histogram_json(h) == '{"count":"0","sum":"0"}'
    nan_sum = Histogram(schema=3, count=1e21, sum=float("nan"), zero_count=1e21, zero_threshold=2.938735877055719e-39)
    assert histogram_json(nan_sum) == ('{"count":"1e+21","sum":"NaN","buckets":'
                                       '[[3,"-2.938735877055719e-39","2.938735877055719e-39","1e+21"]]}')


def test_vector_sample_with_a_histogram_has_histogram_instead_of_value():
    res = QueryResult("vector", [
        ResultSeries(Labels.from_dict({"__name__": "a"}), np.array([1500]), np.array([2.5])),
        ResultSeries(Labels.from_dict({"__name__": "h"}), np.array([1500]), np.array([np.nan]), _obj([H])),
        ResultSeries(Labels.from_dict({"__name__": "z"}), np.array([1500]), np.array([1e-7])),
    ], None, 1500, [])
    assert render_result(res).decode() == (
        '{"resultType":"vector","result":[{"metric":{"__name__": "a"},"value":[1.500,"2.5"]},'
        '{"metric":{"__name__": "h"},"histogram":[1.500,' + H_JSON + ']},'
        '{"metric":{"__name__": "z"},"value":[1.500,"1e-07"]}]}')


def test_matrix_series_with_floats_and_histograms_has_values_then_histograms():
    hists = _obj([None, H, None, H])
    res = QueryResult("matrix", [
        ResultSeries(Labels.from_dict({"x": "1"}), np.array([1000, 2000, 3000, 4000]),
                     np.array([1.0, np.nan, 3.0, np.nan]), hists),
        ResultSeries(Labels.from_dict({"x": "2"}), np.array([2000]), np.array([np.nan]), _obj([H])),
        ResultSeries(Labels.from_dict({"x": "3"}), np.array([1000, 2000]), np.array([5.0, 6.0])),
    ], None, 4000, [])
    text = render_result(res).decode()
    assert text == (
        '{"resultType":"matrix","result":['
        '{"metric":{"x": "1"},"values":[[1,"1"],[3,"3"]],"histograms":[[2,' + H_JSON + '],[4,' + H_JSON + ']]},'
        '{"metric":{"x": "2"},"histograms":[[2,' + H_JSON + ']]},'
        '{"metric":{"x": "3"},"values":[[1,"5"],[2,"6"]]}]}')
    json.loads(text)


def test_scalar_results_keep_no_exponent_as_prometheus():
    assert render_result(QueryResult("scalar", [], 1.5e-7, 0, [])) == b'{"resultType":"scalar","result":[0,"0.00000015"]}'
    assert format_value(1.5e-7) == "1.5e-07"
