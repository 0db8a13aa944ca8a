"""Where Shardmon's memory goes per active series: one ``shardmon up`` on the farm, PSS per component.

    .venv/bin/python -m bench.memprobe --targets 200 --series 500 --ingest 150

Starts the farm and ``shardmon up`` (2 shards, 2 scrapers, as bench/run does), waits until every target
was scraped, lets it ingest for ``--ingest`` seconds, then prints the PSS per component (now and at its
own peak, from :class:`bench.procstat.TreeSampler`), the shards' head samples and WAL entries, and each
Redis's memory with the bytes of its WAL stream and series hash (``MEMORY USAGE``). No Prometheus and
no queries: for measuring memory per series before and after a change (CPU is not measured here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench.main import farm_stats, start_farm
from bench.procstat import TreeSampler, component, descendants, process_name, pss_bytes
from bench.systems import Shardmon, http_get, metric_sum

MIB = 1 << 20


def _redis(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def redis_breakdown(port: int, shard_id: int) -> dict:
    """used_memory of one Redis and the bytes of the shard's WAL stream and series hash in it."""
    info = _redis(port, "INFO", "memory")
    used = int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")))
    out = {"used_memory": used}
    for key in ("wal", "series"):
        raw = _redis(port, "MEMORY", "USAGE", f"shardmon:{shard_id}:{key}", "SAMPLES", "0").strip()
        out[key] = int(raw) if raw.isdigit() else 0
    out["wal_entries"] = int(_redis(port, "XLEN", f"shardmon:{shard_id}:wal").strip() or 0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--series", type=int, default=500)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--ingest", type=float, default=150.0, help="seconds of ingest after every target was scraped")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--scrapers", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memprobe-") as tmp:
        folder = Path(tmp)
        farm, port = start_farm(folder, args.targets, args.series)
        system = Shardmon(folder, port, args.targets, args.interval, shards=args.shards, scrapers=args.scrapers)
        try:
            system.start()
            sampler = TreeSampler([system.pid]).start()
            deadline = time.monotonic() + 180
            farm_stats(port, reset=True)
            while farm_stats(port)["targets_scraped"] < args.targets and time.monotonic() < deadline:
                time.sleep(0.5)
            t0 = time.monotonic()
            time.sleep(args.ingest)
            # The components' PSS now, not only at their peaks.
            now: dict[str, int] = {}
            for pid in descendants(system.pid):
                comp = component(process_name(pid))
                now[comp] = now.get(comp, 0) + pss_bytes(pid)
            shards = []
            for i, addr in enumerate(system.shard_metrics):
                text = http_get(f"http://{addr}/metrics").decode()
                shards.append({
                    "series": metric_sum(text, "shardmon_shard_series"),
                    "head_samples": metric_sum(text, "shardmon_shard_head_samples"),
                    "wal_entries": metric_sum(text, "shardmon_shard_wal_entries"),
                    "redis": redis_breakdown(system.redis_ports[i], i),
                })
            result = {
                "targets": args.targets, "series_per_target": args.series, "ingest_s": time.monotonic() - t0,
                "active_series": args.targets * (args.series + 5),
                "pss_now": dict(sorted(now.items(), key=lambda kv: -kv[1])),
                "peak_by_component": dict(sorted(sampler.peak_by_component.items(), key=lambda kv: -kv[1])),
                "peak_pss": sampler.peak_pss,
                "shards": shards,
            }
            sampler.stop()
        finally:
            system.stop()
            farm.stop()
    print(f"{args.targets} x {args.series} every {args.interval:g}s, {result['ingest_s']:.0f}s of ingest, "
          f"{result['active_series']} series")
    print(f"{'component':32} {'PSS now MiB':>12} {'peak MiB':>10}")
    for comp, v in result["pss_now"].items():
        print(f"{comp:32} {v / MIB:12.1f} {result['peak_by_component'].get(comp, 0) / MIB:10.1f}")
    print(f"{'total (peak of the sum)':32} {sum(result['pss_now'].values()) / MIB:12.1f} {result['peak_pss'] / MIB:10.1f}")
    for i, s in enumerate(result["shards"]):
        r = s["redis"]
        print(f"shard {i}: {s['series']:.0f} series, {s['head_samples']:.0f} head samples "
              f"({s['head_samples'] / max(s['series'], 1):.1f}/series), {r['wal_entries']} WAL entries; Redis "
              f"used {r['used_memory'] / MIB:.1f} MiB: wal {r['wal'] / MIB:.1f}, series {r['series'] / MIB:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
