"""The aggregation push-down's effect: bytes moved from the shards and query latency with and without it.

Farm-shaped data (bench/farm.py's catalogue: ``targets`` x ``series``, one sample every ``every_s`` for
``points`` samples) is written straight into 2 and then 4 local shards (real shard processes and Redis,
``shardmon.localshards``); then bench/querybench.py's query set runs in this process on the engine over
the fan-out (``shardmon.querier.server.build``'s parts), as instant and as range queries, each several
times with ``querier.aggregation_pushdown`` on and off in alternation. Per query and mode: the median
latency, the querier's CPU seconds (this process) and the shards' (their processes), the bytes received
from the shards (``shardmon_querier_shard_response_bytes_total``); and whether both answers are equal.

    bench/run --queries --pushdown [--targets 50 --series 1000 --pushdown-shards 2,4 --pushdown-rf 1]

With ``--pushdown-rf`` 2 or more, every series is written to that many shards and read with that
replication factor (each series aggregated once, by its first owner; the copies' digests checked).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np

from bench.farm import Target, target_series
from bench.querybench import QUERIES
from shardmon.localshards import LocalShards
from shardmon.model.labels import Labels
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch
from shardmon.querier import metrics
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promql import Engine
from shardmon.querier.promqltest import ShardAppender

ORIGIN_S = 1_790_000_000
_LINE = re.compile(r"^(\w+)(\{.*\})? %")
_PAIR = re.compile(r'(\w+)="([^"]*)"')
_TICKS = os.sysconf("SC_CLK_TCK")


def _labels(target: Target, instance: str) -> list[Labels]:
    out = []
    for line in target.template.splitlines():
        m = _LINE.match(line)
        if m:
            pairs = dict(_PAIR.findall(m.group(2) or ""))
            out.append(Labels.from_dict({**pairs, "__name__": m.group(1), "instance": instance, "job": "farm"}))
    return out


def load(clients, targets: int, series: int, points: int, every_s: float, replication_factor: int = 1) -> int:
    """Write the farm's data into the shards, a target at a time (each series to ``replication_factor`` shards);
    the number of samples written (once per series)."""
    appender = ShardAppender(clients, replication_factor)
    catalogue = target_series(series)
    times = ORIGIN_S + every_s * np.arange(points)
    written = 0
    for i in range(targets):
        target = Target(i, catalogue)
        labels = _labels(target, f"t{i}")
        vals = np.stack([target.values(t) for t in times], axis=1)  # [series, points]
        n = len(labels)
        batch = SampleBatch.of(np.array([lb.series_id() for lb in labels], dtype=U64), [lb.canonical() for lb in labels],
                               np.repeat(np.arange(n, dtype=U32), points),
                               np.tile((times * 1000).astype(I64), n), vals.reshape(-1).astype(F64))
        appender.append(batch)
        written += n * points
    return written


def _shard_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _bytes() -> float:
    return sum(metrics.SHARD_RESPONSE_BYTES.labels(rpc)._value.get() for rpc in ("Series", "Aggregate"))


def _measure(engine: Engine, run, pids: list[int]) -> tuple[float, float, float, float, object]:
    b0, c0, s0, t0 = _bytes(), time.process_time(), _shard_cpu(pids), time.perf_counter()
    result = run(engine)
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0, _shard_cpu(pids) - s0, _bytes() - b0, result


def run_shards(n_shards: int, targets: int, series: int, points: int, every_s: float, repeats: int,
               replication_factor: int = 1) -> dict:
    from tests.pushdown_compare import compare  # the tests' comparison: bit for bit, or the last bits

    with LocalShards(n_shards) as shards:
        clients = shards.clients()
        pids = [c.proc.pid for c in shards.children if "shard" in c.name]
        t0 = time.perf_counter()
        samples = load(clients, targets, series, points, every_s, replication_factor)
        print(f"[pushdown] {n_shards} shards: wrote {samples:,} samples in {time.perf_counter() - t0:.0f}s", flush=True)
        fanout = FanoutQuerier(clients, replication_factor=replication_factor)
        engines = {"on": Engine(fanout), "off": Engine(fanout, aggregation_pushdown=False)}
        end_ms = int((ORIGIN_S + every_s * (points - 1)) * 1000)
        window_ms = int(every_s * (points - 1) * 1000) - 120_000
        rows = []
        for name, query in QUERIES:
            for kind, run in (("instant", lambda e, q=query: e.instant(q, end_ms)),
                              ("range", lambda e, q=query: e.range(q, end_ms - window_ms, end_ms, 15_000))):
                got: dict[str, list] = {"on": [], "off": []}
                results = {}
                for r in range(repeats + 1):  # the first round warms up (parse cache, label caches)
                    for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                        m = _measure(engines[mode], run, pids)
                        results[mode] = m[4]
                        if r:
                            got[mode].append(m[:4])
                row = {"name": name, "query": query, "kind": kind, "equal": compare(results["on"], results["off"])}
                for mode, ms in got.items():
                    row[mode] = {"latency_s": statistics.median(x[0] for x in ms),
                                 "querier_cpu_s": statistics.median(x[1] for x in ms),
                                 "shard_cpu_s": statistics.median(x[2] for x in ms),
                                 "bytes": statistics.median(x[3] for x in ms)}
                rows.append(row)
                print(f"[pushdown] {n_shards} shards {kind} {name}: on {row['on']['latency_s'] * 1000:.0f} ms "
                      f"{row['on']['bytes'] / 1e3:.0f} kB, off {row['off']['latency_s'] * 1000:.0f} ms "
                      f"{row['off']['bytes'] / 1e3:.0f} kB, {row['equal']}", flush=True)
        fanout.close()
    return {"shards": n_shards, "replication_factor": replication_factor, "samples": samples, "rows": rows}


def run_pushdown_bench(out: Path, targets: int, series: int, shard_counts: list[int], points: int, every_s: float,
                       repeats: int, machine: dict, replication_factor: int = 1) -> dict:
    load_before = os.getloadavg()
    runs = [run_shards(n, targets, series, points, every_s, repeats, replication_factor) for n in shard_counts]
    run = {
        "label": f"pushdown-{targets}x{series}" + (f"-rf{replication_factor}" if replication_factor > 1 else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "workload": {"targets": targets, "series_per_target": series, "points": points, "every_s": every_s,
                     "repeats": repeats},
        "runs": runs,
    }
    folder = out / run["label"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(run, indent=1))
    (folder / "report.md").write_text(markdown(run))
    return run


def markdown(run: dict) -> str:
    w = run["workload"]
    lines = [f"# Aggregation push-down: {w['targets']} targets x {w['series_per_target']} series, "
             f"{w['points']} samples each ({w['every_s']:.0f}s apart)", "",
             f"{run['date']}; load average before {run['load_average']['before'][0]:.2f}, after "
             f"{run['load_average']['after'][0]:.2f} (a shared 2-core machine: latencies are indicative; the "
             "bytes are exact). Medians of "
             f"{w['repeats']} runs per mode, on and off alternating. Range queries: 15s step.", ""]
    for r in run["runs"]:
        rf = r.get("replication_factor", 1)
        lines += [f"## {r['shards']} shards" + (f", replication factor {rf}" if rf > 1 else ""), "",
                  "| query | kind | bytes from shards on / off | latency ms on / off | querier CPU ms on / off "
                  "| shard CPU ms on / off | answers |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for row in r["rows"]:
            on, off = row["on"], row["off"]
            lines.append(
                f"| {row['name']} | {row['kind']} | {on['bytes'] / 1e3:,.1f} kB / {off['bytes'] / 1e3:,.1f} kB "
                f"| {on['latency_s'] * 1e3:,.0f} / {off['latency_s'] * 1e3:,.0f} "
                f"| {on['querier_cpu_s'] * 1e3:,.0f} / {off['querier_cpu_s'] * 1e3:,.0f} "
                f"| {on['shard_cpu_s'] * 1e3:,.0f} / {off['shard_cpu_s'] * 1e3:,.0f} | {row['equal']} |")
        lines.append("")
    return "\n".join(lines)
