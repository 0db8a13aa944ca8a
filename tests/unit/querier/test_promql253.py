"""Prometheus 2.53's PromQL on floats: the annotations, the experimental functions and their flag, the
2.53 script syntax, the API's annotations, and the list of 2.42/2.53 differences."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shardmon.model.errors import BadQueryError
from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.service_config import QuerierConfig
from shardmon.querier.http_api import PrometheusAPI
from shardmon.querier.promql import Engine
from shardmon.querier.promql.sort_label import natural_less
from shardmon.querier.promql_differences import SCRIPT_CASES, skipped_live_query, skipped_script_case
from shardmon.querier.promqltest import run_script

NON_COUNTER = ('PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: '
               '"gauge"')


def _storage() -> MemoryStorage:
    st = MemoryStorage()
    ts = np.arange(0, 300_001, 60_000, dtype=np.int64)
    st.add_series(Labels.from_dict({"__name__": "gauge", "i": "a"}), ts, np.arange(1.0, 7.0))
    st.add_series(Labels.from_dict({"__name__": "hits_total", "i": "a"}), ts, np.arange(1.0, 7.0))
    for le, count in (("1", 10.0), ("2", 5.0), ("+Inf", 10.0), ("oops", 1.0)):
        st.add_series(Labels.from_dict({"__name__": "h_bucket", "le": le}), ts, np.full(ts.shape[0], count))
    return st


def test_experimental_functions_are_a_parse_error_unless_enabled() -> None:
    st = _storage()
    with pytest.raises(BadQueryError, match=r'^1:5: parse error: function "sort_by_label" is not enabled$'):
        Engine(st).instant('1 + sort_by_label(gauge, "i")', 0)
    with pytest.raises(BadQueryError, match='function "mad_over_time" is not enabled'):
        Engine(st).range("mad_over_time(gauge[5m])", 0, 60_000, 60_000)
    # A name inside a string is no call.
    assert Engine(st).instant('label_replace(gauge, "x", "sort_by_label(", "i", ".*")', 0).series
    res = Engine(st, experimental_functions=True).instant("mad_over_time(gauge[5m])", 300_000)
    assert [float(s.values[0]) for s in res.series] == [1.5]  # 1..6: median 3.5, deviations' median 1.5
    assert QuerierConfig().enable_experimental_functions is False
    assert "promql-experimental-functions" in QuerierConfig.model_fields["enable_experimental_functions"].description


def test_rate_of_a_non_counter_name_adds_an_info_once() -> None:
    engine = Engine(_storage())
    res = engine.instant("rate(gauge[5m]) + increase(gauge[5m])", 300_000)
    assert res.infos == [NON_COUNTER] and res.warnings == []
    assert res.annotations() == [NON_COUNTER]
    assert not engine.instant("rate(hits_total[5m])", 300_000).infos
    assert engine.instant("rate(hits_total[5m])", 300_000).annotations() == []
    # Not for a subquery, as Prometheus (its check is on the matrix selector's series).
    assert not engine.instant("rate(gauge[5m:1m])", 300_000).infos


def test_quantile_annotations_and_forced_monotonicity() -> None:
    engine = Engine(_storage())
    res = engine.instant("quantile(2, gauge)", 0)
    assert res.warnings == ["PromQL warning: quantile value should be between 0 and 1, got 2"]
    assert engine.instant("quantile_over_time(NaN, gauge[1m])", 60_000).warnings == [
        "PromQL warning: quantile value should be between 0 and 1, got NaN"]
    res = engine.instant("histogram_quantile(0.5, h_bucket)", 0)
    assert [float(s.values[0]) for s in res.series] == [0.5]
    assert res.warnings == ['PromQL warning: bucket label "le" is missing or has a malformed value of "oops" '
                            'for metric name "h_bucket"']
    assert res.infos == ["PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see "
                         "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                         'for metric name ""']


def test_small_float_noise_between_buckets_is_no_forced_monotonicity() -> None:
    st = MemoryStorage()
    ts = np.array([0], dtype=np.int64)
    for le, count in (("1", 10.0), ("2", 10.0 - 1e-14), ("+Inf", 20.0)):
        st.add_series(Labels.from_dict({"__name__": "n_bucket", "le": le}), ts, np.array([count]))
    res = Engine(st).instant("histogram_quantile(0.5, n_bucket)", 0)
    assert not res.infos
    assert float(res.series[0].values[0]) == 1.0


def test_atan2_drops_the_metric_name() -> None:
    res = Engine(_storage()).instant("gauge atan2 2", 0)
    assert [s.labels for s in res.series] == [Labels.from_dict({"i": "a"})]


def test_natural_order() -> None:
    assert natural_less("9", "10") and not natural_less("10", "9")
    assert natural_less("1.2.3", "1.11.3") and natural_less("4m5", "4m600") and natural_less("4m600", "4m1000")
    assert natural_less("10", "a") and natural_less("a", "a1") and not natural_less("a1", "a")


def test_the_api_lists_infos_after_warnings_at_most_ten() -> None:
    async def main():
        st = _storage()
        app = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000).app()
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/api/v1/query", params={"query": "rate(gauge[5m])", "time": "300"})
            return json.loads(await resp.text())

    body = asyncio.run(main())
    assert body["status"] == "success" and body["warnings"] == [NON_COUNTER]


def test_range_eval_syntax_and_annotation_modes() -> None:
    script = """
load 1m
  gauge 1 2 3 4 5

eval range from 0 to 4m step 2m increase(gauge[5m])
  {} _ 2.5 5

eval_info range from 0 to 4m step 2m increase(gauge[5m])
  {} _ 2.5 5

eval range from 0 to 4m step 2m increase(gauge[5m])
  {} 1 2.5 5

eval_warn instant at 4m rate(gauge[5m])
  {} 0.016666666666666666

eval_fail range from 0 to 4m step 2m gauge
"""
    report = run_script(script, name="t.test")
    assert report.passed == 2 and report.failed == 3, report.failures
    assert "expected 3 points" in report.failures[0]
    assert "expected warnings, got none" in report.failures[1]
    assert "expected an error" in report.failures[2]


def test_the_differences_are_listed_with_reasons() -> None:
    assert all(d.reason and d.expects for d in SCRIPT_CASES)
    assert skipped_live_query("app_temperature_celsius atan2 10")
    assert skipped_live_query("rate(http_requests_total[10s])") is None
    # 2.53's script holds the same case with 2.53's answer: that one runs.
    assert skipped_script_case("operators.test", "trigy atan2 trigx", 300_000, ["trigy{} 0.4636476090008061"])
    assert skipped_script_case("operators.test", "trigy atan2 trigx", 300_000, ["{} 0.4636476090008061"]) is None
