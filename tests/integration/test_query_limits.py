"""Queries cannot exhaust the querier or the shards (issue 12, item 2), on real processes: three shards
on their own Redis, a querier that gives up on a silent shard after 2 s, and a "patient" one (60 s)
for the cancellation tests.

- A select over its budget stops early on the shard, which ends its stream naming the limit; through
  the querier that is Prometheus's 422, quickly, the subquery of the issue included.
- With a shard hung (SIGSTOP), queries answer within their timeout with the partial-response warning,
  several at once; the hung shard holds only its own share of the fan-out's threads.
- A query whose HTTP client disconnects, or whose gRPC caller gives up, stops: its shard calls are
  cancelled and it leaves the in-flight gauge, long before it would have ended by itself. A gRPC call's
  deadline is the query's: a shard still silent near it is left out, and the answer comes in time.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import yaml

from shardmon.client import QueryClient
from shardmon.model.errors import BadQueryError, QueryExecutionError, QueryLimitError, QueryTimeoutError
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.pb import query_pb2, query_pb2_grpc
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import QueryBudget
from shardmon.querier.fanout import FanoutQuerier
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import call_api, metric
from tests.integration.procs import Cluster, free_port, shardmon_proc, wait_until

N_SERIES = 10_000
N_SAMPLES = 20
STEP_MS = 15_000
NOW_MS = int(time.time() * 1000) // STEP_MS * STEP_MS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qlimits")
    c = Cluster(tmp, n_shards=3, scrape_configs=[])
    c.raw["querier"].update({"shard_response_timeout": "2s", "query_timeout": "30s", "max_series": 5000})
    c.config_path.write_text(yaml.safe_dump(c.raw, sort_keys=False))
    # The patient querier: the same shards, waits 60 s on a silent shard.
    patient_raw = json.loads(json.dumps(c.raw))
    c.patient_http, c.patient_grpc = free_port(), free_port()
    patient_raw["querier"].update({"http_address": f"127.0.0.1:{c.patient_http}",
                                   "grpc_address": f"127.0.0.1:{c.patient_grpc}", "shard_response_timeout": "60s",
                                   "query_timeout": "120s"})
    patient_path = tmp / "patient.yml"
    patient_path.write_text(yaml.safe_dump(patient_raw, sort_keys=False))
    c.patient = shardmon_proc("patient-querier", ["querier"], patient_path, c.logs, c.patient_http)
    c.start()
    c.patient.up()
    _load(c)
    yield c
    for s in c.shards:
        _resume(s)
    c.patient.stop()
    c.stop()


def _load(c: Cluster) -> None:
    """N_SERIES series of ``load`` spread over the shards, N_SAMPLES samples each up to NOW_MS; and ``small``."""
    labels = [Labels.from_dict({"__name__": "load", "i": str(i), "job": f"j{i % 10}"}) for i in range(N_SERIES)]
    small = [Labels.from_dict({"__name__": "small", "i": str(i)}) for i in range(30)]
    for shard, port in enumerate(c.shard_ports):
        mine = labels[shard::3] + small[shard::3]
        keys = [ls.canonical() for ls in mine]
        ids = np.array([ls.series_id() for ls in mine], dtype=np.uint64)
        client = ShardClient(shard, f"127.0.0.1:{port}")
        for k in range(N_SAMPLES):
            ts = NOW_MS - (N_SAMPLES - 1 - k) * STEP_MS
            batch = SampleBatch.of(ids, keys, np.arange(len(mine), dtype=np.uint32), np.full(len(mine), ts, np.int64),
                                   np.full(len(mine), float(k)))
            client.write(f"load-{shard}-{k}", batch, timeout_s=30)
        client.close()


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _pause(proc) -> None:
    proc.send_signal(signal.SIGSTOP)


def _resume(proc) -> None:
    proc.send_signal(signal.SIGCONT)


def _now_s() -> str:
    return f"{NOW_MS / 1000:.3f}"


# -- budgets: the shards stop, the querier answers 422 at once ----------------------------------------


def test_a_select_over_its_budget_stops_early_on_the_shard(cluster):
    client = ShardClient(0, f"127.0.0.1:{cluster.shard_ports[0]}")
    load = [Matcher(MatchType.EQ, "__name__", "load")]
    try:
        whole = client.series(load, 0, 2**62)
        assert len(whole) > 3000  # The shard holds a third of the series.

        received = []
        with pytest.raises(QueryLimitError) as err:
            for part in client.series_stream(load, 0, 2**62, max_series=100):
                received.extend(part)
        assert err.value.limit == "max_series"
        assert len(received) <= 100  # It stopped at its first piece, not after streaming everything.

        # The querier's points per series count: 86,401 points per series affords 578 series of 50M.
        received = []
        with pytest.raises(QueryLimitError) as err:
            for part in client.series_stream(load, 0, 2**62, max_samples=50_000_000, points_per_series=86_401):
                received.extend(part)
        assert err.value.limit == "max_samples" and len(received) <= 578

        # Within its budget the answer is whole.
        assert len(client.series(load, 0, 2**62, max_series=len(whole), max_samples=len(whole) * N_SAMPLES)) == \
            len(whole)
    finally:
        client.close()


def test_the_issues_subquery_over_10k_series_is_refused_quickly_with_prometheus_422(cluster):
    before = metric(_url(cluster.http_port), "shardmon_querier_queries_refused_total", limit="max_samples")
    status, body, elapsed = call_api(_url(cluster.http_port), "/api/v1/query", query="max_over_time(load[1d:1s])",
                                   time=_now_s())
    assert status == 422 and body["errorType"] == "execution", body
    assert body["error"].startswith("query processing would load too many samples into memory in query execution")
    assert "querier.max_samples" in body["error"]
    assert elapsed < 5
    assert metric(_url(cluster.http_port), "shardmon_querier_queries_refused_total", limit="max_samples") == before + 1
    assert metric(_url(cluster.http_port), "shardmon_querier_shard_requests_total", outcome="limit") >= 1


def test_too_many_series_is_refused_while_loading(cluster):
    status, body, elapsed = call_api(_url(cluster.http_port), "/api/v1/query", query="count(load)", time=_now_s())
    assert status == 422 and "too many series" in body["error"] and "querier.max_series" in body["error"], body
    assert elapsed < 5
    # The same data within the limit answers.
    status, body, _ = call_api(_url(cluster.http_port), "/api/v1/query", query='count(load{job="j1"})', time=_now_s())
    assert status == 200 and body["data"]["result"][0]["value"][1] == str(N_SERIES // 10)
    # /api/v1/series has the same series limit.
    status, body, _ = call_api(_url(cluster.http_port), "/api/v1/series", **{"match[]": "load"})
    assert status == 422 and "querier.max_series" in body["error"]


def test_limits_on_the_query_text_answer_400_naming_the_limit(cluster):
    deep = "(" * 20_000 + "1" + ")" * 20_000
    req = urllib.request.Request(f"http://127.0.0.1:{cluster.http_port}/api/v1/query",
                                 data=urllib.parse.urlencode({"query": deep}).encode(), method="POST")
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("a 20,000-deep query was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        body = json.loads(exc.read())
    assert body["errorType"] == "bad_data" and "querier.max_query_depth" in body["error"]
    # The querier is alive and answers.
    status, body, _ = call_api(_url(cluster.http_port), "/api/v1/query", query="count(small)", time=_now_s())
    assert status == 200 and body["data"]["result"][0]["value"][1] == "30"
    # The gRPC API: INVALID_ARGUMENT for the text, FAILED_PRECONDITION over the budget.
    with QueryClient(f"127.0.0.1:{cluster.grpc_port}", timeout_s=30) as client:
        with pytest.raises(BadQueryError, match="querier.max_query_depth"):
            client.instant(deep, NOW_MS)
        with pytest.raises(QueryExecutionError, match="too many samples.*querier.max_samples"):
            client.instant("max_over_time(load[1d:1s])", NOW_MS)
        assert client.instant("count(small)", NOW_MS).series[0].values[0] == 30


# -- a hung shard --------------------------------------------------------------------------------------


def test_with_a_hung_shard_queries_answer_partial_within_their_timeout_several_at_once(cluster):
    hung = cluster.shards[1]
    _warm_up(cluster.http_port)
    _pause(hung)
    try:
        def one(i: int):
            return call_api(_url(cluster.http_port), "/api/v1/query_range", timeout_s=30, query=f"sum(small) + {i}",
                          start=f"{(NOW_MS - 120_000) / 1000:.3f}", end=_now_s(), step="15", timeout="10s")

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(one, range(12)))
        for status, body, elapsed in answers:
            assert status == 200 and body.get("isPartial") is True, body
            assert any("shard 1" in w for w in body["warnings"]), body["warnings"]
            assert elapsed < 10  # Within the query's timeout: the silent shard was given up after 2 s.
        # And the healthy shards' part is there: 20 of the 30 series.
        assert answers[0][1]["data"]["result"][0]["values"][-1][1] == str(20 * (N_SAMPLES - 1))
    finally:
        _resume(hung)
    # Back: whole answers, no warning.
    status, body, _ = call_api(_url(cluster.http_port), "/api/v1/query", query="count(small)", time=_now_s())
    assert status == 200 and "isPartial" not in body and body["data"]["result"][0]["value"][1] == "30"


def test_a_hung_shard_holds_only_its_share_of_the_fan_out_and_its_further_calls_fail_at_once(cluster):
    clients = [ShardClient(i, f"127.0.0.1:{p}") for i, p in enumerate(cluster.shard_ports)]
    fanout = FanoutQuerier(clients, response_timeout_s=60, calls_per_shard=2)
    small = [Matcher(MatchType.EQ, "__name__", "small")]
    hung = cluster.shards[2]
    assert len(fanout.select(small, 0, 2**62).series) == 30  # Connected to every shard (see _warm_up).
    _pause(hung)
    try:
        ended = []

        def stuck():
            t0 = time.monotonic()
            try:
                res = fanout.select(small, 0, 2**62, budget=QueryBudget(timeout_s=8))
                ended.append((time.monotonic() - t0, "partial" if res.partial else "whole"))
            except QueryTimeoutError:
                ended.append((time.monotonic() - t0, "timed out"))

        threads = [threading.Thread(target=stuck) for _ in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: [sh._in_flight for sh in fanout._shards] == [0, 0, 2], 5,
                   "both of shard 2's threads to wait on it, the other shards' calls done")
        # Shard 2's share is used up: a third select does not queue behind them.
        t0 = time.monotonic()
        res = fanout.select(small, 0, 2**62, budget=QueryBudget(timeout_s=8))
        assert time.monotonic() - t0 < 1
        assert res.partial and len(res.series) == 20 and "shard 2" in res.warnings[0] and "fan-out" in res.warnings[0]
        for t in threads:
            t.join(20)
        # They ended near their own deadline (shard 2 given up with a quarter of it, at most 1 s, left;
        # or the shard call's gRPC deadline or the budget's, whichever is seen first), not after the
        # 60 s of the response timeout, and never as a whole answer.
        assert len(ended) == 2 and all(7 < took < 12 and how != "whole" for took, how in ended), ended
    finally:
        _resume(hung)
        fanout.close()
    wait_until(lambda: fanout._shards[2]._in_flight == 0, 10, "shard 2's threads to be free again")


# -- cancellation ------------------------------------------------------------------------------------


def test_a_query_whose_http_client_disconnects_stops(cluster):
    port = cluster.patient_http
    hung = cluster.shards[2]
    canceled = metric(_url(port), "shardmon_querier_queries_total", api="http", kind="instant", outcome="canceled")
    cancelled_calls = metric(_url(port), "shardmon_querier_shard_requests_total", shard="2", outcome="cancelled")
    _warm_up(port)
    _pause(hung)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": "sum(small)", "time": _now_s()})
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(lambda: metric(_url(port), "shardmon_querier_queries_in_flight") == 1, 10, "the query to be running")
        time.sleep(0.5)
        sock.close()
        # Without the cancellation it would wait 60 s on shard 2 (the patient querier's response timeout).
        wait_until(lambda: metric(_url(port), "shardmon_querier_queries_in_flight") == 0, 5, "the query to stop")
        assert metric(_url(port), "shardmon_querier_queries_total", api="http", kind="instant",
                       outcome="canceled") == canceled + 1
        assert metric(_url(port), "shardmon_querier_shard_requests_total", shard="2", outcome="cancelled") > cancelled_calls
    finally:
        _resume(hung)


def test_a_grpc_query_whose_caller_gives_up_stops(cluster):
    port = cluster.patient_http
    hung = cluster.shards[0]
    _warm_up(port)
    calls = metric(_url(port), "shardmon_querier_shard_requests_total", shard="0")
    canceled = metric(_url(port), "shardmon_querier_queries_total", api="grpc", kind="instant", outcome="canceled")
    _pause(hung)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{cluster.patient_grpc}")
        try:
            call = query_pb2_grpc.QueryStub(channel).Instant.future(
                query_pb2.InstantQueryRequest(query="sum(small)", time_ms=NOW_MS))  # no deadline
            wait_until(lambda: metric(_url(port), "shardmon_querier_queries_in_flight") == 1, 5, "the query to run")
            time.sleep(0.5)
            call.cancel()
        finally:
            channel.close()
        # The caller went away: evaluation and the call to shard 0 ended with it, not after the
        # patient querier's 60 s.
        wait_until(lambda: metric(_url(port), "shardmon_querier_queries_in_flight") == 0, 5, "the query to stop")
        wait_until(lambda: metric(_url(port), "shardmon_querier_queries_total", api="grpc", kind="instant",
                                   outcome="canceled") == canceled + 1, 5, "the query counted as canceled")
        assert metric(_url(port), "shardmon_querier_shard_requests_total", shard="0") == calls + 1
    finally:
        _resume(hung)


def test_a_grpc_call_deadline_becomes_the_querys_and_a_silent_shard_is_left_out_before_it(cluster):
    port = cluster.patient_http
    hung = cluster.shards[0]
    _warm_up(port)
    calls = metric(_url(port), "shardmon_querier_shard_requests_total", shard="0")
    _pause(hung)
    try:
        with QueryClient(f"127.0.0.1:{cluster.patient_grpc}", timeout_s=3) as client:
            t0 = time.monotonic()
            res = client.instant("sum(small)", NOW_MS)
            took = time.monotonic() - t0
        # The call's 3 s deadline became the query's (not the patient querier's 60 s): shard 0, still
        # silent with a quarter of that left, was left out, and the answer came in time, partial.
        assert took < 3, took
        assert res.partial and any("shard 0" in w for w in res.warnings), res.warnings
        assert res.series[0].values[0] == 20 * (N_SAMPLES - 1)
        wait_until(lambda: metric(_url(port), "shardmon_querier_queries_in_flight") == 0, 5, "the query to end")
        assert metric(_url(port), "shardmon_querier_shard_requests_total", shard="0") == calls + 1
    finally:
        _resume(hung)


def _warm_up(port: int) -> None:
    """A query through this querier, so that its channels to every shard are connected: a call to a
    stopped shard then waits (a hung shard) instead of failing to connect at once (a down one)."""
    status, body, _ = call_api(_url(port), "/api/v1/query", query="count(small)", time=_now_s())
    assert status == 200 and "isPartial" not in body
