"""The Prometheus HTTP API: envelopes, value and time formatting, parameters and errors, as Prometheus."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.model.storage import Series
from shardmon.querier.fanout import merge_series
from shardmon.querier.http_api import (
    PrometheusAPI,
    format_timestamps,
    format_ts,
    format_value,
    format_values,
    parse_step_ms,
    parse_time_ms,
)
from shardmon.querier.promql import Engine
from shardmon.querier.result_json import format_scalar


def test_values_are_formatted_as_go_formatfloat_f_minus_1():
    assert format_value(1.0) == "1"
    assert format_value(0.1) == "0.1"
    assert format_value(-2.5) == "-2.5"
    assert format_value(1e21) == "1e+21" and format_scalar(1e21) == "1000000000000000000000"
    assert format_value(1.5e-7) == "1.5e-07" and format_scalar(1.5e-7) == "0.00000015"
    assert format_value(1e-6) == "0.000001" and format_value(-9.99e20) == "-999000000000000000000"
    assert format_value(float("nan")) == "NaN"
    assert format_value(float("inf")) == "+Inf" and format_value(float("-inf")) == "-Inf"
    assert format_value(-0.0) == "-0"


def test_timestamps_are_seconds_with_millisecond_digits():
    assert format_ts(1435781451781) == "1435781451.781"
    assert format_ts(1500) == "1.500"
    assert format_ts(1050) == "1.050"
    assert format_ts(2000) == "2"
    assert format_ts(-1500) == "-1.500"


def test_time_and_duration_parameters():
    assert parse_time_ms("1435781451.781", "time") == 1435781451781
    assert parse_time_ms("2015-07-01T20:10:51.781Z", "time") == 1435781451781
    assert parse_step_ms("15", "step") == 15_000
    assert parse_step_ms("0.5", "step") == 500
    assert parse_step_ms("1m", "step") == 60_000


def _storage() -> MemoryStorage:
    st = MemoryStorage()
    ts = np.arange(0, 600_001, 15_000, dtype=np.int64)
    st.add_series(Labels.from_dict({"__name__": "up", "job": "a", "instance": "x"}), ts, np.ones(ts.shape[0]))
    st.add_series(Labels.from_dict({"__name__": "up", "job": "b", "instance": "y"}), ts, np.zeros(ts.shape[0]))
    return st


def _run(coro_fn):
    async def main():
        st = _storage()
        app = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000).app()
        async with TestClient(TestServer(app)) as client:
            return await coro_fn(client)

    return asyncio.run(main())


async def _get(client, path, **params):
    resp = await client.get(path, params=params)
    return resp.status, json.loads(await resp.text())


def test_instant_query_returns_the_vector_envelope():
    status, body = _run(lambda c: _get(c, "/api/v1/query", query="up", time="600"))
    assert status == 200
    assert body == {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "up", "instance": "x", "job": "a"}, "value": [600, "1"]},
                {"metric": {"__name__": "up", "instance": "y", "job": "b"}, "value": [600, "0"]},
            ],
        },
    }


def test_post_form_and_scalar_results():
    async def post(c):
        resp = await c.post("/api/v1/query", data={"query": "42", "time": "1.5"})
        return resp.status, json.loads(await resp.text())

    status, body = _run(post)
    assert status == 200
    assert body["data"] == {"resultType": "scalar", "result": [1.5, "42"]}


def test_range_query_returns_a_matrix():
    status, body = _run(lambda c: _get(c, "/api/v1/query_range", query="sum(up)", start="0", end="60", step="30"))
    assert status == 200
    assert body["data"] == {"resultType": "matrix", "result": [{"metric": {}, "values": [[0, "1"], [30, "1"], [60, "1"]]}]}


@pytest.mark.parametrize(
    "path, params, status, error",
    [
        ("/api/v1/query", {"query": "sum(up"}, 400, "unclosed left parenthesis"),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, 'invalid parameter "time": cannot parse "yesterday" to a valid timestamp'),
        ("/api/v1/query_range", {"query": "up", "start": "10", "end": "0", "step": "1"}, 400, "end timestamp must not be before start time"),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "0"}, 400, "zero or negative query resolution step widths"),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, 400, "exceeded maximum resolution of 11,000 points"),
        ("/api/v1/query_range", {"query": "up", "end": "10", "step": "1"}, 400, 'invalid parameter "start"'),
    ],
)
def test_errors_have_prometheus_types_and_codes(path, params, status, error):
    got_status, body = _run(lambda c: _get(c, path, **params))
    assert got_status == status
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert error in body["error"]


def test_series_labels_and_label_values():
    async def calls(c):
        return (
            await _get(c, "/api/v1/series", **{"match[]": 'up{job="a"}'}),
            await _get(c, "/api/v1/labels"),
            await _get(c, "/api/v1/label/job/values"),
            await _get(c, "/api/v1/series", **{"match[]": '{job=""}'}),
        )

    series, labels, values, empty = _run(calls)
    assert series[1]["data"] == [{"__name__": "up", "instance": "x", "job": "a"}]
    assert labels[1]["data"] == ["__name__", "instance", "job"]
    assert values[1]["data"] == ["a", "b"]
    assert empty[0] == 400 and "at least one non-empty matcher" in empty[1]["error"]


def test_fanout_merges_replicas_by_exact_timestamp():
    a = Labels.from_dict({"__name__": "m", "i": "1"})
    b = Labels.from_dict({"__name__": "m", "i": "2"})
    s1 = [Series(a, np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0]))]
    s2 = [Series(a, np.array([2, 3, 4]), np.array([2.0, 3.0, 4.0])), Series(b, np.array([5]), np.array([5.0]))]
    merged = merge_series([s1, s2])
    assert [m.labels for m in merged] == [a, b]
    assert merged[0].timestamps_ms.tolist() == [1, 2, 3, 4] and merged[0].values.tolist() == [1, 2, 3, 4]


def test_whole_arrays_format_exactly_as_one_value_at_a_time():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000),
        rng.integers(-10**17, 10**17, 200).astype(float),
        np.round(rng.random(200) * 100, 2),
        [0.0, -0.0, np.nan, np.inf, -np.inf, 1e15, 1e16, -1e15, 123456789012345.0, 1e-4, 9.999e-5, 5e-324,
         1.7976931348623157e308],
    ])
    assert format_values(values) == [format_value(float(v)) for v in values]
    times = np.array([-1500, -1000, 0, 1, 999, 1000, 1795783205944, 1000])
    assert format_timestamps(times) == [format_ts(int(t)) for t in times]


def test_a_result_without_a_shard_is_flagged_partial_and_a_whole_one_is_not():
    from shardmon.model.storage import SeriesSet

    class OneShardDown:
        def __init__(self, inner):
            self.inner = inner

        def select(self, matchers, start_ms, end_ms, **kwargs):
            got = self.inner.select(matchers, start_ms, end_ms, **kwargs)
            return SeriesSet(got.series, ["partial response: shard 1 (127.0.0.1:1) failed: unavailable"], True)

    async def main(partial):
        st = _storage()
        queried = OneShardDown(st) if partial else st
        app = PrometheusAPI(Engine(queried), queried, default_timeout_ms=10_000).app()
        async with TestClient(TestServer(app)) as client:
            return await _get(client, "/api/v1/query", query="up", time="600")

    status, body = asyncio.run(main(True))
    assert status == 200 and body["status"] == "success" and len(body["data"]["result"]) == 2
    assert body["isPartial"] is True and "shard 1" in body["warnings"][0]
    status, body = asyncio.run(main(False))
    assert "isPartial" not in body and "warnings" not in body


def test_the_endpoints_grafana_also_calls_answer_empty():
    async def calls(client):
        return [await _get(client, path) for path in ("/api/v1/query_exemplars", "/api/v1/rules", "/api/v1/alerts")]

    (s1, ex), (s2, rules), (s3, alerts) = _run(calls)
    assert (s1, s2, s3) == (200, 200, 200)
    assert ex == {"status": "success", "data": []}
    assert rules["data"] == {"groups": []} and alerts["data"] == {"alerts": []}


def test_targets_are_answered_by_the_ingest_service_and_passed_through():
    async def main():
        seen = {}

        async def ingest_targets(request):
            seen.update(request.query)
            return web.json_response({"status": "success", "data": {"activeTargets": [], "droppedTargets": []}})

        ingest = web.Application()
        ingest.router.add_get("/api/v1/targets", ingest_targets)
        async with TestServer(ingest) as fake_ingest:
            st = _storage()
            app = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000,
                                ingest_api=f"127.0.0.1:{fake_ingest.port}").app()
            bare = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000).app()
            async with TestClient(TestServer(app)) as client, TestClient(TestServer(bare)) as unconfigured:
                return seen, await _get(client, "/api/v1/targets", state="active"), \
                    await _get(unconfigured, "/api/v1/targets")

    seen, (status, body), (status2, body2) = asyncio.run(main())
    assert status == 200 and body["data"] == {"activeTargets": [], "droppedTargets": []}
    assert seen == {"state": "active"}
    assert status2 == 503 and body2["errorType"] == "unavailable"


def test_rules_and_alerts_are_answered_by_the_rulers_api_and_passed_through():
    async def main():
        seen = []

        async def rules(request):
            seen.append((request.path, dict(request.query)))
            return web.json_response({"status": "success", "data": {"groups": [{"name": "g"}]}})

        async def alerts(request):
            seen.append((request.path, dict(request.query)))
            return web.json_response({"status": "error", "errorType": "unavailable", "error": "x"}, status=503)

        rulers = web.Application()
        rulers.router.add_get("/api/v1/rules", rules)
        rulers.router.add_get("/api/v1/alerts", alerts)
        async with TestServer(rulers) as fake_rulers:
            st = _storage()
            app = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000, rules_api=f"127.0.0.1:{fake_rulers.port}").app()
            bare = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000).app()
            gone = PrometheusAPI(Engine(st), st, default_timeout_ms=10_000, rules_api="127.0.0.1:1").app()
            async with TestClient(TestServer(app)) as client, TestClient(TestServer(bare)) as unconfigured, \
                    TestClient(TestServer(gone)) as down:
                out = [await _get(client, "/api/v1/rules", type="alert"), await _get(client, "/api/v1/alerts"),
                       await _get(unconfigured, "/api/v1/rules"), await _get(unconfigured, "/api/v1/alerts"),
                       await _get(down, "/api/v1/rules")]
                out.append((await client.post("/api/v1/rules")).status)  # GET only, as Prometheus 2.42
                return seen, out

    seen, (rules, alerts, no_rules, no_alerts, down, post) = asyncio.run(main())
    assert rules == (200, {"status": "success", "data": {"groups": [{"name": "g"}]}})
    assert alerts[0] == 503 and alerts[1]["errorType"] == "unavailable"
    assert seen == [("/api/v1/rules", {"type": "alert"}), ("/api/v1/alerts", {})]
    assert no_rules == (200, {"status": "success", "data": {"groups": []}})
    assert no_alerts == (200, {"status": "success", "data": {"alerts": []}})
    assert down[0] == 503 and "the rulers' API at 127.0.0.1:1 does not answer" in down[1]["error"]
    assert post == 405


def test_a_warning_without_the_partial_flag_is_no_partial_answer():
    from shardmon.model.storage import SeriesSet

    class Worded:
        def __init__(self, inner):
            self.inner = inner

        def select(self, matchers, start_ms, end_ms, **kwargs):
            got = self.inner.select(matchers, start_ms, end_ms, **kwargs)
            return SeriesSet(got.series, ["partial response: said, but not flagged"], False)

    async def main():
        queried = Worded(_storage())
        app = PrometheusAPI(Engine(queried), queried, default_timeout_ms=10_000).app()
        async with TestClient(TestServer(app)) as client:
            return await _get(client, "/api/v1/query", query="up", time="600")

    status, body = asyncio.run(main())
    assert status == 200 and body["warnings"] == ["partial response: said, but not flagged"]
    assert "isPartial" not in body


def test_limits_answer_400_before_parsing_and_422_while_loading():
    async def calls(c):
        deep = await c.post("/api/v1/query", data={"query": "(" * 20_000 + "1" + ")" * 20_000})
        long = await c.post("/api/v1/query", data={"query": 'up{job="' + "a" * 300_000 + '"}'})
        series = await _get(c, "/api/v1/series", **{"match[]": "(" * 200 + "up" + ")" * 200})
        return (deep.status, json.loads(await deep.text())), (long.status, json.loads(await long.text())), series

    (s1, deep), (s2, long), (s3, series) = _run(calls)
    assert (s1, deep["errorType"]) == (400, "bad_data") and "querier.max_query_depth" in deep["error"]
    assert (s2, long["errorType"]) == (400, "bad_data") and "querier.max_query_length" in long["error"]
    assert (s3, series["errorType"]) == (400, "bad_data") and "querier.max_query_depth" in series["error"]

    async def over_budget():
        st = _storage()
        app = PrometheusAPI(Engine(st, max_samples=10), st, default_timeout_ms=10_000).app()
        async with TestClient(TestServer(app)) as client:
            return await _get(client, "/api/v1/query_range", query="up", start="0", end="600", step="15")

    status, body = asyncio.run(over_budget())
    assert status == 422 and body["errorType"] == "execution"
    assert body["error"].startswith("query processing would load too many samples into memory in query execution")


def test_a_query_whose_client_disconnects_is_called_off():
    from shardmon.querier import metrics

    class Endless:
        """A Querier whose select runs until its query is called off."""

        def __init__(self):
            self.running = threading.Event()
            self.stopped = threading.Event()

        def select(self, matchers, start_ms, end_ms, *, budget=None, **kwargs):
            self.running.set()
            try:
                while True:
                    budget.check()
                    time.sleep(0.01)
            finally:
                self.stopped.set()

    endless = Endless()

    async def main():
        app = PrometheusAPI(Engine(endless), endless, default_timeout_ms=60_000).app()
        async with TestServer(app) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /api/v1/query?query=up&time=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert await asyncio.get_running_loop().run_in_executor(None, endless.running.wait, 10)
            writer.close()
            return await asyncio.get_running_loop().run_in_executor(None, endless.stopped.wait, 5)

    before = metrics.QUERIES.labels("http", "instant", "canceled")._value.get()
    assert asyncio.run(main()), "the select went on after its client left"
    assert metrics.QUERIES.labels("http", "instant", "canceled")._value.get() == before + 1
