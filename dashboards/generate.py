"""Generates ``shardmon-pipeline.json``, the Grafana dashboard of Shardmon's own metrics.

RED (rate, errors, duration) and USE (utilisation, saturation, errors) per component, from the series
that self-monitoring scrapes (job ``shardmon``, label ``component``). Import the JSON in Grafana with
a Prometheus data source pointing at the querier's HTTP address (or at a Prometheus scraping
Shardmon). Run ``python dashboards/generate.py`` after changing the panels; a test checks the JSON
is up to date and that every metric it names exists.
"""

from __future__ import annotations

import json
from pathlib import Path

R = "[$__rate_interval]"
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    ("Overview", [
        ("stat:Targets up", "short", [("up", 'sum(up{job!="shardmon"})'), ("configured", 'count(up{job!="shardmon"})')]),
        ("Samples appended per second", "short", [("samples/s", f"sum(rate(shardmon_shard_samples_appended_total{R}))")]),
        ("Series per shard", "short", [("{{instance}}", "sum by (instance) (shardmon_shard_series)")]),
        ("Components up", "short", [("{{component}}", 'sum by (component) (up{job="shardmon"})')]),
    ]),
    ("Scrapers", [
        ("Scrapes per second, by outcome", "short",
         [("{{outcome}}", f"sum by (outcome) (rate(shardmon_scraper_scrapes_total{R}))")]),
        ("Scrape duration", "s", [
            ("p50", f"histogram_quantile(0.5, sum by (le) (rate(shardmon_scraper_scrape_duration_seconds_bucket{R})))"),
            ("p99", f"histogram_quantile(0.99, sum by (le) (rate(shardmon_scraper_scrape_duration_seconds_bucket{R})))"),
        ]),
        ("Samples dropped per second, by reason", "short",
         [("{{reason}}", f"sum by (reason) (rate(shardmon_scraper_samples_dropped_total{R}))")]),
        ("Samples refused by shards per second, by reason", "short",
         [("{{reason}}", f"sum by (reason) (rate(shardmon_scraper_samples_rejected_total{R}))")]),
        ("Queue (saturation)", "short", [("shard {{shard}}", "sum by (shard) (shardmon_scraper_queue_samples)")]),
        ("Event-loop lag (saturation)", "s", [("{{instance}}", "max by (instance) (shardmon_scraper_event_loop_lag_seconds)")]),
        ("Write retries per second, by shard", "short",
         [("shard {{shard}}", f'sum by (shard) (rate(shardmon_scraper_writes_total{{outcome="retry"}}{R}))')]),
        ("Targets per scraper", "short", [("{{instance}}", "sum by (instance) (shardmon_scraper_targets)")]),
    ]),
    ("Shards", [
        ("Writes per second, by outcome", "short", [("{{outcome}}", f"sum by (outcome) (rate(shardmon_shard_writes_total{R}))")]),
        ("Write duration", "s", [
            ("p99", f"histogram_quantile(0.99, sum by (le) (rate(shardmon_shard_write_duration_seconds_bucket{R})))"),
        ]),
        ("Samples refused per second, by reason", "short",
         [("{{reason}}", f"sum by (reason) (rate(shardmon_shard_samples_rejected_total{R}))")]),
        ("Head samples and WAL entries", "short", [
            ("head {{instance}}", "sum by (instance) (shardmon_shard_head_samples)"),
            ("WAL {{instance}}", "sum by (instance) (shardmon_shard_wal_entries)"),
        ]),
        ("Blocks", "short", [("{{instance}}", "sum by (instance) (shardmon_shard_blocks)")]),
        ("Bytes per sample in blocks", "short",
         [("{{instance}}", "sum by (instance) (shardmon_shard_block_bytes) / sum by (instance) (shardmon_shard_block_samples)")]),
        ("Read requests per second, by outcome", "short",
         [("{{outcome}}", f"sum by (outcome) (rate(shardmon_shard_series_requests_total{R}))")]),
        ("Read duration", "s", [
            ("p99", f"histogram_quantile(0.99, sum by (le) (rate(shardmon_shard_series_request_duration_seconds_bucket{R})))"),
        ]),
    ]),
    ("Querier", [
        ("HTTP requests per second, by handler and code", "short",
         [("{{handler}} {{code}}", f"sum by (handler, code) (rate(shardmon_querier_http_requests_total{R}))")]),
        ("Queries per second, by outcome", "short",
         [("{{api}} {{kind}} {{outcome}}", f"sum by (api, kind, outcome) (rate(shardmon_querier_queries_total{R}))")]),
        ("Query duration", "s", [
            ("p99 {{kind}}", f"histogram_quantile(0.99, sum by (le, kind) (rate(shardmon_querier_query_duration_seconds_bucket{R})))"),
        ]),
        ("Queries in flight (saturation)", "short", [("in flight", "sum(shardmon_querier_queries_in_flight)")]),
        ("Failed shard calls per second", "short",
         [("shard {{shard}}", f'sum by (shard) (rate(shardmon_querier_shard_requests_total{{outcome="error"}}{R}))')]),
    ]),
    ("Receiver", [
        ("Requests per second, by handler and code", "short",
         [("{{handler}} {{code}}", f"sum by (handler, code) (rate(shardmon_receiver_requests_total{R}))")]),
        ("Remote-write samples per second, by outcome", "short",
         [("{{outcome}}", f"sum by (outcome) (rate(shardmon_receiver_samples_total{R}))")]),
        ("Request duration", "s", [
            ("p99 {{handler}}",
             f"histogram_quantile(0.99, sum by (le, handler) (rate(shardmon_receiver_request_duration_seconds_bucket{R})))"),
        ]),
        ("Pushed groups", "short", [("groups", "sum(shardmon_receiver_push_groups)")]),
    ]),
    ("Coordinator and processes", [
        ("Scrapers by state", "short", [("{{state}}", "sum by (state) (shardmon_coordinator_scrapers)")]),
        ("Scraper restarts", "short", [("restarts", f"sum(increase(shardmon_coordinator_scraper_restarts_total{R}))")]),
        ("CPU by component (utilisation)", "percentunit",
         [("{{component}}", f'sum by (component) (rate(process_cpu_seconds_total{{job="shardmon"}}{R}))')]),
        ("Memory by component", "bytes",
         [("{{component}}", 'sum by (component) (process_resident_memory_bytes{job="shardmon"})')]),
    ]),
]


def panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int) -> dict:
    kind = "timeseries"
    if title.startswith("stat:"):
        kind, title = "stat", title[len("stat:"):]
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 7, "w": 6, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def dashboard() -> dict:
    panels = []
    pid = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        for i, (title, unit, targets) in enumerate(row_panels):
            panels.append(panel(pid, title, unit, targets, (i % 4) * 6, y + (i // 4) * 7))
            pid += 1
        y += ((len(row_panels) + 3) // 4) * 7
    return {
        "title": "Shardmon pipeline",
        "uid": "shardmon-pipeline",
        "description": "RED and USE metrics of every Shardmon component (job shardmon, label component).",
        "tags": ["shardmon"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    out = Path(__file__).with_name("shardmon-pipeline.json")
    out.write_text(render())
    print(f"wrote {out}")
