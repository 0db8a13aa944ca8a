"""Rule evaluation time, Shardmon's evaluator against Prometheus on the same data and the same rule file.

Prometheus scrapes the farm and remote-writes every scraped sample to Shardmon's receiver (as
``querybench.py``), so both hold the same samples; rule outputs (``bench:*``, ``ALERTS*``) are not
remote-written. A generated rule file (100 recording and 100 alerting rules in groups of 10: ``sum by``
of rates, ratios, ``histogram_quantile`` over the farm's histograms, ``*_over_time``, alerts over
thresholds with ``for`` and templated annotations) is loaded by both:

1. Prometheus evaluates it itself (``rule_files``); after the fill, each group's
   ``prometheus_rule_group_last_duration_seconds``, ``..._last_evaluation_samples`` and evaluation time are
   read from its ``/metrics`` for several evaluations. Then its rules are reloaded away, so the next phase
   runs on the same background load (scraping, remote write, the shards' ingest).
2. Shardmon evaluates each group with :meth:`shardmon.querier.rules.Group.run_once` at the very
   timestamps Prometheus evaluated it at (its slot, from the group's hashed offset), one round per
   Prometheus evaluation, with the pieces a ruler uses: the querier's ``Engine`` over the real fan-out to
   the real shards (``shardmon.querier.server.build``, as a ruler builds it; rule queries through
   ``engine_query_func``, which reads a group's selectors once per evaluation), the output written through
   the shards' write path and acknowledged (``shardmon.rules.appender.LoopAppender`` over the ingest
   ``Forwarder``'s ``write_now``), ``run_once`` in a worker thread off the event loop, as the ruler's
   ``GroupRunner`` runs it. **It runs in this process, not in a Ray actor**, and one group at a time.
   The group's own ``evaluation_time_s`` (queries and acknowledged writes) is the measure.

Per group: the median evaluation time in each, the Shardmon / Prometheus ratio and the samples each
produced at each evaluation (they must agree).

    bench/run --rules                        # 100 targets x 1,000 series (100k series)
    bench/run --rules --smoke                # 10 x 100, under two minutes
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import statistics
import time
import urllib.parse
from pathlib import Path

import yaml

from bench.pyspy import SelfProfile
from bench.systems import Prometheus, Shardmon, http_get

#: Rule outputs Prometheus keeps to itself (Shardmon writes its own).
RULE_OUTPUTS = "bench:.*|ALERTS|ALERTS_FOR_STATE"
TARGET = "no slower than Prometheus (ratio <= 1.0)"
_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.25, 0.6, 0.8, 0.85)


def _recording(v: int) -> list[dict]:
    """The 10 recording rules of group ``v`` (windows and quantiles vary with ``v``)."""
    w, w2, q = f"{60 + 10 * v}s", f"{120 + 10 * v}s", _QUANTILES[v]
    rules = [
        ("http_requests:rate", f"sum by (job, handler) (rate(http_requests_total[{w}]))"),
        ("http_requests_get:rate_by_code", f'sum by (instance, code) (rate(http_requests_total{{method="GET"}}[{w}]))'),
        ("http_errors:ratio", f'sum by (instance) (rate(http_requests_total{{code=~"5.."}}[{w}])) '
                              f"/ sum by (instance) (rate(http_requests_total[{w}]))"),
        ("http_latency:quantile", f"histogram_quantile({q}, sum by (job, handler, le) "
                                  f"(rate(http_request_duration_seconds_bucket[{w}])))"),
        ("queue_depth:avg", f"avg_over_time(app_queue_depth[{w2}])"),
        ("cpu_busy:avg_rate", f'avg by (instance) (rate(node_cpu_seconds_total{{mode!="idle"}}[{w}]))'),
        ("network_receive:sum_rate", f"sum by (instance) (rate(node_network_receive_bytes_total[{w}]))"),
        ("filesystem:used_ratio", "1 - node_filesystem_avail_bytes / node_filesystem_size_bytes"),
        ("http_latency:mean", f"rate(http_request_duration_seconds_sum[{w}]) "
                              f"/ rate(http_request_duration_seconds_count[{w}])"),
        ("temperature:max", f"max_over_time(app_temperature_celsius[{w2}])"),
    ]
    return [{"record": f"bench:{name}:{v}", "expr": expr} for name, expr in rules]


def _alerting(v: int) -> list[dict]:
    """The 10 alerting rules of group ``v`` (thresholds vary with ``v``, so some fire and some do not)."""
    w = f"{60 + 10 * v}s"
    rules = [
        ("HighErrorRate", f'sum by (instance) (rate(http_requests_total{{code=~"5.."}}[{w}])) > {0.1 * v:g}'),
        ("HighLatency", f"histogram_quantile(0.99, sum by (instance, le) "
                        f"(rate(http_request_duration_seconds_bucket[{w}]))) > {2 + v}"),
        ("CpuIdleLow", f'avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{w}])) < {0.80 + 0.01 * v:g}'),
        ("QueueBacklog", f"avg_over_time(app_queue_depth[{w}]) > {40 + 3 * v}"),
        ("DiskFilling", f"node_filesystem_avail_bytes / node_filesystem_size_bytes < {0.3 + 0.02 * v:g}"),
        ("HotSensor", f"app_temperature_celsius > {20 + 0.3 * v:g}"),
        ("NetworkErrors", f"rate(node_network_receive_errs_total[{w}]) > {0.0005 * v:g}"),
        ("ErrorBudgetBurn", f'sum by (instance, handler) (rate(http_requests_total{{code=~"5.."}}[{w}])) '
                            f"/ sum by (instance, handler) (rate(http_requests_total[{w}])) > {0.001 * (v + 1):g}"),
        ("MemoryLow", f"node_memory_MemAvailable_bytes / 1e9 < {10.5 + 0.1 * v:g}"),
        ("TrafficSpike", f"sum by (instance, handler) (rate(http_requests_total[{w}])) > {40 + 5 * v}"),
    ]
    return [{"alert": f"{name}{v}", "expr": expr, "for": ["0s", "30s", "1m", "2m", "5m"][i % 5],
             "labels": {"severity": "critical" if i % 3 == 0 else "warning", "team": "bench"},
             "annotations": {"summary": f"{name} on {{{{ $labels.instance }}}}",
                             "description": "value {{ $value | humanize }} on {{ $labels.instance }} ({{ $labels.job }})"}}
            for i, (name, expr) in enumerate(rules)]


def staggered_name(base: str, file: str, interval_ms: int, slot: int, slots: int) -> str:
    """``base`` with the first suffix ``~k`` that puts the group's hashed evaluation offset (Prometheus's,
    from file and name) in the first half of ``slot`` of ``slots`` equal parts of the interval, so the
    groups' evaluations are spread evenly over it and do not overlap while each takes under
    ``interval / slots / 2``."""
    from shardmon.querier.rules import group_hash

    width = interval_ms * 1_000_000 // slots
    for k in range(100_000):
        name = f"{base}~{k}"
        if (group_hash(file, name) % (interval_ms * 1_000_000)) - slot * width in range(0, width // 2):
            return name
    raise RuntimeError(f"no suffix staggers {base}")


def rule_groups(file: str | None = None, interval_ms: int = 0) -> dict:
    """The rule file: groups ``recording-0..9`` and ``alerting-0..9`` of 10 rules each. With ``file`` and
    ``interval_ms``, each name gets a suffix that staggers the groups' evaluations (:func:`staggered_name`)."""
    groups = [{"name": f"recording-{v}", "rules": _recording(v)} for v in range(10)] \
        + [{"name": f"alerting-{v}", "rules": _alerting(v)} for v in range(10)]
    if file is not None and interval_ms:
        for i, g in enumerate(groups):
            g["name"] = staggered_name(g["name"], file, interval_ms, i, len(groups))
    return {"groups": groups}


# -- Prometheus's side --------------------------------------------------------------------------------

_GROUP_METRIC = re.compile(r'^prometheus_rule_group_(last_duration_seconds|last_evaluation_samples|'
                           r'last_evaluation_timestamp_seconds|iterations_missed_total)\{rule_group="([^"]*)"\} (\S+)$',
                           re.M)


def prometheus_groups(base: str) -> dict[str, dict[str, float]]:
    """Per group key (``FILE;NAME``) its last duration, samples, evaluation time and missed iterations."""
    out: dict[str, dict[str, float]] = {}
    for m in _GROUP_METRIC.finditer(http_get(f"{base}/metrics").decode()):
        out.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return out


#: Prometheus writes no ALERTS before a group's ``for`` state is restored, after its second evaluation:
#: evaluations are measured from the third on, where both systems write the same samples.
FIRST_MEASURED_ITERATION = 3


def record_prometheus(base: str, keys: list[str], rounds: int, interval_s: float, fill_s: float = 0.0,
                      log=print) -> dict[str, list[dict]]:
    """Poll Prometheus's ``/metrics`` from its start until every group has ``rounds`` evaluations from its
    :data:`FIRST_MEASURED_ITERATION` on and after ``fill_s``: for each, its slot (ms), its duration (s)
    and the samples it produced. (Polled every second or more often, so no evaluation is missed; one
    before the first poll would only make the count start later.)"""
    from shardmon.querier.rules import eval_timestamp_ns

    start = time.monotonic()
    seen: dict[str, set[float]] = {k: set() for k in keys}
    evals: dict[str, list[dict]] = {k: [] for k in keys}
    deadline = start + max(fill_s, FIRST_MEASURED_ITERATION * interval_s) + (rounds + 2) * interval_s + 60
    logged = False
    while any(len(e) < rounds for e in evals.values()) and time.monotonic() < deadline:
        time.sleep(min(1.0, interval_s / 10))
        if not logged and time.monotonic() - start >= fill_s:
            log(f"[rules] recording {rounds} evaluations of each group by Prometheus (from its evaluation "
                f"{FIRST_MEASURED_ITERATION} on)", flush=True)
            logged = True
        now = prometheus_groups(base)
        for k in keys:
            g = now.get(k, {})
            t = g.get("last_evaluation_timestamp_seconds")
            if not t or t in seen[k]:
                continue
            seen[k].add(t)
            if len(seen[k]) >= FIRST_MEASURED_ITERATION and time.monotonic() - start >= fill_s \
                    and len(evals[k]) < rounds:
                file, name = k.split(";", 1)
                slot = eval_timestamp_ns(file, name, int(interval_s * 1000), int(t * 1e9)) // 1_000_000
                evals[k].append({"ts_ms": slot, "duration_s": g["last_duration_seconds"],
                                 "samples": int(g["last_evaluation_samples"])})
    missing = [k for k, e in evals.items() if len(e) < rounds]
    if missing:
        raise RuntimeError(f"Prometheus did not evaluate {missing[:3]} {rounds} times in time")
    return evals


def check_slot(base: str, group: dict, ts_ms: int) -> bool | None:
    """Whether Prometheus wrote the group's output at ``ts_ms`` (so our slot is its own); None when the
    group produced nothing then."""
    records = "|".join(r["record"] for r in group["rules"] if "record" in r)
    alerts = "|".join(r["alert"] for r in group["rules"] if "alert" in r)
    sel = f'{{__name__=~"{records}"}}' if records else f'ALERTS_FOR_STATE{{alertname=~"{alerts}"}}'
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": f'timestamp(label_replace({sel}, "name", "$1", "__name__", "(.+)"))', "time": f"{ts_ms / 1000:.3f}"})
    result = json.loads(http_get(url))["data"]["result"]
    if not result:
        return None
    return all(abs(float(r["value"][1]) * 1000 - ts_ms) < 0.5 for r in result)


# -- Shardmon's side ----------------------------------------------------------------------------------

class _Discard:
    """An Appender that keeps nothing (only while profiling re-evaluations at timestamps already written)."""

    def append(self, batch) -> None:
        pass


async def _evaluate_shardmon(config_path: Path, rule_path: str, interval_ms: int, slots: dict[str, list[int]],
                             profile_s: float = 0.0, log=print, prefetch: bool = True,
                             prometheus_s: dict[str, float] | None = None) -> tuple[dict[str, list[dict]], dict]:
    """Evaluate each group at each of its slots with ``Group.run_once``, on the engine over the real
    fan-out, writing through the ruler's LoopAppender; per group and evaluation its time and samples. With
    ``profile_s``, the group furthest behind Prometheus (its median over ``prometheus_s``, Prometheus's median
    seconds per group; without them the slowest) is then evaluated again and again under py-spy (its output
    discarded)."""
    from prometheus_client import REGISTRY

    from shardmon.ingest.forwarder import Forwarder
    from shardmon.model.config import load_config
    from shardmon.querier.rules import engine_query_func, load_groups
    from shardmon.querier.server import build
    from shardmon.rules.appender import LoopAppender
    from shardmon.shards.client import ShardConnection

    config = load_config(config_path)
    engine, fanout = build(config)
    forwarder = Forwarder(config.shards.nodes, config.ingest, "rulesbench", config.shards.replication_factor,
                          ShardConnection.of(config))
    # As a ruler: the engine over the fan-out, the output written through the forwarder's write_now on this
    # loop (LoopAppender), each group's run_once in a worker thread, one group at a time.
    appender = LoopAppender(forwarder, asyncio.get_running_loop())
    groups = load_groups([rule_path], interval_ms, query=engine_query_func(engine, prefetch=prefetch), appender=appender,
                         querier=fanout)
    out: dict[str, list[dict]] = {k: [] for k in groups}
    try:
        rounds = min(len(s) for s in slots.values())
        # Prometheus's measured evaluations are its third and later: warm. Shardmon's evaluator gets one
        # unmeasured evaluation of each group first (a copy of the groups with their own state, output
        # discarded), so its first measured one is not the process's first query of those series.
        warm = load_groups([rule_path], interval_ms, query=engine_query_func(engine, prefetch=prefetch),
                           appender=_Discard(), querier=fanout)
        t0 = time.perf_counter()
        for key, group in warm.items():
            await asyncio.to_thread(group.run_once, slots[key][0])
        log(f"[rules] shardmon warm-up: {time.perf_counter() - t0:.1f}s for {len(warm)} groups (not measured)", flush=True)
        for r in range(rounds):
            round_t0 = time.perf_counter()
            for key, group in groups.items():
                ts_ms = slots[key][r]
                await asyncio.to_thread(group.run_once, ts_ms)
                # The group's own duration (prometheus_rule_group_last_duration_seconds's counterpart): its
                # queries and the writes of its output, acknowledged by the shards.
                took = group.evaluation_time_s
                errors = [f"{rule.name}: {rule.last_error}" for rule in group.rules if rule.health == "err"]
                samples = REGISTRY.get_sample_value("shardmon_rule_group_last_evaluation_samples", {"rule_group": key})
                out[key].append({"ts_ms": ts_ms, "duration_s": took, "samples": int(samples or 0), "errors": errors})
            took = time.perf_counter() - round_t0
            log(f"[rules] shardmon round {r + 1}/{rounds}: {took:.1f}s for {len(groups)} groups", flush=True)
        if profile_s > 0:
            key = max(groups, key=lambda k: statistics.median(e["duration_s"] for e in out[k])
                      / (prometheus_s or {}).get(k, 1.0))
            group = groups[key]
            group.appender = _Discard()
            log(f"[rules] profiling {group.name} with py-spy for {profile_s:.0f}s", flush=True)
            with SelfProfile(profile_s, focus="rules/group.py:Group.run_once") as prof:
                t_end = time.monotonic() + profile_s + 1
                i = 0
                while time.monotonic() < t_end:
                    await asyncio.to_thread(group.run_once, slots[key][i % rounds])
                    i += 1
            out["__profile__"] = [{"group": group.name, "evaluations": i, "markdown": prof.markdown(),
                                   "summary": prof.result}]
    finally:
        await forwarder.close()
        fanout.close()
    return out, dict(forwarder.dropped)


# -- the run and its report ---------------------------------------------------------------------------

def overlaps(evals: dict[str, list[dict]]) -> tuple[int, int]:
    """How many of Prometheus's group evaluations (slot to slot + duration) overlapped another group's, of
    how many: its groups run concurrently, so overlapping ones share the CPUs and take longer."""
    spans = [(e["ts_ms"], e["ts_ms"] + e["duration_s"] * 1000, k) for k, v in evals.items() for e in v]
    hit = sum(1 for lo, hi, k in spans if any(k2 != k and lo2 < hi and lo < hi2 for lo2, hi2, k2 in spans))
    return hit, len(spans)


def summarise(rule_file: dict, rule_path: str, prom: dict[str, list[dict]], shard: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for g in rule_file["groups"]:
        key = f"{rule_path};{g['name']}"
        p, s = prom[key], shard[key]
        n = min(len(p), len(s))
        p_ms = statistics.median(e["duration_s"] for e in p[:n]) * 1000
        s_ms = statistics.median(e["duration_s"] for e in s[:n]) * 1000
        rows.append({
            "group": g["name"], "kind": "recording" if "record" in g["rules"][0] else "alerting",
            "shardmon_ms": s_ms, "prometheus_ms": p_ms, "ratio": s_ms / max(p_ms, 1e-9),
            "shardmon_samples": [e["samples"] for e in s[:n]], "prometheus_samples": [e["samples"] for e in p[:n]],
            "samples_agree": [e["samples"] for e in s[:n]] == [e["samples"] for e in p[:n]],
            "errors": sorted({err for e in s[:n] for err in e["errors"]}),
        })
    return rows


def markdown(run: dict) -> str:
    w, o = run["workload"], run["overall"]
    lines = [
        f"# Rule evaluation: {w['targets']} targets x {w['series_per_target']} series",
        "",
        f"**Shardmon here is the rulers' evaluator, in the benchmark's process rather than in a Ray actor:** each "
        f"group evaluated by `Group.run_once` in a worker thread, on the querier's `Engine` over the real fan-out to "
        f"{w['shards']} real shards, its output written and acknowledged through the ruler's `LoopAppender` "
        f"(the ingest `Forwarder`'s `write_now`), one group at a time."
        + (" **Without the prefetch** (`--no-prefetch`): each rule read the shards on its own."
           if "no prefetch" in run["evaluator"] else ""),
        "",
        f"{w['targets'] * w['series_per_target']:,} series scraped by Prometheus every {w['scrape_interval_s']:g} s and "
        f"remote-written to Shardmon, so both hold the same samples. One rule file of {w['groups']} groups "
        f"(10 of 10 recording rules, 10 of 10 alerting rules), evaluation interval {w['evaluation_interval_s']:g} s, "
        f"{w['fill_s']:.0f} s of data first. Prometheus evaluated each group {w['rounds']} times from its "
        f"{FIRST_MEASURED_ITERATION}rd evaluation on "
        f"(`prometheus_rule_group_last_duration_seconds` from its /metrics); then its rules were reloaded away and "
        f"Shardmon evaluated each group at the same {w['rounds']} timestamps, after one unmeasured warm-up "
        f"evaluation of each (a copy of the groups, output discarded). Medians per group; on "
        f"{run['machine']['cpus']} CPUs, {run['date']}, {run['machine'].get('prometheus', '')}.",
        "",
        "| group | kind | Shardmon ms | Prometheus ms | ratio | samples per evaluation (Shardmon / Prometheus) |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in run["rows"]:
        agree = "same" if r["samples_agree"] else "DIFFER"
        lines.append(f"| {r['group']} | {r['kind']} | {r['shardmon_ms']:.1f} | {r['prometheus_ms']:.1f} | "
                     f"{r['ratio']:.2f} | {agree}: {r['shardmon_samples']} / "
                     f"{r['prometheus_samples']} |")
    lines += [
        f"| **all groups** (sum of medians) | | **{o['shardmon_ms']:.1f}** | **{o['prometheus_ms']:.1f}** | "
        f"**{o['ratio']:.2f}** | {'same' if o['samples_agree'] else 'DIFFER'} |",
        "",
        f"Target: {TARGET}. **{'Met' if o['target_met'] else 'Not met'}**: Shardmon takes {o['ratio']:.2f}x "
        f"Prometheus's time over the rule set; slower on {o['groups_slower']} of {len(run['rows'])} groups "
        f"(ratios {o['min_ratio']:.2f} to {o['max_ratio']:.2f}).",
        f"Samples produced: {'equal in every group and evaluation' if o['samples_agree'] else 'DIFFERENT (see table)'}. "
        f"Slot check (Prometheus's output is at the timestamps Shardmon evaluated at): {run['slot_check']}. "
        f"Rule errors in Shardmon: {sum(len(r['errors']) for r in run['rows'])}. "
        f"Forwarder drops: {run['forwarder_dropped'] or 'none'}. "
        f"Prometheus's missed iterations: {run['prometheus_missed_iterations']:g}.",
        "",
        f"Shardmon's times are each group's `evaluation_time_s` (what `shardmon_rule_group_last_duration_seconds` "
        f"reports): its queries and the writes of its output until the shards acknowledged them. Prometheus's "
        f"include appending to its head. Prometheus's evaluations that overlapped another group's: "
        f"{run.get('prometheus_overlaps', 'not measured')}.",
    ]
    if run.get("profile"):
        p = run["profile"]
        lines += ["", "## Where Shardmon's time goes", "",
                  f"py-spy on this process while `{p['group']}` (the group furthest behind Prometheus) was evaluated {p['evaluations']} times again at its "
                  f"timestamps (output discarded):", "", p["markdown"]]
    return "\n".join(lines) + "\n"


def run_rules_bench(out: Path, farm_port: int, targets: int, series: int, scrape_interval_s: float,
                    eval_interval_s: float, fill_s: float, rounds: int, shards: int, work: Path, machine: dict,
                    label: str | None = None, profile_s: float = 0.0, log=print, prefetch: bool = True) -> dict:
    (work / "shardmon").mkdir(parents=True, exist_ok=True)
    (work / "prometheus").mkdir(parents=True, exist_ok=True)
    rule_path = str((work / "rules.yml").resolve())
    rule_file = rule_groups(rule_path, int(eval_interval_s * 1000))
    Path(rule_path).write_text(yaml.safe_dump(rule_file, sort_keys=False))
    keys = [f"{rule_path};{g['name']}" for g in rule_file["groups"]]
    shardmon = Shardmon(work / "shardmon", farm_port, targets, scrape_interval_s, shards=shards, scrapers=1,
                        scrape=False, receiver=True)
    prometheus = Prometheus(work / "prometheus", farm_port, targets, scrape_interval_s,
                            remote_write_url=shardmon.remote_write_url, rule_files=[rule_path],
                            evaluation_interval_s=eval_interval_s, remote_write_drop=RULE_OUTPUTS)
    shardmon.start()
    try:
        prometheus.start()
        try:
            log(f"[rules] filling for {fill_s:.0f}s at least (Prometheus evaluates the rules meanwhile)", flush=True)
            prom = record_prometheus(prometheus.query_url(), keys, rounds, eval_interval_s, fill_s, log)
            prometheus.drop_rules()
            missed = sum(g.get("iterations_missed_total", 0) for g in prometheus_groups(prometheus.query_url()).values())
            slots = {k: [e["ts_ms"] for e in v] for k, v in prom.items()}
            prometheus_s = {k: max(statistics.median(e["duration_s"] for e in v), 1e-6) for k, v in prom.items()}
            checks = [check_slot(prometheus.query_url(), g, slots[k][-1]) for g, k in zip(rule_file["groups"], keys)]
            slot_check = (f"{sum(c is True for c in checks)} groups at the same timestamp, "
                          f"{sum(c is False for c in checks)} not, {sum(c is None for c in checks)} without output")
            # Remote write has delivered everything scraped before the last slot.
            wait = max(5.0, 2 * scrape_interval_s) - (time.time() - max(max(s) for s in slots.values()) / 1000)
            time.sleep(max(0.0, wait))
            log("[rules] Shardmon evaluates the same groups at the same timestamps (the rulers' evaluator, "
                "in this process)", flush=True)
            shard, dropped = asyncio.run(_evaluate_shardmon(shardmon.config_path, rule_path,
                                                            int(eval_interval_s * 1000), slots, profile_s, log,
                                                            prefetch, prometheus_s))
            profile = shard.pop("__profile__", [None])[0]
        finally:
            prometheus.stop()
    finally:
        shardmon.stop()
    rows = summarise(rule_file, rule_path, prom, shard)
    s_ms, p_ms = sum(r["shardmon_ms"] for r in rows), sum(r["prometheus_ms"] for r in rows)
    overall = {"shardmon_ms": s_ms, "prometheus_ms": p_ms, "ratio": s_ms / max(p_ms, 1e-9),
               "samples_agree": all(r["samples_agree"] for r in rows),
               "groups_slower": sum(1 for r in rows if r["ratio"] > 1.0),
               "min_ratio": min(r["ratio"] for r in rows), "max_ratio": max(r["ratio"] for r in rows)}
    overall["target_met"] = overall["ratio"] <= 1.0
    run = {
        "label": label or f"rules-{targets}x{series}",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "evaluator": "Group.run_once in a worker thread with the rulers' engine and LoopAppender, in the bench's "
                     "process (not a Ray actor)" + ("" if prefetch else "; no prefetch (rule by rule)"),
        "workload": {"targets": targets, "series_per_target": series, "scrape_interval_s": scrape_interval_s,
                     "evaluation_interval_s": eval_interval_s, "fill_s": fill_s, "rounds": rounds, "shards": shards,
                     "groups": len(rows), "recording_rules": 100, "alerting_rules": 100},
        "rows": rows, "overall": overall, "slot_check": slot_check, "forwarder_dropped": dropped,
        "prometheus_missed_iterations": missed, "profile": profile,
        "prometheus_overlaps": "{} of {}".format(*overlaps(prom)),
        "raw": {"prometheus": prom, "shardmon": shard},
        "rule_file": rule_file,
    }
    folder = out / run["label"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(run, indent=1))
    (folder / "report.md").write_text(markdown(run))
    for r in rows:
        log(f"  {r['group']:12} S {r['shardmon_ms']:8.1f} ms  P {r['prometheus_ms']:8.1f} ms  x{r['ratio']:6.2f}  "
            f"samples {'same' if r['samples_agree'] else 'DIFFER'} {r['shardmon_samples']} / {r['prometheus_samples']}"
            f"{'  errors: ' + '; '.join(r['errors']) if r['errors'] else ''}", flush=True)
    return run
