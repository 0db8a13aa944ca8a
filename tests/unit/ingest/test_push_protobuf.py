"""A push in the protobuf delimited format (what a client library sends to push native histograms) over real
HTTP: Shardmon's push groups are text-only, so it is refused whole with the Pushgateway's 400 for a body it
cannot take, counted (``reason="protobuf_push"``), and the group keeps what it held."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from shardmon.ingest.exposition import encode_delimited
from shardmon.ingest.pushgateway import PushStore
from shardmon.ingest.receiver import REFUSED, Receiver
from shardmon.model.config import parse_config
from shardmon.model.pb import metrics_pb2 as pb

PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


def _native_histogram_body() -> bytes:
    mf = pb.MetricFamily(name="job_duration_seconds", type=pb.HISTOGRAM, help="Batch job durations.")
    m = mf.metric.add()
    h = m.histogram
    h.sample_count, h.sample_sum, h.schema, h.zero_threshold, h.zero_count = 3, 4.5, 3, 0.001, 1
    span = h.positive_span.add()
    span.offset, span.length = 5, 2
    h.positive_delta.extend([1, 0])
    return encode_delimited([mf])


def test_a_protobuf_push_with_a_native_histogram_is_refused_and_the_group_keeps_its_metrics():
    store = PushStore(None)
    receiver = Receiver(parse_config("receiver: {}\n"), None, store)
    before = REFUSED.labels("push", "protobuf_push")._value.get()

    async def main():
        async with TestClient(TestServer(receiver.pushgateway_app())) as client:
            ok = await client.put("/metrics/job/batch", data=b"# TYPE last_success gauge\nlast_success 17\n")
            refused = await client.put("/metrics/job/batch", data=_native_histogram_body(),
                                       headers={"Content-Type": PROTOBUF})
            text = await refused.text()
            exposed = await (await client.get("/metrics")).text()
            listed = await (await client.get("/api/v1/metrics")).json()
            return ok.status, refused.status, text, exposed, listed["data"]

    ok, status, text, exposed, groups = asyncio.run(main())
    assert ok == 200 and status == 400
    assert "protobuf push format is not supported" in text and "push the text format" in text
    assert REFUSED.labels("push", "protobuf_push")._value.get() == before + 1
    assert 'last_success{instance="",job="batch"} 17.0' in exposed and "job_duration_seconds" not in exposed
    (group,) = groups
    assert group["push_failure_time_seconds"] == 0 and list(group["metrics"]) == ["last_success"]
