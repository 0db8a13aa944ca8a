"""Query latency, Shardmon against Prometheus on the same data.

Prometheus scrapes the farm and remote-writes every sample to Shardmon's receiver, so both hold the
same samples. After a fill period, a fixed query set runs against both HTTP APIs, as instant and as
range queries at the same times: each query several times, the median kept; every result is also
compared (equal within a relative 1e-6, as Prometheus's own tests compare).

    bench/run --queries                      # 100 targets x 1,000 series (100k series), 5 min of data
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import time
import urllib.error
import urllib.parse
from pathlib import Path

from bench.systems import Prometheus, Shardmon, http_get

# The fixed query set: raw selectors, rate, sum by, histogram_quantile, topk, count by, *_over_time,
# a ratio of two aggregations.
QUERIES = [
    ("raw selector", 'node_memory_MemFree_bytes'),
    ("raw selector, regex", 'http_requests_total{code=~"5.."}'),
    ("rate", "rate(http_requests_total[1m])"),
    ("sum by rate", "sum by (code) (rate(http_requests_total[1m]))"),
    ("histogram_quantile", "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))"),
    ("topk", "topk(10, rate(node_network_receive_bytes_total[1m]))"),
    ("count by", "count by (instance) (node_cpu_seconds_total)"),
    ("avg_over_time", "avg_over_time(app_queue_depth[2m])"),
    ("max_over_time by", "max by (instance) (max_over_time(node_memory_MemFree_bytes[2m]))"),
    ("ratio", 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'),
    ("cpu utilisation", 'avg by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))'),
]


def _query(base: str, expr: str, at: float | None, start: float | None, end: float | None, step: float) -> tuple[float, dict]:
    if at is not None:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    else:
        url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    t0 = time.perf_counter()
    try:
        body = json.loads(http_get(url, 300))
    except urllib.error.HTTPError as exc:  # 4xx/5xx carry the API's error envelope
        body = json.loads(exc.read() or b"{}") or {"status": "error", "error": str(exc)}
    return time.perf_counter() - t0, body


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y))


def same_result(a: dict, b: dict) -> str | None:
    """None when two API results agree (values within 1e-6 relative), else what differs."""
    if a.get("status") != b.get("status"):
        return f"status {a.get('status')} vs {b.get('status')}: {a.get('error') or b.get('error')}"
    if a["status"] != "success":
        return None
    da, db = a["data"], b["data"]
    if da["resultType"] != db["resultType"]:
        return f"result type {da['resultType']} vs {db['resultType']}"
    if da["resultType"] == "scalar":
        return None if _close(da["result"][1], db["result"][1]) and da["result"][0] == db["result"][0] else "scalar"
    key = "value" if da["resultType"] == "vector" else "values"
    ra = {json.dumps(r["metric"], sort_keys=True): r[key] for r in da["result"]}
    rb = {json.dumps(r["metric"], sort_keys=True): r[key] for r in db["result"]}
    if ra.keys() != rb.keys():
        return f"series differ: {sorted(ra.keys() ^ rb.keys())[:3]}"
    for k in ra:
        pa = [ra[k]] if key == "value" else ra[k]
        pb = [rb[k]] if key == "value" else rb[k]
        if len(pa) != len(pb):
            return f"{k}: {len(pa)} vs {len(pb)} points"
        for (ta, va), (tb, vb) in zip(pa, pb):
            if ta != tb or not _close(va, vb):
                return f"{k}: ({ta}, {va}) vs ({tb}, {vb})"
    return None


def run_queries(shardmon_url: str, prometheus_url: str, end: float, window_s: float, step_s: float,
                repeats: int, queries=QUERIES) -> list[dict]:
    rows = []
    for name, expr in queries:
        for kind in ("instant", "range"):
            at = end if kind == "instant" else None
            args = (at, end - window_s, end, step_s)
            times: dict[str, list[float]] = {"shardmon": [], "prometheus": []}
            bodies = {}
            for _ in range(repeats):
                for system, base in (("prometheus", prometheus_url), ("shardmon", shardmon_url)):
                    t, body = _query(base, expr, *args)
                    times[system].append(t)
                    bodies[system] = body
            data = bodies["prometheus"].get("data", {})
            rows.append({
                "name": name, "query": expr, "kind": kind,
                "shardmon_ms": statistics.median(times["shardmon"]) * 1000,
                "prometheus_ms": statistics.median(times["prometheus"]) * 1000,
                "series": len(data["result"]) if data.get("resultType") in ("vector", "matrix") else 1,
                "mismatch": same_result(bodies["shardmon"], bodies["prometheus"]),
            })
            r = rows[-1]
            print(f"  {kind:7} {name:22} S {r['shardmon_ms']:8.1f} ms  P {r['prometheus_ms']:8.1f} ms  "
                  f"x{r['shardmon_ms'] / max(r['prometheus_ms'], 1e-9):6.2f}  {r['mismatch'] or 'same'}", flush=True)
    return rows


def markdown(run: dict) -> str:
    w = run["workload"]
    lines = [
        f"# Query latency: {w['targets']} targets x {w['series_per_target']} series",
        "",
        f"{w['targets'] * w['series_per_target']:,} series scraped by Prometheus every {w['interval_s']:g} s for "
        f"{w['fill_s']:.0f} s and remote-written to Shardmon ({w['shards']} shards), so both hold the same samples. "
        f"Instant queries at the end of the fill; range queries over its last {w['window_s']:.0f} s, step "
        f"{w['step_s']:g} s. Median of {w['repeats']} runs each, through each system's HTTP API, on "
        f"{run['machine']['cpus']} CPUs, {run['date']}.",
        "",
        "| query | kind | Shardmon ms | Prometheus ms | ratio | result |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in run["rows"]:
        lines.append(f"| `{r['query']}` | {r['kind']} | {r['shardmon_ms']:.1f} | {r['prometheus_ms']:.1f} | "
                     f"{r['shardmon_ms'] / max(r['prometheus_ms'], 1e-9):.2f} | {r['mismatch'] or 'same'} |")
    worst = max(run["rows"], key=lambda r: r["shardmon_ms"] / max(r["prometheus_ms"], 1e-9))
    slower = sum(1 for r in run["rows"] if r["shardmon_ms"] > r["prometheus_ms"])
    lines += ["", f"Shardmon is slower than Prometheus on {slower} of {len(run['rows'])} queries; the worst ratio is "
              f"{worst['shardmon_ms'] / max(worst['prometheus_ms'], 1e-9):.2f} (`{worst['query']}`, {worst['kind']}). "
              f"Results differ on {sum(1 for r in run['rows'] if r['mismatch'])} queries."]
    return "\n".join(lines) + "\n"


def chart(run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run["rows"]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["shardmon_ms"] for r in rows], 0.4, label="shardmon", color="#3b7dd8")
    ax.bar([x + 0.2 for x in xs], [r["prometheus_ms"] for r in rows], 0.4, label="prometheus", color="#e6522c")
    ax.set_xticks(list(xs), [f"{r['name']} ({r['kind'][0]})" for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (log)")
    ax.legend()
    ax.set_title("Query latency, Shardmon vs Prometheus on the same data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_query_bench(out: Path, farm_port: int, targets: int, series: int, interval_s: float, fill_s: float,
                    window_s: float, step_s: float, repeats: int, shards: int, work: Path, machine: dict) -> dict:
    (work / "shardmon").mkdir(parents=True, exist_ok=True)
    (work / "prometheus").mkdir(parents=True, exist_ok=True)
    shardmon = Shardmon(work / "shardmon", farm_port, targets, interval_s, shards=shards, scrapers=1, scrape=False,
                        receiver=True)
    prometheus = Prometheus(work / "prometheus", farm_port, targets, interval_s, remote_write_url=shardmon.remote_write_url)
    shardmon.start()
    try:
        prometheus.start()
        try:
            print(f"[queries] filling for {fill_s:.0f}s", flush=True)
            time.sleep(fill_s)
            end = time.time() - 3 * interval_s  # Remote write has delivered everything scraped before this.
            rows = run_queries(shardmon.query_url(), prometheus.query_url(), end, window_s, step_s, repeats)
        finally:
            prometheus.stop()
    finally:
        shardmon.stop()
    run = {
        "label": f"queries-{targets}x{series}",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "workload": {"targets": targets, "series_per_target": series, "interval_s": interval_s, "fill_s": fill_s,
                     "window_s": window_s, "step_s": step_s, "repeats": repeats, "shards": shards},
        "rows": rows,
    }
    folder = out / run["label"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(run, indent=1))
    (folder / "report.md").write_text(markdown(run))
    try:
        chart(run, folder / "chart.png")
    except ImportError:
        pass
    return run
