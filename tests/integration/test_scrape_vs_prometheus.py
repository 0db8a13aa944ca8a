"""Differential: a real Prometheus 2.42 and Shardmon's scrape loop scrape the same bodies, store the same.

One local target serves, per case (a path and a scrape config), a sequence of bodies: the n-th request of
each scraper gets the n-th body (the last one repeats), so both scrapers see the same bodies in the same
order whatever their timing (gzip-compressed). Prometheus scrapes every second; the scrape loops scrape the same number of
times. Then, scrape by scrape, these must be equal: ``up``, ``scrape_samples_scraped``,
``scrape_samples_post_metric_relabeling``, ``scrape_series_added`` and every stored sample (labels and
value); and the last error where Shardmon uses Prometheus's words.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
from aiohttp import web

from shardmon.ingest.scrape_loop import ScrapeLoop
from shardmon.ingest.target import targets_from_config
from shardmon.model.config import parse_config
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from tests.integration.httpapi import get_json
from tests.integration.procs import free_port, prometheus_proc

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"
DROP_C = [{"source_labels": ["__name__"], "regex": "c", "action": "drop"}]
RENAME = [{"source_labels": ["__name__"], "regex": "(.*)_total", "target_label": "__name__", "replacement": "${1}_count"},
          {"source_labels": ["__name__"], "regex": "drop_me", "action": "drop"}]
OM_BODY = ('# TYPE foo counter\n# HELP foo Help.\nfoo_total 17.0 # {trace_id="abc"} 1.0\nfoo_created 1600000000.123\n'
           '# TYPE bar info\nbar_info{v="1"} 1\n# TYPE s stateset\ns{s="a"} 1\ns{s="b"} 0\n'
           '# TYPE g gaugehistogram\ng_bucket{le="1"} 2\ng_bucket{le="+Inf"} 3\ng_gcount 3\ng_gsum 2.5\n'
           '# TYPE u_seconds gauge\n# UNIT u_seconds seconds\nu_seconds{a="x\\"y"} 1.5\n# EOF\n')
STAMP = str(int(time.time() * 1000) - 10_000)  # an explicit timestamp the fresh Prometheus head accepts

# case -> (bodies, Content-Type, scrape config fields, whether the error is in Prometheus's words)
CASES: dict[str, tuple[list[str], str, dict, bool]] = {
    "repeats": (['a 1\na 2\nb{x="1",y="2"} 3\nb{x="1",y="2"} 4\n'], TEXT, {}, True),
    "parse_error": (["ok 1\nok2 2\nbad{ 2\n"], TEXT, {}, False),
    "error_after_good": (["ok 1\ngone 1\n", "ok 2\nbad{ 2\n", "ok 3\n"], TEXT, {}, False),
    "openmetrics": ([OM_BODY], OM, {}, True),
    "om_no_eof": (["a 1\n"], OM, {}, True),
    "om_after_eof": (["a 1\n# EOF\nb 1\n"], OM, {}, True),
    "om_as_text": (["a 1\n# EOF\n"], TEXT, {}, True),
    "sample_limit": (["a 1\nb 1\n", "a 1\nb 1\nc 1\n", "a 1\nb 2\n"], TEXT, {"sample_limit": 2}, True),
    "limit_after_relabel": (["a 1\nb 1\nc 1\n"], TEXT, {"sample_limit": 2, "metric_relabel_configs": DROP_C}, True),
    "label_limit": (['ok 1\na{x="1",y="2"} 1\n'], TEXT, {"label_limit": 4}, True),
    "name_length": (['ok 1\na{long_name="1"} 1\n'], TEXT, {"label_name_length_limit": 8}, True),
    "value_length": (['ok 1\na{x="long"} 1\n'], TEXT, {"label_value_length_limit": 3}, True),
    "series_added": (["a 1\nb 1\n", "a 1\nb 1\n", "a 1\nc 1\n", "a 1\nc 1\n"], TEXT, {}, True),
    "timestamps": ([f"a 1\nb 1 {STAMP}\n", "a 1\n"], TEXT, {}, True),
    "exported": (['a{job="x",instance="y",exported_job="z"} 1\nup 7\n'], TEXT, {}, True),
    "honor_labels": (['a{job="x",instance=""} 1\n'], TEXT, {"honor_labels": True}, True),
    "relabeling": (["req_total 1\ndrop_me 1\n"], TEXT, {"metric_relabel_configs": RENAME}, True),
    "repeated_label": (['ok 1\na{b="1",b="2"} 1\n'], TEXT, {}, True),
    "values": (["a NaN\nb +Inf\nc -Inf\nd 1e+10\ne -0\n"], TEXT, {}, True),
    "empty": ([""], TEXT, {}, True),
    "body_size_limit": (["aaaaaaaaaa 1\n"], TEXT, {"body_size_limit": "10B"}, True),
    "om_timestamps": ([f"a 1 {int(STAMP) / 1000 + 0.0009}\nb_total 2 {int(STAMP) // 1000} # {{t=\"x\"}} 1 1.5\n# EOF\n"],
                      OM, {}, True),
}
SYNTHETIC = ("up", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added")
SCRAPES = 4


def _scrape_config(case: str, port: int) -> dict:
    _, _, fields, _ = CASES[case]
    return {"job_name": case, "scrape_interval": "1s", "scrape_timeout": "1s", "metrics_path": f"/{case}",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"case": case}}], **fields}


def _by_scrape(samples: dict[Labels, list[tuple[int, float]]]) -> list[tuple[tuple, dict]]:
    """Per scrape (the timestamps of ``up``): the synthetic values and the stored samples of that scrape."""
    up = next(v for k, v in samples.items() if k.name == "up")
    out = []
    for t, _ in up[:SCRAPES]:
        report = tuple(next(v for ts, v in samples[k] if ts == t) for name in SYNTHETIC
                       for k in samples if k.name == name)
        stored = {}
        for k, points in samples.items():
            if k.name in SYNTHETIC or k.name == "scrape_duration_seconds":
                continue
            for ts, v in points:
                if ts == t or (ts != t and ts < up[0][0]):  # this scrape's, or exposed with an old timestamp
                    stored[(k, ts if ts != t else None)] = "NaN" if math.isnan(v) else v
        out.append((report, stored))
    return out


def test_prometheus_and_the_scrape_loop_store_the_same(tmp_path):
    served: dict[tuple[str, bool], int] = {}

    async def handler(request: web.Request) -> web.Response:
        case = request.match_info["case"]
        bodies, content_type, _, _ = CASES[case]
        key = (case, request.headers.get("User-Agent", "").startswith("Prometheus"))
        n = served[key] = served.get(key, 0) + 1
        resp = web.Response(body=bodies[min(n, len(bodies)) - 1].encode(), headers={"Content-Type": content_type})
        resp.enable_compression()  # gzip: both scrapers ask for it
        return resp

    async def main():
        port, p_port = free_port(), free_port()
        app = web.Application()
        app.router.add_get("/{case}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        config = {"scrape_configs": [_scrape_config(case, port) for case in CASES]}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        prometheus = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", p_port, tmp_path)
        try:
            await asyncio.to_thread(prometheus.up)
            ours = await _ours(config)
            theirs, errors = await asyncio.to_thread(_theirs, p_port)
        finally:
            await asyncio.to_thread(prometheus.stop)
            await runner.cleanup()
        return ours, theirs, errors

    ours, theirs, errors = asyncio.run(main())
    mismatches = []
    for case, (_, _, _, same_words) in CASES.items():
        (o_scrapes, o_error), t_scrapes = ours[case], theirs[case]
        if o_scrapes != t_scrapes:
            mismatches.append((case, "samples", o_scrapes, t_scrapes))
        t_error = errors[case]
        o_text = o_error.split(": ", 1)[1] if o_error.startswith("line ") else o_error
        if bool(o_error) != bool(t_error) or (same_words and o_text != t_error):
            mismatches.append((case, "error", o_error, t_error))
    assert not mismatches, "\n".join(map(repr, mismatches))


async def _ours(config: dict) -> dict:
    """Per case: the scrape loop's scrapes (as :func:`_by_scrape`) and its last error."""
    targets = targets_from_config(parse_config(json.dumps(config)))
    out = {}
    async with aiohttp.ClientSession() as session:
        for t in targets:
            storage = MemoryStorage()
            loop = ScrapeLoop(t, storage, session)
            for _ in range(SCRAPES):
                health = await loop.scrape_once()
                await asyncio.sleep(0.003)
            series = storage.select([Matcher(MatchType.RE, "__name__", ".+")], -(2**62), 2**62).series
            samples = {s.labels: [(int(ts), float(v)) for ts, v in zip(s.timestamps_ms, s.values)
                                  if not is_stale(v.reshape(1)).any()] for s in series}
            out[t.job] = (_by_scrape({k: v for k, v in samples.items() if v}), health.last_error)
    return out


def _get(port: int, path: str, **params) -> dict:
    return get_json(f"http://127.0.0.1:{port}{path}", params, timeout=10)["data"]


def _theirs(port: int) -> tuple[dict, dict]:
    """Per case: Prometheus's scrapes (as :func:`_by_scrape`) and the error of its last scrape."""
    deadline = time.monotonic() + 60
    while True:  # Until every case was scraped SCRAPES + 1 times (discovery alone takes ~5 s).
        try:
            counts = {r["metric"]["job"]: int(r["value"][1])
                      for r in _get(port, "/api/v1/query", query='count_over_time(up{case!=""}[1h])')["result"]}
        except urllib.error.HTTPError:  # 503 while its storage starts
            counts = {}
        if len(counts) == len(CASES) and min(counts.values()) > SCRAPES:
            break
        assert time.monotonic() < deadline, f"Prometheus scraped too little: {counts}"
        time.sleep(0.5)
    out = {}
    for case in CASES:
        result = _get(port, "/api/v1/query", query=f'{{case="{case}"}}[1h]')["result"]
        samples = {Labels.from_dict(r["metric"]): [(round(float(t) * 1000), float(v)) for t, v in r["values"]]
                   for r in result}
        out[case] = _by_scrape(samples)
    errors = {t["labels"]["job"]: t["lastError"] for t in _get(port, "/api/v1/targets")["activeTargets"]}
    return out, errors
