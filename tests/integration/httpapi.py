"""HTTP helpers of the integration tests, in one place: a request that returns the status instead of
raising; JSON APIs (Prometheus's HTTP API of the querier or of a real Prometheus, the ingest service's,
the push API's); an instant vector as a dict; a sample of a component's own ``/metrics``; a remote write
checked to be acknowledged and then visible; and the hostile bodies and push storms the hostile-input
tests send.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import NamedTuple

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.procs import wait_until

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Response(NamedTuple):
    status: int
    body: bytes
    headers: Message
    #: How long the request took, from sending to the end of the body.
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


def with_params(url: str, params: dict | None) -> str:
    return f"{url}?{urllib.parse.urlencode(params)}" if params else url


def request(method: str, url: str, body: bytes | None = None, *, headers: dict | None = None, timeout: float = 60,
            context=None, dropped_as_status_0: bool = False) -> Response:
    """One HTTP request; an error status is returned, not raised. A connection that fails or is dropped
    raises (an OSError), or with ``dropped_as_status_0`` comes back as status 0 with the error as body."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            data = resp.read()
            return Response(resp.status, data, resp.headers, time.monotonic() - t0)
    except urllib.error.HTTPError as exc:
        data = exc.read()
        return Response(exc.code, data, exc.headers, time.monotonic() - t0)
    except OSError as exc:
        if not dropped_as_status_0:
            raise
        return Response(0, repr(exc).encode(), Message(), time.monotonic() - t0)


def get_json(url: str, params: dict | None = None, *, data: dict | None = None, timeout: float = 60):
    """The JSON body of a GET (with ``data``: a form POST). An error status raises urllib's HTTPError
    (an OSError), as does a refused connection."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(urllib.request.Request(with_params(url, params), data=body), timeout=timeout) as resp:
        return json.load(resp)


def call_api(base: str, path: str, *, method: str = "GET", timeout_s: float = 60, dropped_as_status_0: bool = False,
             **params) -> tuple[int, dict, float]:
    """(status, JSON body, seconds) of a Prometheus-style API call: GET with ``params`` in the URL, POST
    as a form (``timeout_s`` is the client's; a ``timeout`` in ``params`` is the API's). A body that is
    not JSON comes back as ``{"raw": text}``."""
    if method == "GET":
        resp = request("GET", with_params(f"{base}{path}", params), timeout=timeout_s,
                       dropped_as_status_0=dropped_as_status_0)
    else:
        resp = request(method, f"{base}{path}", urllib.parse.urlencode(params).encode(), timeout=timeout_s,
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       dropped_as_status_0=dropped_as_status_0)
    try:
        body = resp.json()
    except ValueError:
        body = {"raw": resp.text}
    return resp.status, body, resp.seconds


def vector(base: str, expr: str, *, method: str = "GET", **params) -> dict[frozenset, float]:
    """An instant query's result as {frozenset of (label, value): value}; the query must succeed."""
    status, body, _ = call_api(base, "/api/v1/query", method=method, query=expr, **params)
    assert status == 200 and body["status"] == "success", body
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in body["data"]["result"]}


def scrape_owners(ingest_url: str, pool: str) -> dict[str, str]:
    """The ingest service's active targets of scrape pool ``pool``: scrape URL -> the scraper that owns it."""
    active = get_json(f"{ingest_url}/api/v1/targets", {"state": "active"})["data"]["activeTargets"]
    return {t["scrapeUrl"]: t["scraper"] for t in active if t["scrapePool"] == pool}


def metric(base: str, name: str, default: float | None = 0.0, **labels: str) -> float | None:
    """The sum of the samples named ``name`` with these labels (among others) on ``base``'s /metrics;
    ``default`` when there are none."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(values) if values else default


def assert_written_and_visible(write_url: str, query_base: str, name: str, value: float,
                               bound_s: float, *, query_method: str = "GET") -> float:
    """Remote-write one present-day sample of ``name``: acknowledged (204) within ``bound_s``, then
    visible to an instant query within ``bound_s``. Returns when it was acknowledged (time.monotonic)."""
    from shardmon.ingest.remote_write import encode
    from shardmon.model.labels import Labels

    now = int(time.time() * 1000)
    resp = request("POST", write_url, encode([(Labels.from_dict({"__name__": name}), [(now, value)])]), headers=PROTOBUF)
    assert resp.status == 204 and resp.seconds < bound_s, (resp.status, resp.text, resp.seconds)
    acknowledged = time.monotonic()
    wait_until(lambda: vector(query_base, name, method=query_method) == {frozenset({"__name__": name}.items()): value},
               bound_s, f"{name} to be visible")
    assert time.monotonic() - acknowledged < bound_s
    return acknowledged


def snappy_declaring(body: bytes, declared: int) -> bytes:
    """A snappy block whose header declares ``declared`` decoded bytes instead of its own length."""
    old = 0
    while body[old] & 0x80:
        old += 1
    header = bytearray()
    while True:
        byte, declared = declared & 0x7F, declared >> 7
        header.append(byte | (0x80 if declared else 0))
        if not declared:
            break
    return bytes(header) + body[old + 1 :]


async def push_storm(base: str, n: int, body: Callable[[int], str], concurrency: int = 32) -> list[tuple[int, float]]:
    """``n`` pushes (PUT ``body(i)``), each to a group of its own, ``concurrency`` at a time: (status,
    seconds) of each."""
    out: list[tuple[int, float]] = []
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(i: int) -> None:
            async with sem:
                t0 = time.monotonic()
                async with session.put(f"{base}/metrics/job/storm/instance/i{i}", data=body(i)) as resp:
                    await resp.read()
                    out.append((resp.status, time.monotonic() - t0))

        await asyncio.gather(*(one(i) for i in range(n)))
    return out
