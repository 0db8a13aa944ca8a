"""A real HTTP scrape target exposing native histograms, for the tests of ingest and end to end.

:class:`NativeHistogramTarget` serves ``/metrics`` on a free loopback port (a thread of its own, so sync and
async tests can use it, and a Prometheus process can scrape it too). Every request first *advances* the
metrics by the next round of known observations (``OBSERVATIONS[k % len]``), then answers in the protobuf
format when the Accept header offers it (built with Shardmon's compiled ``io.prometheus.client`` schema),
else in the text format (classic series only, as client libraries do). :meth:`reset` starts the counters
over (a counter reset), :meth:`expected` is what a scrape that saw ``rounds`` rounds must have stored.

The metrics:

- ``test_latency_seconds``: a counter histogram with native buckets (schema 3, zero threshold 0.001) and
  classic buckets (0.01, 0.1, 1, 10);
- ``test_signed_value``: a native-only histogram (no classic buckets) with negative observations and
  observations in the zero bucket;
- ``test_float_ratio``: a native float histogram (``sample_count_float``, absolute counts): each round
  adds 0.5 to two buckets;
- ``test_requests_total``: a counter, the number of requests served.
"""

from __future__ import annotations

import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shardmon.ingest.exposition import encode_delimited
from shardmon.model.histogram import Histogram
from shardmon.model.pb import metrics_pb2 as pb

SCHEMA = 3
ZERO_THRESHOLD = 0.001
CLASSIC_BOUNDS = (0.01, 0.1, 1.0, 10.0)
#: Observations of test_latency_seconds per round (none on a bucket boundary).
OBSERVATIONS = ((0.003, 0.05, 0.7), (0.2, 3.0), (0.0005, 12.0, 0.05, 0.06))
#: Observations of test_signed_value per round: negative, zero bucket and positive.
SIGNED = ((-2.5, 0.0, 4.0), (-0.3, 0.0004, 1.5))
PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


def bucket_index(v: float, schema: int = SCHEMA) -> int:
    """The native bucket of |v| (v not on a boundary, |v| above the zero threshold)."""
    return math.ceil(math.log2(abs(v)) * 2**schema)


class _Native:
    """One native histogram's state: sparse buckets by index."""

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        self.sum = 0.0
        self.classic = [0] * len(CLASSIC_BOUNDS)

    def observe(self, v: float) -> None:
        self.count += 1
        self.sum += v
        if abs(v) <= ZERO_THRESHOLD:
            self.zero += 1
        else:
            side = self.pos if v > 0 else self.neg
            i = bucket_index(v)
            side[i] = side.get(i, 0) + 1
        for j, b in enumerate(CLASSIC_BOUNDS):
            if v <= b:
                self.classic[j] += 1

    @staticmethod
    def spans(buckets: dict[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
        spans: list[list[int]] = []
        deltas, prev, last = [], 0, None
        for i in sorted(buckets):
            if last is not None and i == last + 1:
                spans[-1][1] += 1
            else:
                spans.append([i - (last + 1 if last is not None else 0), 1])
            deltas.append(buckets[i] - prev)
            prev, last = buckets[i], i
        return [(o, n) for o, n in spans], deltas

    def message(self, classic: bool) -> pb.Histogram:
        h = pb.Histogram(sample_count=self.count, sample_sum=self.sum, schema=SCHEMA, zero_threshold=ZERO_THRESHOLD,
                         zero_count=self.zero)
        for side, spans_field, deltas_field in ((self.pos, h.positive_span, h.positive_delta),
                                                (self.neg, h.negative_span, h.negative_delta)):
            spans, deltas = self.spans(side)
            for o, n in spans:
                spans_field.add(offset=o, length=n)
            deltas_field.extend(deltas)
        if not self.pos and not self.neg:
            h.positive_span.add(offset=0, length=0)  # the no-op span that marks a histogram as native
        if classic:
            for b, c in zip(CLASSIC_BOUNDS, self.classic):
                h.bucket.add(upper_bound=b, cumulative_count=c)
        return h

    def histogram(self) -> Histogram:
        """As Shardmon stores it: an integer histogram, compacted (no empty span)."""
        ps, pd = self.spans(self.pos)
        ns, nd = self.spans(self.neg)
        return Histogram.from_deltas(schema=SCHEMA, zero_threshold=ZERO_THRESHOLD, zero_count=self.zero,
                                     count=self.count, sum=self.sum, positive_spans=ps, positive_deltas=pd,
                                     negative_spans=ns, negative_deltas=nd)


class NativeHistogramTarget:
    """The target (see the module docstring). Use as a context manager, or call start/stop."""

    def __init__(self) -> None:
        self.rounds = 0
        self.lock = threading.Lock()
        self._reset_state()
        self.requests: list[str] = []  # the Accept header of every request
        #: Per request, the native histograms it exposed (as :meth:`expected` gives them).
        self.snapshots: list[dict[str, Histogram]] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                accept = self.headers.get("Accept", "")
                body, ctype = target.serve(accept)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _reset_state(self) -> None:
        self.latency = _Native()
        self.signed = _Native()
        self.ratio_counts = [0.0, 0.0]
        self.served = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> NativeHistogramTarget:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> NativeHistogramTarget:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Start every counter over (the next scrape sees a counter reset)."""
        with self.lock:
            self._reset_state()

    def advance(self) -> None:
        """One round of observations."""
        k = self.rounds
        for v in OBSERVATIONS[k % len(OBSERVATIONS)]:
            self.latency.observe(v)
        for v in SIGNED[k % len(SIGNED)]:
            self.signed.observe(v)
        self.ratio_counts = [self.ratio_counts[0] + 0.5, self.ratio_counts[1] + 0.5]
        self.served += 1
        self.rounds += 1

    def serve(self, accept: str) -> tuple[bytes, str]:
        with self.lock:
            self.requests.append(accept)
            self.advance()
            self.snapshots.append(self._now())
            if "application/vnd.google.protobuf" in accept:
                return self.protobuf(), PROTOBUF
            return self.text().encode(), "text/plain; version=0.0.4; charset=utf-8"

    def ratio(self) -> Histogram:
        c = self.ratio_counts
        return Histogram(SCHEMA, 0.0, 0.0, sum(c), 0.75 * sum(c), ((1, 1), (2, 1)), (c[0], c[1]))

    def families(self) -> list[pb.MetricFamily]:
        lat = pb.MetricFamily(name="test_latency_seconds", help="Latency.", type=pb.HISTOGRAM)
        lat.metric.add(histogram=self.latency.message(classic=True)).label.add(name="path", value="/api")
        signed = pb.MetricFamily(name="test_signed_value", help="Signed values.", type=pb.HISTOGRAM)
        signed.metric.add(histogram=self.signed.message(classic=False))
        r = self.ratio()
        fh = pb.Histogram(sample_count_float=r.count, sample_sum=r.sum, schema=SCHEMA, positive_count=r.positive_buckets)
        for o, n in r.positive_spans:
            fh.positive_span.add(offset=o, length=n)
        ratio = pb.MetricFamily(name="test_float_ratio", help="A float histogram.", type=pb.HISTOGRAM)
        ratio.metric.add(histogram=fh)
        req = pb.MetricFamily(name="test_requests_total", help="Requests.", type=pb.COUNTER)
        req.metric.add(counter=pb.Counter(value=self.served))
        return [lat, signed, ratio, req]

    def protobuf(self) -> bytes:
        return encode_delimited(self.families())

    def text(self) -> str:
        lines = ["# TYPE test_latency_seconds histogram"]
        h = self.latency
        for b, c in zip(CLASSIC_BOUNDS, h.classic):
            lines.append(f'test_latency_seconds_bucket{{path="/api",le="{b}"}} {c}')
        lines += [f'test_latency_seconds_bucket{{path="/api",le="+Inf"}} {h.count}',
                  f'test_latency_seconds_sum{{path="/api"}} {h.sum!r}',
                  f'test_latency_seconds_count{{path="/api"}} {h.count}',
                  "# TYPE test_requests_total counter", f"test_requests_total {self.served}"]
        return "\n".join(lines) + "\n"

    def expected(self) -> dict[str, Histogram]:
        """The native histograms as they are now (after the last round served), by metric name."""
        with self.lock:
            return self._now()

    def _now(self) -> dict[str, Histogram]:
        return {"test_latency_seconds": self.latency.histogram(), "test_signed_value": self.signed.histogram(),
                "test_float_ratio": self.ratio()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
