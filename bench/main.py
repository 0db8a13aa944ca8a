"""The benchmark harness: Shardmon and Prometheus side by side on the same target farm.

    bench/run                                   # 200 targets x 500 series every 5 s, both systems
    bench/run --targets 500 --series 1000       # the 100k samples/s workload
    bench/run --sweep                           # scale sweep: targets x shards
    bench/run --smoke                           # a tiny run (under a minute), as CI does
    bench/run --storage                         # the storage benchmark (bench/storagebench.py)
    bench/run --rules                           # rule evaluation time (bench/rulesbench.py)
    bench/run --histograms                      # native histograms, bytes per sample (bench/histbench.py)
    bench/run --assign                          # target assignment, 1,000,000 targets over 1,000 scrapers

For each system, one after the other on the same farm: start it, let it warm up, then measure over a
window: samples ingested per second, CPU seconds per million samples of all its processes (for
Shardmon: launcher, Redis, shards, querier, ingest, Ray's processes and the actors), peak memory (PSS),
whether any target was scraped late; then the latency of a fixed query set, then bytes per sample
once everything is flushed to blocks. The report (Markdown, JSON and a PNG chart) goes to
``bench/results/<date>/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.procstat import TreeSampler
from bench.systems import Prometheus, Shardmon, free_port, http_get, http_ok, query_once
from shardmon.procs import Child, ChildFailed

ROOT = Path(__file__).resolve().parents[1]

# The fixed query set: (name, kind, query); range queries cover the last 5 minutes (or the run).
QUERIES = [
    ("up", "instant", "up"),
    ("count_cpu", "instant", "count(node_cpu_seconds_total)"),
    ("sum_rate", "instant", "sum(rate(http_requests_total[1m]))"),
    ("raw_selector", "instant", 'http_request_duration_seconds_bucket{handler="/"}'),
    ("by_code_range", "range", "sum by (code) (rate(http_requests_total[1m]))"),
    ("max_mem_range", "range", "max by (instance) (node_memory_MemFree_bytes)"),
    ("avg_net_range", "range", "avg(rate(node_network_receive_bytes_total[1m]))"),
]


def start_farm(folder: Path, targets: int, series: int) -> tuple[Child, int]:
    """The target farm (bench/farm.py) on a free port, once it answers; ``.stop()`` ends it."""
    port = free_port()
    farm = Child("farm", [sys.executable, "-m", "bench.farm", "--port", str(port), "--targets", str(targets),
                          "--series", str(series)], folder / "farm.log",
                 lambda: http_ok(f"http://127.0.0.1:{port}/stats"), cwd=ROOT)
    try:
        farm.up(60)
    except ChildFailed as exc:
        raise RuntimeError(f"the farm did not start: {exc.log_tail[-2000:]}") from None
    return farm, port


def farm_stats(port: int, reset: bool = False) -> dict:
    return json.loads(http_get(f"http://127.0.0.1:{port}/stats{'?reset=1' if reset else ''}"))


def measure_queries(system, window_s: float, repeats: int) -> dict:
    end = time.time()
    start = end - min(300.0, window_s)
    out = {}
    for name, kind, q in QUERIES:
        times = []
        series = None
        for _ in range(repeats):
            if kind == "instant":
                t, body = query_once(system.query_url(), "/api/v1/query", {"query": q, "time": f"{end:.3f}"})
            else:
                t, body = query_once(system.query_url(), "/api/v1/query_range",
                                     {"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "15"})
            if body.get("status") != "success":
                raise RuntimeError(f"{system.name}: query {q!r} failed: {body}")
            series = len(body["data"]["result"]) if isinstance(body["data"]["result"], list) else 1
            times.append(t)
        out[name] = {"query": q, "kind": kind, "median_ms": statistics.median(times) * 1000,
                     "max_ms": max(times) * 1000, "series": series}
    return out


def run_system(system, farm_port: int, farm_proc, targets: int, series: int, interval_s: float, warmup_s: float,
               window_s: float, query_repeats: int, log=print) -> dict:
    log(f"[{system.name}] starting")
    system.start()
    sampler = TreeSampler([system.pid]).start()
    farm_sampler = TreeSampler([farm_proc.pid]).start()
    try:
        # Warm up: every target scraped at least once, then a little more.
        deadline = time.monotonic() + warmup_s + 120
        farm_stats(farm_port, reset=True)
        while farm_stats(farm_port)["targets_scraped"] < targets and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(warmup_s)
        log(f"[{system.name}] measuring for {window_s:.0f}s")
        farm_stats(farm_port, reset=True)
        cpu0, farm_cpu0, samples0, t0 = sampler.cpu_seconds(), farm_sampler.cpu_seconds(), system.samples_appended(), time.monotonic()
        by_process0, by_component0 = sampler.cpu_by_process(), sampler.cpu_by_component()
        time.sleep(window_s)
        cpu1, farm_cpu1, samples1, t1 = sampler.cpu_seconds(), farm_sampler.cpu_seconds(), system.samples_appended(), time.monotonic()
        by_process1, by_component1 = sampler.cpu_by_process(), sampler.cpu_by_component()
        ingest_peak, ingest_at_peak = sampler.peak_pss, dict(sampler.pss_at_peak)
        fs = farm_stats(farm_port)
        elapsed = t1 - t0
        ingested = samples1 - samples0
        expected = targets * (series + (4 if system.name == "shardmon" else 5)) / interval_s
        gaps = sorted(fs["gaps_s"])
        result = {
            "system": system.name,
            "window_s": elapsed,
            "samples_per_s": ingested / elapsed,
            "expected_samples_per_s": expected,
            "cpu_s": cpu1 - cpu0,
            "cpu_cores": (cpu1 - cpu0) / elapsed,
            "cpu_s_per_million": (cpu1 - cpu0) / (ingested / 1e6) if ingested else float("inf"),
            "farm_cpu_cores": (farm_cpu1 - farm_cpu0) / elapsed,
            "max_scrape_gap_s": fs["max_gap_s"],
            "p99_scrape_gap_s": gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0.0,
            "late_targets": sum(1 for g in gaps if g > 1.5 * interval_s),
            "scrapes": fs["requests"],
        }
        result["behind"] = result["late_targets"] > 0 or result["samples_per_s"] < 0.95 * expected
        log(f"[{system.name}] {result['samples_per_s']:.0f} samples/s, {result['cpu_cores']:.2f} cores, "
            f"{result['cpu_s_per_million']:.2f} CPU-s/M, max gap {result['max_scrape_gap_s']:.1f}s")
        if query_repeats:
            result["queries"] = measure_queries(system, warmup_s + window_s, query_repeats)
        result["peak_memory_bytes"] = sampler.peak_pss
        # Where the memory is: per component at the whole run's peak, and at the peak of warm-up and
        # ingest alone (before the queries), with the series the system then held.
        result["pss_at_peak_by_component"] = dict(sorted(sampler.pss_at_peak.items(), key=lambda kv: -kv[1]))
        result["ingest_peak_memory_bytes"] = ingest_peak
        result["ingest_pss_at_peak_by_component"] = dict(sorted(ingest_at_peak.items(), key=lambda kv: -kv[1]))
        result["active_series"] = round(expected * interval_s)
        if query_repeats:
            result["storage"] = system.flush_and_measure_storage()
            st = result["storage"]
            result["block_bytes_per_sample"] = st["block_bytes"] / st["samples_stored"] if st["samples_stored"] else None
            result["disk_bytes_per_sample"] = st["disk_bytes"] / st["samples_stored"] if st["samples_stored"] else None
        result["cpu_by_process_s"] = _top_processes(by_process0, by_process1)
        result["cpu_by_component_s"] = _top_processes(by_component0, by_component1, n=99)
        return result
    finally:
        sampler.stop()
        farm_sampler.stop()
        system.stop()
        log(f"[{system.name}] stopped")


def _top_processes(before: dict[str, float], after: dict[str, float], n: int = 14) -> dict[str, float]:
    """CPU seconds each process used in the measurement window, the largest first."""
    deltas = {k: v - before.get(k, 0.0) for k, v in after.items()}
    items = sorted(deltas.items(), key=lambda kv: -kv[1])[:n]
    return {k: round(v, 2) for k, v in items if v > 0}


def run_workload(out: Path, targets: int, series: int, interval_s: float, window_s: float, systems: list[str],
                 shards: int, scrapers: int, query_repeats: int = 5, label: str | None = None,
                 keep_data: bool = False) -> dict:
    label = label or f"{targets}x{series}-{interval_s:g}s"
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    # The systems' data and logs go to a scratch folder; only the report is kept.
    work = Path(tempfile.mkdtemp(prefix=f"shardmon-bench-{label}-"))
    farm_proc, farm_port = start_farm(work, targets, series)
    results = []
    try:
        for name in systems:
            sys_folder = work / name
            sys_folder.mkdir(exist_ok=True)
            if name == "shardmon":
                system = Shardmon(sys_folder, farm_port, targets, interval_s, shards=shards, scrapers=scrapers)
            else:
                system = Prometheus(sys_folder, farm_port, targets, interval_s)
            results.append(run_system(system, farm_port, farm_proc, targets, series, interval_s,
                                      warmup_s=2 * interval_s, window_s=window_s, query_repeats=query_repeats))
    finally:
        farm_proc.stop(10)
        if keep_data:
            print(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    run = {
        "label": label,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "workload": {"targets": targets, "series_per_target": series, "interval_s": interval_s, "window_s": window_s,
                     "shards": shards, "scrapers": scrapers},
        "results": results,
    }
    report.write_run(folder, run)
    return run


def run_sweep(out: Path, series: int, interval_s: float, window_s: float, target_counts: list[int],
              shard_counts: list[int], scrapers: int, with_prometheus: bool) -> dict:
    rows = []
    for targets in target_counts:
        for shards in shard_counts:
            run = run_workload(out / "sweep", targets, series, interval_s, window_s, ["shardmon"], shards, scrapers,
                               query_repeats=0, label=f"{targets}x{series}-{shards}shards")
            rows.append(dict(run["results"][0], targets=targets, shards=shards, scrapers=scrapers))
        if with_prometheus:
            run = run_workload(out / "sweep", targets, series, interval_s, window_s, ["prometheus"], 0, 0,
                               query_repeats=0, label=f"{targets}x{series}-prometheus")
            rows.append(dict(run["results"][0], targets=targets, shards=0))
    sweep = {"series_per_target": series, "interval_s": interval_s, "window_s": window_s, "rows": rows,
             "machine": report.machine(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    report.write_sweep(out / "sweep", sweep)
    return sweep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--series", type=int, default=500, help="series per target")
    p.add_argument("--interval", type=float, default=5.0, help="scrape interval, seconds")
    p.add_argument("--window", type=float, default=120.0, help="measurement window, seconds")
    p.add_argument("--systems", default="shardmon,prometheus")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--scrapers", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/<date>)")
    p.add_argument("--sweep", action="store_true", help="the scale sweep instead of one workload")
    p.add_argument("--sweep-targets", default="100,500,2000,5000")
    p.add_argument("--sweep-shards", default="1,2,4")
    p.add_argument("--smoke", action="store_true", help="a tiny run, under a minute, to check the harness")
    p.add_argument("--keep-data", action="store_true", help="keep the systems' data and logs (printed where)")
    p.add_argument("--queries", action="store_true",
                   help="query latency on the same data (Prometheus remote-writes to Shardmon) instead of ingest")
    p.add_argument("--pushdown", action="store_true",
                   help="with --queries: the aggregation push-down on and off over 2 and 4 local shards (no Prometheus; "
                   "bench/pushdownbench.py): bytes from the shards, latency, CPU")
    p.add_argument("--pushdown-shards", default="2,4", help="with --pushdown: the shard counts")
    p.add_argument("--pushdown-points", type=int, default=31, help="with --pushdown: samples per series (10s apart)")
    p.add_argument("--pushdown-rf", type=int, default=1,
                   help="with --pushdown: the replication factor the data is written and read with")
    p.add_argument("--fill", type=float, default=None,
                   help="with --queries (default 300) or --rules (default 120): seconds of data first")
    p.add_argument("--rules", action="store_true",
                   help="rule evaluation time on the same data (bench/rulesbench.py): 100 recording and 100 alerting "
                        "rules, the rulers' evaluator (in the bench's process) against Prometheus's rule manager")
    p.add_argument("--eval-interval", type=float, default=180.0,
                   help="with --rules: the evaluation interval, seconds (the 20 groups are staggered over it, so "
                        "Prometheus's do not overlap while each takes under a fortieth of it)")
    p.add_argument("--rounds", type=int, default=2, help="with --rules: evaluations of each group measured")
    p.add_argument("--no-prefetch", action="store_true",
                   help="with --rules: each rule reads the shards on its own (without the group's prefetch), to compare")
    p.add_argument("--profile", type=float, default=None,
                   help="with --rules: seconds of py-spy afterwards on the group furthest behind Prometheus (default 20, smoke 5; 0: none)")
    p.add_argument("--storage", action="store_true",
                   help="the storage benchmark instead (bench/storagebench.py): bytes per sample after compaction, "
                        "head memory per series, ingest CPU per million samples, restart time per million WAL samples")
    p.add_argument("--storage-hosts", type=int, default=10, help="with --storage: node_exporter-like hosts on disk")
    p.add_argument("--storage-duration", default="2h15m", help="with --storage: the data's time span (at least 2h)")
    p.add_argument("--head-series", type=int, default=100_000, help="with --storage: series in the head test")
    p.add_argument("--head-samples", type=int, default=60, help="with --storage: samples per series in the head test")
    p.add_argument("--compaction-wait", type=float, default=75.0,
                   help="with --storage: seconds Prometheus runs on its backfilled blocks (its compactor starts at 60)")
    p.add_argument("--histograms", action="store_true",
                   help="the native histogram benchmark instead (bench/histbench.py): bytes per histogram sample "
                        "and ingest CPU, native and classic, Shardmon against Prometheus")
    p.add_argument("--hist-series", type=int, default=200, help="with --histograms: services (histogram series)")
    p.add_argument("--hist-duration", default="2h", help="with --histograms: the data's time span (at most 2h)")
    p.add_argument("--assign", action="store_true",
                   help="target assignment time and moves (bench/assignbench.py); --targets and --scrapers "
                        "default to 1,000,000 and 1,000")
    args = p.parse_args(argv)
    if args.assign:
        return _assign(args, argv)
    if args.storage:
        return _storage(args)
    if args.histograms:
        return _histograms(args)
    if args.rules:
        return _rules(args, argv)
    out = args.out or ROOT / "bench" / "results" / dt.date.today().isoformat()
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        out = args.out or Path(tempfile.mkdtemp(prefix="shardmon-bench-smoke-"))
        run = run_workload(out, 5, 50, 1.0, 5.0, args.systems.split(","), 1, 1, query_repeats=1, label="smoke")
        print(report.summary(run))
        return 0
    if args.queries and args.pushdown:
        from bench.pushdownbench import markdown as pushdown_markdown
        from bench.pushdownbench import run_pushdown_bench

        targets = args.targets if "--targets" in (argv or sys.argv) else 50
        series = args.series if "--series" in (argv or sys.argv) else 1000
        run = run_pushdown_bench(out, targets, series, [int(x) for x in args.pushdown_shards.split(",")],
                                 args.pushdown_points, 10.0, 3, report.machine(), args.pushdown_rf)
        print(pushdown_markdown(run))
        return 0
    if args.queries:
        from bench.querybench import markdown, run_query_bench

        targets = args.targets if "--targets" in (argv or sys.argv) else 100
        series = args.series if "--series" in (argv or sys.argv) else 1000
        interval = args.interval if "--interval" in (argv or sys.argv) else 10.0
        work = Path(tempfile.mkdtemp(prefix="shardmon-querybench-"))
        farm_proc, farm_port = start_farm(work, targets, series)
        try:
            fill = args.fill or 300.0
            run = run_query_bench(out, farm_port, targets, series, interval, fill, min(300.0, fill - 30),
                                  15.0, 5, args.shards, work, report.machine())
        finally:
            farm_proc.stop(10)
            if not args.keep_data:
                shutil.rmtree(work, ignore_errors=True)
        print(markdown(run))
        return 0
    if args.sweep:
        sweep = run_sweep(out, args.series, args.interval, args.window, [int(x) for x in args.sweep_targets.split(",")],
                          [int(x) for x in args.sweep_shards.split(",")], args.scrapers, "prometheus" in args.systems)
        print(report.sweep_summary(sweep))
        return 0
    run = run_workload(out, args.targets, args.series, args.interval, args.window, args.systems.split(","),
                       args.shards, args.scrapers, keep_data=args.keep_data)
    print(report.summary(run))
    return 0


def _rules(args, argv: list[str] | None) -> int:
    from bench.rulesbench import markdown, run_rules_bench

    given = argv or sys.argv
    if args.smoke:
        out = args.out or Path(tempfile.mkdtemp(prefix="shardmon-bench-smoke-"))
        targets, series, scrape, every, fill, rounds = 10, 100, 2.0, 5.0, args.fill or 20.0, 3
        label, profile = "rules-smoke", 5.0 if args.profile is None else args.profile
    else:
        out = args.out or ROOT / "bench" / "results" / dt.date.today().isoformat()
        targets = args.targets if "--targets" in given else 100
        series = args.series if "--series" in given else 1000
        scrape = args.interval if "--interval" in given else 10.0
        every, fill, rounds, label = args.eval_interval, args.fill or 120.0, args.rounds, None
        profile = 20.0 if args.profile is None else args.profile
    work = Path(tempfile.mkdtemp(prefix="shardmon-rulesbench-"))
    farm_proc, farm_port = start_farm(work, targets, series)
    try:
        run = run_rules_bench(out, farm_port, targets, series, scrape, every, fill, rounds, args.shards, work,
                              report.machine(), label=label, profile_s=profile, prefetch=not args.no_prefetch)
    finally:
        farm_proc.stop(10)
        if args.keep_data:
            print(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(run))
    return 0


def _assign(args, argv: list[str] | None) -> int:
    from bench.assignbench import run_assign_bench, summary

    given = argv or sys.argv
    targets = args.targets if "--targets" in given else (20_000 if args.smoke else 1_000_000)
    scrapers = args.scrapers if "--scrapers" in given else (100 if args.smoke else 1_000)
    if args.smoke:
        out = args.out or Path(tempfile.mkdtemp(prefix="shardmon-bench-smoke-"))
    else:
        out = args.out or ROOT / "bench" / "results" / dt.date.today().isoformat()
    print(summary(run_assign_bench(out, targets, scrapers, report.machine())))
    return 0


def _storage(args) -> int:
    from bench.storage_report import markdown
    from bench.storagebench import run_storage_bench

    systems = tuple(args.systems.split(","))
    if args.smoke:
        out = args.out or Path(tempfile.mkdtemp(prefix="shardmon-bench-smoke-"))
        run = run_storage_bench(out, hosts=1, head_series=5000, head_samples=8, compaction_wait_s=65.0,
                                systems=systems, label="storage-smoke", keep_data=args.keep_data)
    else:
        out = args.out or ROOT / "bench" / "results" / dt.date.today().isoformat()
        run = run_storage_bench(out, hosts=args.storage_hosts, duration=args.storage_duration,
                                head_series=args.head_series, head_samples=args.head_samples,
                                compaction_wait_s=args.compaction_wait, systems=systems, keep_data=args.keep_data)
    print(markdown(run))
    return 0


def _histograms(args) -> int:
    from bench.hist_report import markdown
    from bench.histbench import run_hist_bench

    systems = tuple(args.systems.split(","))
    if args.smoke:
        out = args.out or Path(tempfile.mkdtemp(prefix="shardmon-bench-smoke-"))
        run = run_hist_bench(out, series=20, duration="20m", systems=systems, label="histograms-smoke",
                             keep_data=args.keep_data)
    else:
        out = args.out or ROOT / "bench" / "results" / dt.date.today().isoformat()
        run = run_hist_bench(out, series=args.hist_series, duration=args.hist_duration, systems=systems,
                             keep_data=args.keep_data)
    print(markdown(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
