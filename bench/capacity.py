"""The capacity model: what each component costs per sample and per series, fitted to a scale sweep,
checked against it, and what it predicts for 10M and 100M active series.

    .venv/bin/python -m bench.capacity bench/results/<date>/sweep/sweep.json \
        [--queries .../queries-100x1000/result.json] [--storage .../storage-*/result.json]

For every component of the sweep's Shardmon rows (``cpu_by_component_s`` and
``ingest_pss_at_peak_by_component``, written by ``bench/run --sweep``), a least-squares fit of

    CPU cores = per process * processes + per sample * samples/s
    memory    = per process * processes + per series * active series

with samples/s those the targets expose (what a system that keeps up ingests; the sweep's own count
over a 40 s window is noisier), and where "processes" is the number of shards for shards and Redis, of
scrapers for scrapers and 1 for the rest (coordinator, ingest service, querier, Ray's own processes).
With ``--storage`` the predictions add the samples a running shard holds in its head and WAL (see
:func:`held`). The fit is made on the 2-shard rows
and checked on the 1- and 4-shard rows (predicted against measured, whole system). Rows that fell
behind are left out. The predictions assume what the fit measured: this machine's cores, the bench
farm's series (node_exporter-like, about 200 per target), every component one Python process of at
most ``--core-budget`` of a core (a shard, a scraper and the querier are each one event loop).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

PER_SHARD = {"shards", "Redis", "Redis (AOF rewrite)"}
PER_SCRAPER = {"scrapers"}


def processes(component: str, row: dict) -> int:
    if component in PER_SHARD:
        return row["shards"]
    if component in PER_SCRAPER:
        return row.get("scrapers", 2)
    return 1


def active_series(row: dict, interval_s: float) -> float:
    return row["expected_samples_per_s"] * interval_s


def fit(rows: list[dict], interval_s: float) -> dict[str, dict[str, float]]:
    """Per component: ``cpu_per_process``, ``cpu_per_sample`` (cores per sample/s),
    ``mem_per_process`` and ``mem_per_series`` (bytes)."""
    names = sorted({c for r in rows for c in r["cpu_by_component_s"]} |
                   {c for r in rows for c in r["ingest_pss_at_peak_by_component"]})
    out = {}
    for c in names:
        n = np.array([processes(c, r) for r in rows], float)
        rate = np.array([r["expected_samples_per_s"] for r in rows])
        series = np.array([active_series(r, interval_s) for r in rows])
        cores = np.array([r["cpu_by_component_s"].get(c, 0.0) / r["window_s"] for r in rows])
        mem = np.array([r["ingest_pss_at_peak_by_component"].get(c, 0) for r in rows], float)
        (cpu_pp, cpu_ps), *_ = np.linalg.lstsq(np.column_stack([n, rate]), cores, rcond=None)
        (mem_pp, mem_ps), *_ = np.linalg.lstsq(np.column_stack([n, series]), mem, rcond=None)
        out[c] = {"cpu_per_process": max(cpu_pp, 0.0), "cpu_per_sample": max(cpu_ps, 0.0),
                  "mem_per_process": max(mem_pp, 0.0), "mem_per_series": max(mem_ps, 0.0)}
    return out


def predict(model: dict, shards: int, scrapers: int, samples_per_s: float, series: float) -> tuple[float, float]:
    """Whole-system CPU cores and memory bytes."""
    row = {"shards": shards, "scrapers": scrapers}
    cores = sum(m["cpu_per_process"] * processes(c, row) + m["cpu_per_sample"] * samples_per_s for c, m in model.items())
    mem = sum(m["mem_per_process"] * processes(c, row) + m["mem_per_series"] * series for c, m in model.items())
    return cores, mem


def group(model: dict, names: set[str]) -> dict[str, float]:
    picked = [m for c, m in model.items() if c in names]
    return {k: sum(m[k] for m in picked) for k in ("cpu_per_process", "cpu_per_sample", "mem_per_process", "mem_per_series")}


def held(model: dict, sweep: dict, storage: dict | None, head_hours: float, interval_s: float) -> dict:
    """The model with the samples a shard holds at its peak: a sweep row's head and WAL hold the few
    samples of its warm-up and window, a running shard those of up to 1.5 block durations (3 h by
    default) before a cut moves them to blocks. Each sample held costs the head and the WAL stream
    what the storage benchmark measured (``head_bytes_per_sample_held``; Redis's growth per sample)."""
    if storage is None:
        return model
    s = storage["head"]["shardmon"]
    few, full = s["few_samples_per_series"], s["samples_per_series"]
    redis_per_sample = (s["redis_bytes_per_series_full"] - s["redis_bytes_per_series"]) / (full - few)
    in_sweep = (2 * sweep["interval_s"] + sweep["window_s"]) / sweep["interval_s"] + 1
    more = max(0.0, head_hours * 3600 / interval_s - in_sweep)
    out = {c: dict(m) for c, m in model.items()}
    out["shards"]["mem_per_series"] += more * s["head_bytes_per_sample_held"]
    out["Redis"]["mem_per_series"] += more * redis_per_sample
    return out


def plan(model: dict, series: float, interval_s: float, budget: float, machine_cores: int, machine_gib: int) -> dict:
    """Shards, scrapers, machines, memory and Redis size for ``series`` active series at ``interval_s``."""
    rate = series / interval_s
    shard, scraper, redis = group(model, {"shards"}), group(model, PER_SCRAPER), group(model, PER_SHARD - {"shards"})
    per_shard = (budget - shard["cpu_per_process"]) / shard["cpu_per_sample"]
    per_scraper = (budget - scraper["cpu_per_process"]) / scraper["cpu_per_sample"]
    # A shard and its Redis must also fit in half a machine's memory (both hold every sample of its head).
    shard_mem = shard["mem_per_series"] + redis["mem_per_series"]
    fit_mem = (0.5 * machine_gib * 2**30 - shard["mem_per_process"] - redis["mem_per_process"]) / shard_mem
    shards, scrapers = max(math.ceil(rate / per_shard), math.ceil(series / fit_mem)), math.ceil(rate / per_scraper)
    cores, mem = predict(model, shards, scrapers, rate, series)
    machines = max(math.ceil(cores / (0.8 * machine_cores)), math.ceil(mem / (0.8 * machine_gib * 2**30)))
    return {"series": series, "samples_per_s": rate, "per_shard_samples_per_s": per_shard,
            "per_scraper_samples_per_s": per_scraper, "shards": shards, "scrapers": scrapers, "cores": cores,
            "memory_bytes": mem, "machines": machines,
            "redis_per_shard_bytes": redis["mem_per_process"] + redis["mem_per_series"] * series / shards,
            "series_per_shard": series / shards}


def querier_rates(queries: dict) -> list[tuple[str, str, float, float]]:
    """(query, kind, milliseconds, queries per second of one querier) from a ``--queries`` result."""
    return [(r["query"], r["kind"], r["shardmon_ms"], 1000 / r["shardmon_ms"]) for r in queries["rows"]
            if r.get("shardmon_ms")]


def markdown(sweep: dict, queries: dict | None, budget: float, machine_cores: int, machine_gib: int,
             storage: dict | None = None, head_hours: float = 3.0) -> str:
    interval = sweep["interval_s"]
    rows = [dict(r, scrapers=r.get("scrapers", 2)) for r in sweep["rows"]
            if r["system"] == "shardmon" and not r["behind"] and "cpu_by_component_s" in r]
    train = [r for r in rows if r["shards"] == 2] or rows
    model = fit(train, interval)
    lines = [f"# Capacity model (fitted to the sweep of {sweep['date']}, {sweep['series_per_target']} series per "
             f"target every {interval:g} s, on {sweep['machine'].get('cpus')} CPUs)", "",
             f"Fitted on the {len(train)} two-shard rows that kept up; checked on every row below.", "",
             "| component | CPU per process, cores | CPU per 1,000 samples/s, cores | memory per process, MiB | memory per active series, bytes |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for c, m in sorted(model.items(), key=lambda kv: -kv[1]["mem_per_series"]):
        lines.append(f"| {c} | {m['cpu_per_process']:.3f} | {m['cpu_per_sample'] * 1000:.4f} | "
                     f"{m['mem_per_process'] / 2**20:,.0f} | {m['mem_per_series']:,.0f} |")
    tot = group(model, set(model))
    lines.append(f"| all | {tot['cpu_per_process']:.3f} | {tot['cpu_per_sample'] * 1000:.4f} | "
                 f"{tot['mem_per_process'] / 2**20:,.0f} | {tot['mem_per_series']:,.0f} |")
    lines += ["", "Check: the model against every measured row (whole system).", "",
              "| shards | targets | samples/s scraped | CPU cores measured / predicted | memory MiB measured / predicted |",
              "| ---: | ---: | ---: | ---: | ---: |"]
    errors = []
    for r in rows:
        cores, mem = predict(model, r["shards"], r["scrapers"], r["expected_samples_per_s"], active_series(r, interval))
        got_cores = sum(r["cpu_by_component_s"].values()) / r["window_s"]
        got_mem = r["ingest_peak_memory_bytes"]
        errors += [abs(cores / got_cores - 1), abs(mem / got_mem - 1)]
        lines.append(f"| {r['shards']} | {r['targets']:,} | {r['expected_samples_per_s']:,.0f} | {got_cores:.2f} / {cores:.2f} | "
                     f"{got_mem / 2**20:,.0f} / {mem / 2**20:,.0f} |")
    if errors:
        lines += ["", f"Largest error of the model on these rows: {max(errors):.0%}."]
    sized = held(model, sweep, storage, head_hours, 15.0)
    if storage is not None:
        s = storage["head"]["shardmon"]
        lines += ["", f"Samples held: a shard's head and WAL hold up to {head_hours:g} h of samples before a block cut "
                  f"({head_hours * 240:,.0f} per series at 15 s), the sweep's rows only their first minute or two. The "
                  f"predictions add what each further sample costs, from the storage benchmark of {storage['date']}: "
                  f"{s['head_bytes_per_sample_held']:.1f} bytes in the head, "
                  f"{(s['redis_bytes_per_series_full'] - s['redis_bytes_per_series']) / (s['samples_per_series'] - s['few_samples_per_series']):.1f} "
                  f"in the WAL stream: {sized['shards']['mem_per_series']:,.0f} bytes per series in shards and "
                  f"{sized['Redis']['mem_per_series']:,.0f} in Redis at the peak."]
    else:
        lines += ["", "Without a storage benchmark (--storage) the predictions count only the samples a sweep row held; "
                  "a running shard holds hours of them."]
    lines += ["", f"## Predictions (scrape interval 15 s, a shard or scraper process at most {budget:g} of a core, "
              f"a shard with its Redis at most half a machine's memory, machines of {machine_cores} cores and {machine_gib} GiB "
              "used to 80%)", "",
              "| active series | samples/s | shards (series each) | scrapers | cores | memory, GiB | Redis per shard, GiB | machines |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for series in (1e6, 10e6, 100e6):
        p = plan(sized, series, 15.0, budget, machine_cores, machine_gib)
        lines.append(f"| {series:,.0f} | {p['samples_per_s']:,.0f} | {p['shards']:,} ({p['series_per_shard']:,.0f}) | "
                     f"{p['scrapers']:,} | {p['cores']:,.1f} | {p['memory_bytes'] / 2**30:,.0f} | "
                     f"{p['redis_per_shard_bytes'] / 2**30:,.2f} | {p['machines']:,} |")
    p = plan(sized, 10e6, 15.0, budget, machine_cores, machine_gib)
    lines += ["", f"One shard takes about {p['per_shard_samples_per_s']:,.0f} samples/s and one scraper about "
              f"{p['per_scraper_samples_per_s']:,.0f} within that budget."]
    if queries:
        w = queries["workload"]
        lines += ["", f"## Querier (the query benchmark of {queries['date']}: {w['targets'] * w['series_per_target']:,} "
                  f"series on {w['shards']} shards, one querier process, median latency)", "",
                  "| query | kind | ms | queries per second, one querier |", "| --- | --- | ---: | ---: |"]
        lines += [f"| `{q}` | {k} | {ms:,.1f} | {v:,.1f} |" for q, k, ms, v in querier_rates(queries)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="a sweep.json written by bench/run --sweep")
    p.add_argument("--queries", type=Path, help="a result.json written by bench/run --queries")
    p.add_argument("--storage", type=Path, help="a result.json written by bench/run --storage (samples held)")
    p.add_argument("--head-hours", type=float, default=3.0, help="hours of samples a shard holds at its peak")
    p.add_argument("--core-budget", type=float, default=0.7)
    p.add_argument("--machine-cores", type=int, default=16)
    p.add_argument("--machine-gib", type=int, default=64)
    args = p.parse_args(argv)
    sweep = json.loads(args.sweep.read_text())
    queries = json.loads(args.queries.read_text()) if args.queries else None
    storage = json.loads(args.storage.read_text()) if args.storage else None
    text = markdown(sweep, queries, args.core_budget, args.machine_cores, args.machine_gib, storage, args.head_hours)
    (args.sweep.parent / "capacity.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
